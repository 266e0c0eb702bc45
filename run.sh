#!/usr/bin/env bash
# The main job. Until the evolution engine lands: the forward-kernel benchmark on MNIST.
set -euo pipefail
source "$(dirname "$0")/scripts/setup.sh"
exec .venv/bin/python bench/bench_forward.py "$@"
