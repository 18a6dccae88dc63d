#!/usr/bin/env bash
# On the lent GPU machine: installs the OpenMMLab stack from .whl/ (made by tools/device/prepare.sh)
# without any network, compiles what travels as source, then runs benchmarks/gpu_check.py.
#
#   bash tools/device/run.sh                          # the GPU check; results under $OUT
#   bash tools/device/run.sh --device cpu --quick     # the offline dry run, on any machine
#
# Arguments go to gpu_check.py. What .whl/ holds is installed into a folder put first on
# PYTHONPATH, so that the machine's torch, triton and numpy stay what they are. (Not a venv with
# --system-site-packages: the machine's python3 is itself a venv, whose packages such a venv
# would not see.) mmcv's ops are compiled for the CPU only: MMSeg imports mmcv.ops, none of the
# checked models calls one, and mmcv's CUDA kernels would take minutes of nvcc on the lease.
# Each step's seconds are printed and kept in $OUT/timings.txt; the whole script aims to end
# within GPU_CHECK_DEADLINE_S (450) seconds, inside the 8 minutes a call may take. Rerunning on a
# machine still warm reuses the installed folder and the compiled wheels.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
WHL="$ROOT/.whl"
PY="${PYTHON:-python3}"
SITE="${GPU_CHECK_SITE:-/tmp/gpu-check-site}"
BUILT="${GPU_CHECK_WHEELS:-/tmp/gpu-check-wheels}"
OUT="${OUT:-$ROOT/work_dirs/gpu_check}"
mkdir -p "$OUT" "$BUILT"

if ! ls "$WHL"/mmcv-2.1.0.tar.gz >/dev/null 2>&1; then
    echo "run.sh: no .whl/ with the stack here: run tools/device/prepare.sh, then carry .whl" >&2
    exit 2
fi

TIMINGS="$OUT/timings.txt"
: > "$TIMINGS"
step() {  # step NAME COMMAND...: runs it, prints and records its wall seconds, returns its status
    local name="$1" t0="$EPOCHREALTIME" rc=0
    shift
    "$@" || rc=$?
    awk -v name="$name" -v t0="$t0" -v t1="$EPOCHREALTIME" \
        'BEGIN {printf "[run.sh] %-36s %6.1f s\n", name, t1 - t0}' | tee -a "$TIMINGS"
    return $rc
}
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
pip_offline() {
    "$PY" -m pip --disable-pip-version-check -q "$@"
}

stamp="$SITE/.gpu-check-stamp"
want="$(cat "$WHL"/* | sha256sum | cut -d' ' -f1)"

install_wheels() {
    rm -rf "$SITE"
    # --no-deps: the machine's own packages satisfy the rest, and pip must not look for
    # opencv-python, chumpy and others that the hosts declare but never import here.
    pip_offline install --no-index --no-deps --no-compile --target "$SITE" "$WHL"/*.whl
}
build_mmcv() {
    if ! ls "$BUILT"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
        # mmcv's setup.py builds CUDA kernels whenever torch sees a GPU: hide it from the build.
        CUDA_VISIBLE_DEVICES='' MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" \
            CXX="$ROOT/tools/cxx20.sh" \
            pip_offline wheel --no-index --no-deps --no-build-isolation -w "$BUILT" \
            "$WHL"/mmcv-2.1.0.tar.gz
    fi
    pip_offline install --no-index --no-deps --target "$SITE" "$BUILT"/mmcv-2.1.0-*.whl
}
build_xtcocotools() {
    if ! ls "$BUILT"/xtcocotools-*.whl >/dev/null 2>&1; then
        pip_offline wheel --no-index --no-deps --no-build-isolation -w "$BUILT" \
            "$WHL"/xtcocotools-*.tar.gz
    fi
    pip_offline install --no-index --no-deps --target "$SITE" "$BUILT"/xtcocotools-*.whl
}
check_imports() {
    # A wheel built against another torch imports but fails at the first op call: call one.
    "$PY" - <<'PY'
import torch
from mmcv.ops import nms
keep = nms(torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]), torch.tensor([.9, .8]), .5)[1]
assert keep.tolist() == [0], keep
import mmdet, mmengine, mmpose, mmpretrain, mmseg  # noqa: F401
print(f'[run.sh] torch {torch.__version__} (CUDA {torch.version.cuda}, GPU: '
      f'{torch.cuda.get_device_name() if torch.cuda.is_available() else "none"}), '
      f'mmcv ops ok, mmengine {mmengine.__version__}, mmseg {mmseg.__version__}, '
      f'mmpose {mmpose.__version__}, mmdet {mmdet.__version__}, '
      f'mmpretrain {mmpretrain.__version__}')
PY
}

total0=$SECONDS
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "[run.sh] reusing $SITE"
else
    step "install $(ls "$WHL"/*.whl | wc -l) wheels (offline)" install_wheels
    step "compile mmcv 2.1.0 ops, CPU, $(nproc) jobs" build_mmcv
    step "compile xtcocotools" build_xtcocotools
fi
step "import check (mmcv.ops.nms, hosts)" check_imports
echo "$want" > "$stamp"  # only an install that passed its check is reused
# What is left of the deadline after the installs goes to the check, which leaves out the
# sections that would not fit (an explicit --budget-s among the arguments wins).
budget=$((${GPU_CHECK_DEADLINE_S:-450} - (SECONDS - total0)))
# The dry run puts a transformers that MMPretrain 1.2 cannot import first on the check's path, as
# the H200 had one (5.17, which broke the MMPretrain row there): gpu_check.py must hide it.
check_path="$PYTHONPATH"
if [[ " $* " == *" --quick "* ]]; then
    check_path="$ROOT/tests/data/incompatible_transformers:$check_path"
fi
rc=0
step "benchmarks/gpu_check.py" env PYTHONUNBUFFERED=1 PYTHONPATH="$check_path" \
    "$PY" benchmarks/gpu_check.py --budget-s "$budget" --out "$OUT" "$@" || rc=$?
echo "[run.sh] total $((SECONDS - total0)) s; results in $OUT" | tee -a "$TIMINGS"
exit $rc
