#!/usr/bin/env bash
# Creates (or reuses) the virtual environment .venv with the pinned OpenMMLab stack.
#
# Idempotent: a stamp file records a hash of the pin files and of this script; when it matches,
# nothing is installed or compiled. The compiled mmcv wheel is cached outside the repository,
# keyed by torch version, Python version and machine, because pip's own wheel cache keys it by
# the source archive only and would silently reuse a wheel built against another torch.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMHRFORMER_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.mmhrformer-stamp"

want="$(cat "$ROOT"/requirements/*.txt "$ROOT/tools/install_env.sh" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

start=$SECONDS
echo "[install_env] setting up $VENV (first run: about 12 minutes, mostly compiling mmcv)"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
py="$VENV/bin/python"
# uv installs the stack: it keeps every downloaded wheel in its cache (~/.cache/uv), where pip
# keeps none from this machine's index, and links them into the venv in parallel (a fresh venv
# from a warm cache in seconds, 126 s through pip). pip stays in the venv: it compiles mmcv and
# xtcocotools below, and the wheel test (tests/test_packaging.py) builds with it.
# --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set (this machine kind sets
# it), nothing would ever write the .pyc files, and every process would import the stack from
# source (16 s instead of 7 s for torch and the three hosts).
"$py" -m pip install --disable-pip-version-check -q "$(grep -E '^uv==' "$ROOT/requirements/build.txt")"
pip_install() { "$VENV/bin/uv" pip install --python "$py" -q --compile-bytecode "$@"; }

pin() { grep -E "^$1([=<> ]|$)" "$ROOT/requirements/stack.txt" | head -n1; }
locked=(-c "$ROOT/requirements/lock.txt")

pip_install "${locked[@]}" "$(pin torch)" "$(pin torchvision)"
pip_install "${locked[@]}" -r "$ROOT/requirements/build.txt"

torch_ver="$("$py" -c 'import torch; print(torch.__version__)')"
py_tag="$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/mmhrformer/wheels/torch-${torch_ver}-${py_tag}-$(uname -m)"
mkdir -p "$cache"

# mmcv 2.1.0 is the newest release that mmsegmentation 1.2.2 / mmdet 3.3.0 accept, and it is
# published only as source: compile its ops once against this torch.
if ! ls "$cache"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    echo "[install_env] compiling mmcv 2.1.0 against torch $torch_ver (about 9 minutes on 2 cores)"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" FORCE_CUDA=0 CXX="$ROOT/tools/cxx20.sh" \
        "$py" -m pip wheel --disable-pip-version-check -q --no-deps --no-build-isolation \
        -w "$cache" mmcv==2.1.0
fi
pip_install --no-deps "$cache"/mmcv-2.1.0-*.whl
# mmcv's own runtime requirements (addict, yapf, ...), without letting pip touch mmcv itself.
pip_install "${locked[@]}" addict packaging pyyaml yapf

pip_install "${locked[@]}" -r "$ROOT/requirements/stack.txt"

# xtcocotools' published wheels are built for numpy 1.x and fail under numpy 2; build it here.
if ! ls "$cache"/xtcocotools-*.whl >/dev/null 2>&1; then
    "$py" -m pip wheel --disable-pip-version-check -q --no-deps --no-build-isolation \
        --no-binary xtcocotools -w "$cache" "$(grep -E '^xtcocotools==' "$ROOT/requirements/lock.txt")"
fi
pip_install --no-deps "$cache"/xtcocotools-*.whl
pip_install "${locked[@]}" pycocotools

# mmpose 1.3.2 declares chumpy, which does not build and which 2D top-down code never imports;
# its real runtime needs are in stack.txt.
pip_install --no-deps "$(grep -E '^mmpose==' "$ROOT/requirements/lock.txt")"

pip_install --no-deps -e "$ROOT"

# A wheel built for another torch would import but fail at the first op call: check one op.
"$py" - <<'PY'
import torch
from mmcv.ops import nms
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)[1]
assert keep.tolist() == [0], keep
import mmseg, mmpose, mmpretrain, mmhrformer  # noqa: F401
PY
echo "$want" > "$STAMP"
echo "[install_env] done in $((SECONDS - start)) s; venv size $(du -sh "$VENV" | cut -f1)"
