#!/usr/bin/env bash
# Prepare .devcarry/ (git-ignored) for scripts/gpu_check.sh: everything a lent GPU machine
# without network needs and lacks, in pieces that fit one call's 64 MiB each.
# Run here, once per session, after scripts/test.sh has made .venv (with DALI installed).
#   .devcarry/jpeg    Debian's libjpeg62-turbo + -dev (headers to build slipstream there)
#   .devcarry/whl     kornia + kornia_rs for Python 3.12 (the machine's interpreter)
#   .devcarry/whl2    DALI's Python needs for 3.12
#   .devcarry/partN   DALI and its nvidia-* libraries from .venv: an xz tarball split in 54 MiB
# Then, on one warm machine, calls in a row (each within 30 s of the last):
#   carry [.devcarry/part0, .devcarry/jpeg, .devcarry/whl]: bash scripts/gpu_check.sh stash setup
#   carry [.devcarry/partK] for each middle piece:            bash scripts/gpu_check.sh stash
#   carry [last piece, .devcarry/whl2]:   bash scripts/gpu_check.sh stash dali tests bench
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info .devcarry/jpeg .devcarry/whl .devcarry/whl2
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
PY=.venv/bin/python
SITE=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

(cd .devcarry/jpeg && rm -f ./*.deb && apt-get download libjpeg62-turbo-dev libjpeg62-turbo \
  && for f in ./*.deb; do mv "$f" "${f//%3a/-}"; done)

download() {  # wheels for the machine's CPython 3.12 on x86-64
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 \
    --platform manylinux1_x86_64 -d "$@"
}
download .devcarry/whl kornia==0.9.0 kornia_rs==0.2.0
download .devcarry/whl2 optree astunparse==1.6.3 gast==0.6.0 nvtx makefun "libcst~=1.8"

dists=$(cd "$SITE" && ls -d nvidia_dali_cuda120-*.dist-info nvidia_nvimgcodec_cu12-*.dist-info \
  nvidia_nvjpeg_cu12-*.dist-info nvidia_libnvcomp_cu12-*.dist-info \
  nvidia_nvjpeg2k_cu12-*.dist-info nvidia_nvtiff_cu12-*.dist-info)
rm -rf .devcarry/part*
# shellcheck disable=SC2086  # $dists: one word per dist-info folder
tar -C "$SITE" --exclude=__pycache__ -cf - nvidia/dali nvidia/nvimgcodec nvidia/nvjpeg \
  nvidia/libnvcomp nvidia/nvjpeg2k nvidia/nvtiff $dists | xz -T0 -6 > .devcarry/dali.tar.xz
split -b 54M -d -a 1 .devcarry/dali.tar.xz .devcarry/dali.tar.xz.
rm .devcarry/dali.tar.xz
for f in .devcarry/dali.tar.xz.*; do
  mkdir -p ".devcarry/part${f##*.}" && mv "$f" ".devcarry/part${f##*.}/"
done
du -sh .devcarry/*
