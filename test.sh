#!/usr/bin/env bash
# The test suite (set-up included). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/scripts/setup.sh"
exec .venv/bin/python -m pytest "$@"
