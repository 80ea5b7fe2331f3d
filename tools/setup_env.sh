#!/usr/bin/env bash
# Creates .venv/ in the repo root with the pinned packages (tools/constraints.txt) and, where apt
# is available, Debian's Fashion-MNIST files. Runs again only when setup.cfg or the pins change.
# Sourced by tools/train.sh and tools/test.sh; safe to run by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's dataset-fashion-mnist" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: run 'sudo apt-get install dataset-fashion-mnist' for the default data set" >&2
  fi
fi

stamp=".venv/.installed-$(cat setup.cfg tools/constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python=$(command -v python3.11 || command -v python3)
  echo "setup: creating .venv with $($python --version) and the pinned packages (a few minutes)" >&2
  "$python" -m venv .venv
  # The grep drops pip's notes about local package folders some machine images name but lack.
  # The onnx and profile extras too: the tests export ONNX files and read profiles (setup.cfg
  # says what each extra is for).
  .venv/bin/pip install -q --disable-pip-version-check -c tools/constraints.txt \
    -e '.[test,onnx,profile]' \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  rm -f .venv/.installed-*
  touch "$stamp"
fi
