#!/usr/bin/env bash
# The main job: set up .venv if needed, then train the default recipe (Fashion-MNIST), evaluate
# it on the test split and export it to saved_models/. Extra arguments go to python -m app.train.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh
exec .venv/bin/python -m app.train "$@"
