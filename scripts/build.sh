#!/usr/bin/env bash
# build.sh — configures and builds everything into build/ (Release, Ninja). Debian's Python
# packages belong to /usr/bin/python3, so CMake is pointed at that interpreter explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE=/usr/bin/python3 "$@"
cmake --build build -j "$(nproc)"
