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
#   all    THE check (one call, at most 8 minutes, every step under `timeout`): setup, dali,
#          10,000 photos at ImageNet-like sizes (scripts/gpu_photos.py, short side 256-500,
#          written while slipstream builds), `pytest -m gpu`, the corrupt-sample test 3 times,
#          then every GPU benchmark row of issue 12: nvJPEG variants vs DALI's own pipeline +
#          loaders mixed / native / hybrid (bench_dali_gpu), torch YUV420 on CUDA vs mixed
#          (bench_yuv420_torch), augmentations vs kornia (bench_augment --device cuda).
#          Writes ONE results file, $OUT/gpu-check-<date>.md (machine, cores used, versions,
#          each command with its exit code and time, the tables), also copied into
#          benchmarks/results/ on the machine. DALI (~290 MB as xz) cannot travel in one
#          call (64 MiB): `stash` calls with the other pieces come first, on the same warm
#          machine; `all` goes with the last piece (see scripts/gpu_carry.sh).
#   photos only the photo folder (any machine; PHOTOS=N for fewer)
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
cd "$(dirname "$0")/.." || exit 1
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
  make_bench_photos > "$OUT/photos.log" 2>&1 &
  $PY -m pip install -q --no-index --no-deps --no-compile .devcarry/whl/*.whl
  $PY -m pip install -q --no-build-isolation --no-deps -e . 2>&1 | tail -5
  $PY -c "import slipstream._core, kornia; print('slipstream and kornia import')"
  wait
  find /tmp/bench-photos -name '*.jpg' | wc -l
}

# 10,000 photos at ImageNet-like sizes (short side 256-500), from the demo's bundled photos.
PHOTOS=${PHOTOS:-10000}
make_bench_photos() {
  $PY -c "import skimage" 2>/dev/null || echo "scikit-image is missing: no photos" >&2
  $PY scripts/gpu_photos.py /tmp/bench-photos --n "$PHOTOS"
}

phase_photos() {  # the data alone (runs anywhere: PHOTOS=200 bash scripts/gpu_check.sh photos)
  make_bench_photos
}

phase_dali() {
  if $PY -c "import nvidia.dali" 2>/dev/null; then $PY -c "import nvidia.dali as d; print('DALI', d.__version__, '(installed)')"; return; fi
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
  for f in benchmarks/results/*; do
    grep -qxF "$(basename "$f")" /tmp/results-before || cp "$f" "$OUT"/
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

# ---------------------------------------------------------------- all: the one check
RESULTS=""
LIMIT_END=0
step() {  # step NAME SECONDS COMMAND...: run under timeout, log, record rc and time
  local name=$1 limit=$2; shift 2
  local left=$((LIMIT_END - $(date +%s)))
  if [ "$left" -le 15 ]; then
    # shellcheck disable=SC2016  # the backticks are markdown
    printf '| %s | skipped (8-minute budget spent) | | `%s` |\n' "$name" "$*" >> "$RESULTS.steps"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0 rc
  t0=$(date +%s)
  timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  # shellcheck disable=SC2016  # the backticks are markdown
  printf '| %s | %s | %ss | `%s` |\n' "$name" "$rc" "$(($(date +%s) - t0))" "$*" >> "$RESULTS.steps"
  echo "--- $name: rc $rc ($(($(date +%s) - t0)) s)"
  tail -4 "$OUT/$name.log"
  return 0
}

phase_all() {
  LIMIT_END=$(($(date +%s) + ${BUDGET_S:-470}))
  RESULTS="$OUT/gpu-check-$(date +%Y-%m-%d-%H%M%S).md"
  : > "$RESULTS.steps"
  export PY OUT SITE PHOTOS
  export -f phase_setup phase_dali make_bench_photos
  step setup 240 bash -c phase_setup  # builds while the photos are written; waits for both
  step dali 120 bash -c phase_dali
  local threads
  threads=$(nproc)
  step pytest-gpu 150 "$PY" -X faulthandler -m pytest -q -p no:cacheprovider -m gpu -rs tests
  for k in 1 2 3; do
    step "corrupt-sample-$k" 45 "$PY" -X faulthandler -m pytest -q -p no:cacheprovider -rs \
      tests/test_dali_loader.py tests/test_dali_crash.py tests/test_hybrid.py -k "corrupt or throw"
  done
  step bench-dali-gpu 200 "$PY" -W ignore benchmarks/bench_dali_gpu.py --data /tmp/bench-photos \
    --epochs 3 --threads "$threads"
  step bench-yuv420-torch 90 "$PY" benchmarks/bench_yuv420_torch.py --data /tmp/bench-photos \
    --rounds 3 --batches 8
  step bench-augment 90 "$PY" benchmarks/bench_augment.py --device cuda
  write_results "$threads"
  mkdir -p benchmarks/results && cp "$RESULTS" benchmarks/results/
  echo "results: $RESULTS"
}

write_results() {
  {
    echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ) (scripts/gpu_check.sh all)"
    echo
    echo "## Machine"
    echo '```'
    nvidia-smi -L 2>&1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    grep -m1 'model name' /proc/cpuinfo
    echo "cores: nproc $(nproc), affinity $($PY -c 'import os; print(len(os.sched_getaffinity(0)))'); decode threads used: $1"
    $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1
    $PY -c "import nvidia.dali as d; print('DALI', d.__version__)" 2>&1
    echo "photos: $(find /tmp/bench-photos -name '*.jpg' | wc -l) JPEGs in /tmp/bench-photos (scripts/gpu_photos.py)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo '```'
    echo
    echo "## Steps (exit code 124: hit its time limit)"
    echo
    echo "| step | rc | time | command |"
    echo "| --- | ---: | ---: | --- |"
    cat "$RESULTS.steps"
    for name in pytest-gpu corrupt-sample-1 corrupt-sample-2 corrupt-sample-3; do
      echo; echo "## $name"; echo '```'; tail -15 "$OUT/$name.log" 2>/dev/null; echo '```'
    done
    echo; echo "## nvJPEG variants, loaders (bench_dali_gpu)"; echo
    grep -E '^\||^targets|^  ' "$OUT/bench-dali-gpu.log" 2>/dev/null | grep -v '^  *File'
    echo; echo "## torch YUV420 on CUDA (bench_yuv420_torch)"; echo '```'
    tail -15 "$OUT/bench-yuv420-torch.log" 2>/dev/null; echo '```'
    echo; echo "## Augmentations vs kornia (bench_augment --device cuda)"; echo '```'
    tail -45 "$OUT/bench-augment.log" 2>/dev/null; echo '```'
  } > "$RESULTS"
  rm -f "$RESULTS.steps"
}

for phase in "$@"; do
  echo "=== $phase ($(date +%T))"
  "phase_$phase"
done
echo "=== done ($(date +%T))"
