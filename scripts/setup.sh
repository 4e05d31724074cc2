#!/usr/bin/env bash
# Installs everything slipstream's demo and tests need, then builds the package in place.
#   - system: a C++ compiler and libjpeg-turbo's development files (apt-get, as root;
#     a non-root user runs the printed `sudo apt-get install ...` line first)
#   - Python: a virtual environment in .venv with torch + torchvision, the build tools,
#     and slipstream installed editable with its dev and demo extras.
#   - the DALI operator plugin (dali_ops/), compiled against the installed DALI and cached
# Override the torch install with TORCH_SPEC (default: torch==2.14.1 torchvision==0.29.1).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v g++ >/dev/null 2>&1 || missing+=(g++)
dpkg -s libjpeg62-turbo-dev >/dev/null 2>&1 || [ -f /usr/include/jpeglib.h ] || missing+=(libjpeg62-turbo-dev)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "[setup] apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] missing system packages; run: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
echo "[setup] pip install ${TORCH_SPEC} and build tools"
# shellcheck disable=SC2086
pip install -q ${TORCH_SPEC} "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
echo "[setup] pip install -e .[dev,demo] (builds the C++ extension)"
pip install -q --no-build-isolation -e ".[dev,demo]"
python -c "import slipstream._core" || { echo "[setup] the C++ extension did not import" >&2; exit 1; }
# The DALI operator plugin is compiled on first use (~30 s) into
# ~/.cache/slipstream/dali_plugin/<dali version>/; build it now so the tests do not pay for it.
if ! python -c "from slipstream.dali.plugin import find_cuda_include; find_cuda_include()" 2>/dev/null; then
  echo "[setup] no cuda_runtime.h on this machine: pip install the CUDA header wheels"
  pip install -q nvidia-cuda-runtime-cu12 nvidia-cuda-nvcc-cu12 nvidia-cuda-cccl-cu12
fi
echo "[setup] building the DALI operator plugin"
python -c "from slipstream.dali import load_plugin; print('[setup] DALI plugin:', load_plugin())" \
  || { echo "[setup] the DALI operator plugin did not build" >&2; exit 1; }
echo "[setup] ready: $(python -c 'import slipstream, torch; print("slipstream", slipstream.__version__, "torch", torch.__version__)')"
