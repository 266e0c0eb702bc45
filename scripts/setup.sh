#!/usr/bin/env bash
# Sourced by run.sh and test.sh: create .venv with Python >= 3.10 and install genreg into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "genreg needs Python 3.10 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Reinstall only when the project's metadata changed since the last install.
stamp=.venv/.genreg-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # setuptools tells every editable install of a package-dir mapping (kernels/ -> genreg.kernels)
    # that it uses a meta path finder: information, not a problem; keep the install quiet.
    PYTHONWARNINGS="ignore:Editable installation${PYTHONWARNINGS:+,$PYTHONWARNINGS}" \
        .venv/bin/python -m pip install --quiet -e '.[test]'
    touch "$stamp"
fi
# Reference data lives beside the repository (never copied into it).
# (genreg itself looks in --data-dir, else $GENREG_DATA, else ~/.cache/genreg: say so, for commands typed by hand.)
if [ -z "${GENREG_DATA:-}" ] && [ -d ../shared/data/mnist ]; then
    export GENREG_DATA
    GENREG_DATA=$(cd ../shared/data && pwd)
    echo "data root: $GENREG_DATA (set by scripts/setup.sh; in your own shell: export GENREG_DATA=$GENREG_DATA)" >&2
fi
