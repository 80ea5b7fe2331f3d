#!/usr/bin/env bash
# Installs this checkout as a user would, `pip install '.[onnx]'` into a fresh virtualenv outside
# it, and runs the installed console scripts from another folder: convtrain-tune --help,
# convtrain models, a 1-epoch convtrain-train (600 Fashion-MNIST images, simple_cnn width 8,
# float32, ONNX beside the export), then, with the onnx extra uninstalled, the one-line refusal
# of export.formats=onnx. Prints each step's seconds. About 2 minutes with pip's cache warm; not
# part of the pytest suite (too slow).
#
#   bash tools/check_install.sh [WORK_DIR]   # default /tmp/convtrain-check-install, made anew
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-/tmp/convtrain-check-install}"
python=$(command -v python3.11 || command -v python3)
case "$work/" in
  "$repo"/*) echo "check_install: WORK_DIR must be outside the checkout" >&2; exit 2;;
esac
rm -rf "$work"
mkdir -p "$work/src" "$work/elsewhere"
start=$SECONDS
step() { echo "check_install: $1 ($((SECONDS - start)) s so far)"; }

# The source as a clone of this working tree has it (tracked and untracked, not ignored files),
# so pip's in-tree build writes nothing into the checkout.
(cd "$repo" && git ls-files -z --cached --others --exclude-standard \
   | xargs -0 tar --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$work/src"

"$python" -m venv "$work/venv"
bin="$work/venv/bin"
# The grep drops pip's notes about local package folders some machine images name but lack.
"$bin/pip" install -q --disable-pip-version-check -c "$repo/tools/constraints.txt" \
  "$work/src[onnx]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
step "installed '.[onnx]' into $work/venv"
for script in convtrain convtrain-train convtrain-tune convtrain-evaluate convtrain-export \
    convtrain-predict convtrain-lr-find convtrain-models convtrain-step-profile \
    convtrain-augment-preview; do
  [ -x "$bin/$script" ] || { echo "check_install: no $bin/$script" >&2; exit 1; }
done

cd "$work/elsewhere"
"$bin/convtrain-tune" --help > tune-help.txt
head -1 tune-help.txt | grep -q "^Search architecture"
grep -q -- "--search_dir" tune-help.txt
step "convtrain-tune --help: tune's docstring and flags, $(wc -l < tune-help.txt) lines, exit 0"
"$bin/convtrain" models > models.txt
grep -q "^simple_cnn " models.txt
step "convtrain models: $(wc -l < models.txt) registered models"

"$bin/convtrain-train" --epochs=1 --model=simple_cnn --config.model.width=8 \
  --config.data.limit=600 --mixed_precision=float32 --config.export.formats=onnx \
  --output_dir=run --export_dir=exports > train.log 2>&1 || { tail -30 train.log >&2; exit 1; }
tail -3 train.log
test -f run/metrics.json
model_onnx=$(find exports -name model.onnx | head -1)
test -n "$model_onnx"
step "convtrain-train, 1 epoch from $work/elsewhere: run/metrics.json, $model_onnx"

"$bin/pip" uninstall -q -y tf2onnx onnx onnxruntime
status=0
"$bin/convtrain-train" --epochs=1 --config.data.limit=600 --config.export.formats=onnx \
  --output_dir=run-without-onnx 2> refusal.txt || status=$?
cat refusal.txt
if [ "$status" != 2 ] || [ "$(wc -l < refusal.txt)" != 1 ] \
    || ! grep -q "pip install 'convtrain\[onnx\]'" refusal.txt; then
  echo "check_install: expected one line naming pip install 'convtrain[onnx]', exit 2" >&2
  exit 1
fi
step "without the onnx extra: exit 2, one line"
echo "check_install: passed in $((SECONDS - start)) s"
