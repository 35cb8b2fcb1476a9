#!/usr/bin/env bash
# Make the project's virtualenv with the given Python (3.11+). On a fresh Debian machine the
# venv module lives in the python3-venv package: install it when root, explain otherwise.
set -euo pipefail
python=${1:?usage: bootstrap-venv.sh PYTHON VENV_DIR}
venv=${2:?usage: bootstrap-venv.sh PYTHON VENV_DIR}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: $python is $("$python" --version 2>&1); meterflow needs Python 3.11 or newer" >&2
    exit 1
fi
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        echo "error: $python has no venv module; run: sudo apt-get install python3-venv" >&2
        exit 1
    fi
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
