#!/usr/bin/env bash
# Sets up .venv for the demo or for the tests, then builds slipstream in place (editable).
#
#   bash scripts/setup.sh demo   torch + slipstream[demo]: what `slipstream demo` needs
#   bash scripts/setup.sh test   (default) + torchvision, the dev extra (tests, lint, DALI,
#                                LitData, S3, docs, wheel tools) and the DALI plugin, built now
#
# System packages (apt-get as root; a non-root user gets the `sudo apt-get install` line):
# g++, libjpeg-dev (libjpeg-turbo headers on Debian and Ubuntu), python3-venv, and for the
# tests libjpeg-turbo-progs (cjpeg writes a test's restart-marker JPEG).
#
# torch: an existing torch in .venv is kept (the tests also need an importable torchvision).
# Otherwise, with an NVIDIA GPU (nvidia-smi or /dev/nvidia0): torch==2.14.1 (+ torchvision
# 0.29.1 for the tests), the CUDA build. Without one: the CPU build of torch==2.13.0 (from
# $TORCH_CPU_INDEX, default PyTorch's CPU index, when it answers; this image's local index
# has it too). PyPI's torchvision wheels are CUDA builds that do not import with a CPU torch,
# so the tests take the CUDA pair unless the CPU index gives torchvision==0.28.0 as well.
# TORCH_SPEC="torch==X [torchvision==Y]" overrides all of this.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}
case "$mode" in
  demo | test) ;;
  *) echo "usage: bash scripts/setup.sh [demo|test]" >&2; exit 2 ;;
esac

missing=()
command -v g++ >/dev/null 2>&1 || missing+=(g++)
[ -f /usr/include/jpeglib.h ] || [ -f /usr/include/x86_64-linux-gnu/jpeglib.h ] \
  || missing+=(libjpeg-dev)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
if [ "$mode" = test ]; then
  command -v cjpeg >/dev/null 2>&1 || missing+=(libjpeg-turbo-progs)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] missing system packages; run: sudo apt-get install ${missing[*]}" \
      "(Fedora: sudo dnf install gcc-c++ libjpeg-turbo-devel libjpeg-turbo-utils)" >&2
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

has_gpu() {
  { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; } || [ -e /dev/nvidia0 ]
}
answers() {  # answers URL: the index is reachable within a few seconds
  python - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=4)
EOF
}
torch_ok() {
  if [ "$mode" = test ]; then
    python -c "import torch, torchvision" >/dev/null 2>&1
  else
    python -c "import torch" >/dev/null 2>&1
  fi
}

index_args=()
if [ -n "${TORCH_SPEC:-}" ]; then
  spec=$TORCH_SPEC
elif torch_ok; then
  spec=""
elif has_gpu; then
  spec="torch==2.14.1"
  [ "$mode" = test ] && spec="$spec torchvision==0.29.1"
else
  cpu_index=${TORCH_CPU_INDEX-https://download.pytorch.org/whl/cpu}
  if [ -n "$cpu_index" ] && answers "$cpu_index"; then
    index_args=(--extra-index-url "$cpu_index")
    spec="torch==2.13.0"
    [ "$mode" = test ] && spec="$spec torchvision==0.28.0"
  elif [ "$mode" = demo ]; then
    spec="torch==2.13.0"
  else
    echo "[setup] no GPU, but no CPU torchvision either (PyPI has CUDA builds only):" \
      "the tests use the CUDA pair"
    spec="torch==2.14.1 torchvision==0.29.1"
  fi
fi
if [ -n "$spec" ]; then
  echo "[setup] pip install $spec ${index_args[*]}"
  # shellcheck disable=SC2086
  pip install -q ${index_args[@]+"${index_args[@]}"} $spec
else
  echo "[setup] keeping $(python -c 'import torch; print("torch", torch.__version__)')"
fi
# Pin the torch just installed, so no extra (torchvision, kornia, ...) swaps it for another
# (its public version: "==2.14.1" keeps 2.14.1+cu130, and a global "torch<=2.14.1" agrees).
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" >"$constraints"

echo "[setup] pip install build tools"
pip install -q -c "$constraints" "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
extras=demo
[ "$mode" = test ] && extras="dev,demo"
echo "[setup] pip install -e .[$extras] (builds the C++ extension)"
pip install -q -c "$constraints" ${index_args[@]+"${index_args[@]}"} --no-build-isolation \
  -e ".[$extras]"
python -c "import slipstream._core" || { echo "[setup] the C++ extension did not import" >&2; exit 1; }

if [ "$mode" = test ]; then
  # The DALI operator plugin is compiled on first use (~30-60 s) into the plugin root
  # ($SLIPSTREAM_PLUGIN_DIR, default ~/.cache/slipstream/dali_plugin); build it now.
  if ! python -c "from slipstream.dali.plugin import find_cuda_include; find_cuda_include()" \
    2>/dev/null; then
    echo "[setup] no cuda_runtime.h on this machine: pip install the CUDA header wheels"
    pip install -q nvidia-cuda-runtime-cu12 nvidia-cuda-nvcc-cu12 nvidia-cuda-cccl-cu12
  fi
  echo "[setup] building the DALI operator plugin"
  slipstream build-plugin || { echo "[setup] the DALI operator plugin did not build" >&2; exit 1; }
fi
echo "[setup] ready ($mode): $(python -c 'import slipstream, torch; print("slipstream", slipstream.__version__, "torch", torch.__version__)')"
