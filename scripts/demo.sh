#!/usr/bin/env bash
# The demo: cut real photos into a few thousand JPEGs, build a slip cache, stream 3 epochs,
# print img/s per epoch and save a contact sheet of an augmented batch.
# Extra arguments go to `slipstream demo` (see `slipstream demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
# shellcheck disable=SC1091
. .venv/bin/activate
slipstream demo "$@"
