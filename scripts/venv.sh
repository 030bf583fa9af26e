#!/usr/bin/env bash
# Make a virtualenv (or reuse it) and pip-install into it.
#
# Usage: [PYTHON=python3] scripts/venv.sh <venv-dir> <pip install arguments...>
#   e.g. scripts/venv.sh .venv -r requirements.txt -e ./lab
#
# Debian's python3 makes no virtualenv without its venv package ("ensurepip is not available"): when this Python
# cannot import ensurepip, python<X.Y>-venv is installed with apt first (scripts/ensure-system-packages.sh: as root, or
# with passwordless sudo). A Python with ensurepip of its own (pyenv, python.org builds) needs nothing from apt.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${1:?usage: scripts/venv.sh <venv-dir> <pip install arguments...>}
shift
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -c 'import ensurepip' 2>/dev/null; then
        version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        scripts/ensure-system-packages.sh "python${version}-venv"
    fi
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
