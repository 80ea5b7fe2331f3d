#!/usr/bin/env bash
# The test suite: set up .venv if needed, check the layer contract (import-linter, setup.cfg's
# [importlinter]), then run pytest on two workers (pytest-xdist; the suite is mostly TensorFlow
# start-up in subprocesses). Extra arguments go to pytest (e.g. -m "not slow" for the quick
# subset, -n 0 for one process).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh
if ! layers=$(.venv/bin/lint-imports --no-cache 2>&1); then echo "$layers"; exit 1; fi
echo "import-linter: ${layers##*$'\n'}"  # its last line: "Contracts: N kept, 0 broken."
exec .venv/bin/python -m pytest -q -n 2 --durations=25 "$@"  # the slowest 25: the suite must stay under 15 min
