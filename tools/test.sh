#!/usr/bin/env bash
# The test suite: set up .venv if needed, then run pytest on two workers (pytest-xdist; the
# suite is mostly TensorFlow start-up in subprocesses). Extra arguments go to pytest
# (e.g. -m "not slow" for the quick subset, -n 0 for one process).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh
exec .venv/bin/python -m pytest -q -n 2 "$@"
