#!/usr/bin/env bash
# The one device command: bash benchmarks/gpu_check.sh [gpu_check.py options], with carry [".whl"]
# (filled here by python benchmarks/gpu_wheels.py). Installs the carried wheels beside the machine's
# own packages, then runs the check; everything it writes lands in $OUT (gpu_check.json/.md, logs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sa0_site \
        .whl/*.whl || { echo "gpu_check.sh: installing the carried wheels failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/sa0_site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 benchmarks/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
