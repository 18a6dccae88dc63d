#!/usr/bin/env bash
# C++ compiler wrapper for building mmcv 2.1.0 against torch >= 2.14, whose headers need C++20
# while mmcv's setup.py asks for C++17 on the command line (gcc honours the last -std given, and
# torch's extension builder places mmcv's flag last, so it is rewritten here).
args=()
for a in "$@"; do
    [[ "$a" == "-std=c++17" ]] && a="-std=c++20"
    args+=("$a")
done
exec "${REAL_CXX:-g++}" "${args[@]}"
