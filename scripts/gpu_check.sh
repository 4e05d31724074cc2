#!/usr/bin/env bash
# GPU checks on a lent GPU machine with CUDA PyTorch and no network (the workplace's `device`
# tool). What that machine lacks travels with the calls under .devcarry/ (git-ignored;
# scripts/gpu_carry.sh prepares it and lists the calls):
#   .devcarry/jpeg/*.deb     Debian's libjpeg62-turbo and -dev (`apt-get download`)
#   .devcarry/whl/*.whl      kornia and kornia_rs wheels for that machine's Python
#   .devcarry/whl2/*.whl     DALI's pure-Python needs (optree, astunparse, gast, nvtx,
#                            makefun, libcst), carried with the last DALI piece
#   .devcarry/partN/         pieces of an xz tarball of DALI and its nvidia-* libraries from a
#                            venv here (`split -b 60M`), one folder per call: a call carries
#                            at most 64 MiB, so DALI takes several calls on one warm machine
# Usage: bash scripts/gpu_check.sh PHASE...
#   stash  copy this call's DALI pieces to /tmp/dali-parts (kept while the machine is warm)
#   setup  libjpeg, kornia, then build and install slipstream (editable)
#   dali   join the pieces and unpack DALI into the interpreter's site-packages
#   tests  the gpu-marked tests and the DALI test files
#   bench  bench_augment on cuda, bench_yuv420_torch, then bench_loader (GPU rows appear
#          with CUDA + DALI)
#   diagnose  bench_dali_gpu (decode graphs side by side, loader profile); the DALI test files
#   suite  the whole test suite (files needing packages that machine lacks fail to collect)
# Logs and results go to $OUT (or /tmp/gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
PY=${PY:-python3}
SITE=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
export CPATH=/tmp/jpeg/usr/include:/tmp/jpeg/usr/include/x86_64-linux-gnu
export LIBRARY_PATH=/tmp/jpeg/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=/tmp/jpeg/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export CMAKE_PREFIX_PATH=/tmp/jpeg/usr
export SLIPSTREAM_CACHE_DIR=/tmp/slipstream-cache

phase_stash() {
  mkdir -p /tmp/dali-parts
  for d in .devcarry/part*; do [ -d "$d" ] && cp -n "$d"/* /tmp/dali-parts/; done
  ls -la /tmp/dali-parts
}

phase_setup() {
  nvidia-smi -L
  $PY -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
  for deb in .devcarry/jpeg/*.deb; do dpkg -x "$deb" /tmp/jpeg; done
  make_bench_photos &
  $PY -m pip install -q --no-index --no-deps --no-compile .devcarry/whl/*.whl
  $PY -m pip install -q --no-build-isolation --no-deps -e . 2>&1 | tail -5
  $PY -c "import slipstream._core, kornia; print('slipstream and kornia import')"
  wait
  find /tmp/bench-photos -name '*.jpg' | wc -l
}

# 16 x 250 demo photos written in parallel, gathered into one class-folder tree.
make_bench_photos() {
  for k in $(seq 0 15); do
    $PY -c "import sys; exec(open('slipstream/demo/photos.py').read())
make_demo_folder(f'/tmp/bench-parts/{sys.argv[1]}', 250, seed=int(sys.argv[1]))" "$k" &
  done
  wait
  for k in $(seq 0 15); do
    for c in /tmp/bench-parts/"$k"/*/; do
      mkdir -p "/tmp/bench-photos/$(basename "$c")"
      for f in "$c"*.jpg; do mv "$f" "/tmp/bench-photos/$(basename "$c")/$k-$(basename "$f")"; done
    done
  done
}

phase_dali() {
  $PY -m pip install -q --no-index --no-deps --no-compile .devcarry/whl2/*.whl
  cat /tmp/dali-parts/dali.tar.xz.* | $PY -c "
import sys, tarfile
tarfile.open(fileobj=sys.stdin.buffer, mode='r|xz').extractall(sys.argv[1], filter='fully_trusted')
" "$SITE"
  $PY -c "import nvidia.dali as d; print('DALI', d.__version__)"
}

phase_tests() {
  $PY -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_dali_gpu_path.py tests/test_loader.py \
    tests/test_augment_keys.py tests/test_yuv420_torch.py 2>&1 | tee "$OUT/gpu-tests.log" | tail -25
  $PY -m pytest -q -p no:cacheprovider -rs tests/test_dali_loader.py tests/test_dali_plugin.py \
    tests/test_dali_gpu_path.py 2>&1 | tee "$OUT/dali-tests.log" | tail -15
}

phase_bench() {
  ls benchmarks/results > /tmp/results-before
  $PY benchmarks/bench_augment.py --device cuda --record 2>&1 | tee "$OUT/bench-augment.log" | tail -45
  $PY benchmarks/bench_augment_masking.py --device cuda 2>&1 | tail -6
  $PY benchmarks/bench_yuv420_torch.py --data /tmp/bench-photos --rounds 3 --batches 8 2>&1 | tee "$OUT/bench-yuv420-torch.log" \
    | tail -12
  $PY benchmarks/bench_loader.py --data /tmp/bench-photos --epochs 4 --record \
    --skip "libjpeg-turbo full decode only" "slipstream raw bytes" 2>&1 \
    | tee "$OUT/bench-loader.log" | tail -20
  ls benchmarks/results | grep -vxF -f /tmp/results-before | while read -r f; do
    cp "benchmarks/results/$f" "$OUT"/
  done
  ls "$OUT"
}

phase_diagnose() {
  $PY -W ignore benchmarks/bench_dali_gpu.py --data /tmp/bench-photos --epochs 3 --profile 2>&1 \
    | tee "$OUT/bench-dali-gpu.log" | tail -60
  $PY -X faulthandler -m pytest -q -p no:cacheprovider -rs tests/test_dali_loader.py -k corrupt 2>&1 \
    | tee "$OUT/dali-corrupt.log" | tail -5
  $PY -X faulthandler -m pytest -q -p no:cacheprovider -rs tests/test_dali_loader.py \
    tests/test_dali_plugin.py tests/test_dali_gpu_path.py -k "not corrupt" 2>&1 \
    | tee "$OUT/dali-tests.log" | tail -8
}

phase_suite() {
  $PY -m pytest -q -p no:cacheprovider --continue-on-collection-errors -rs tests 2>&1 \
    | tee "$OUT/suite.log" | tail -30
}

for phase in "$@"; do
  echo "=== $phase ($(date +%T))"
  "phase_$phase"
done
echo "=== done ($(date +%T))"
