#!/usr/bin/env bash
# Fetches into .whl/ what the lent GPU machine (kind nvidia-h200: Python 3.12, torch 2.11, no
# network) lacks to run benchmarks/gpu_check.py, for tools/device/run.sh to install there offline.
#
# Run here, where PyPI is reachable:   bash tools/device/prepare.sh
#
# The machine already has torch, torchvision, numpy, scipy, matplotlib, pillow, opencv (headless),
# pyyaml, rich, six, regex, packaging, einops, tqdm, cython, ninja and wheel (see the device
# library's KINDS.md): only the OpenMMLab stack and the pure-Python packages it imports without
# the machine having them travel, at the versions of requirements/lock.txt. mmcv 2.1.0 exists only
# as source and xtcocotools' wheels break under numpy 2: both travel as source and are compiled
# there against that machine's torch and numpy. Everything that travels (the working tree and
# .whl) must stay under the device tool's 64 MiB: the script prints the total and fails over it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="${WHL_DIR:-$ROOT/.whl}"
BUDGET_MIB="${BUDGET_MIB:-64}"
PY="${PYTHON:-python3}"
LOCK="$ROOT/requirements/lock.txt"

# Installed at import by the hosts (checked in a Python 3.12 venv that holds only the GPU
# machine's own packages, see docs/gpu.md): mmengine needs addict, yapf (-> platformdirs) and
# termcolor; mmseg ftfy (-> wcwidth) and prettytable; mmpose json_tricks, munkres and xtcocotools;
# mmdet (imported by mmpose) pycocotools, shapely and terminaltables; mmpretrain
# importlib_metadata (the backport, also on Python 3.12; -> lazy_importer), mat4py and the module
# modelindex, which the package model-index holds (-> ordered_set; the package named modelindex
# is an empty placeholder). setuptools < 81 still has pkg_resources, which mmcv's setup.py imports.
WHEELS=(mmengine mmsegmentation mmpose mmdet mmpretrain
        addict yapf platformdirs termcolor ftfy wcwidth prettytable json_tricks munkres
        pycocotools shapely terminaltables importlib_metadata lazy_importer mat4py model-index
        ordered_set)
SOURCES=(mmcv xtcocotools)

pinned() {  # NAME -> NAME==VERSION from the lock file (names compared as pip normalises them)
    local want line
    want="$(echo "$1" | tr 'A-Z_.' 'a-z--')"
    while IFS= read -r line; do
        [[ "$line" == *==* ]] || continue
        if [[ "$(echo "${line%%==*}" | tr 'A-Z_.' 'a-z--')" == "$want" ]]; then
            echo "$line"
            return
        fi
    done < "$LOCK"
    echo "prepare.sh: $1 has no pin in requirements/lock.txt" >&2
    exit 2
}

start=$SECONDS
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Only the machine's platform: pure-Python wheels match any, compiled ones must be cp312 x86-64.
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
pip_download() { "$PY" -m pip download --disable-pip-version-check -q --no-deps -d "$tmp" "$@"; }

specs=()
for name in "${WHEELS[@]}"; do specs+=("$(pinned "$name")"); done
specs+=('setuptools<81')
pip_download --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    "${platforms[@]}" "${specs[@]}"

# pip reads an sdist's metadata by running its setup.py, which for mmcv imports pkg_resources
# (gone from setuptools 81) and for xtcocotools numpy: a scratch venv holds both for that.
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --disable-pip-version-check -q 'setuptools<81' wheel numpy
for name in "${SOURCES[@]}"; do
    "$tmp/venv/bin/python" -m pip download --disable-pip-version-check -q --no-deps -d "$tmp/src" \
        --no-binary=:all: --no-build-isolation "$(pinned "$name")"
done
rm -rf "$tmp/venv"
mv "$tmp"/src/* "$tmp"/ && rmdir "$tmp/src"

# One version of each package, nothing left over from an earlier run: two versions of a name stop
# the whole offline install.
rm -rf "$DEST"
mkdir -p "$DEST"
mv "$tmp"/* "$DEST"/

whl_bytes="$(du -cb "$DEST"/* | tail -n1 | cut -f1)"
# What travels besides: tracked files and untracked ones that git does not ignore.
tree_bytes="$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
              | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')"
total=$((whl_bytes + tree_bytes))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
ls -l "$DEST" | tail -n +2 | awk '{printf "  %8.2f MiB  %s\n", $5 / 1048576, $9}'
echo "[prepare] $(ls "$DEST" | wc -l) files in $DEST: $(mib "$whl_bytes"); working tree $(mib "$tree_bytes");" \
     "together $(mib "$total") of the ${BUDGET_MIB} MiB that may travel ($((SECONDS - start)) s)"
if (( total > BUDGET_MIB * 1048576 )); then
    echo "prepare.sh: over the ${BUDGET_MIB} MiB the device tool carries" >&2
    exit 1
fi
