#!/usr/bin/env bash
# tour.sh — the main job from a fresh Debian 12 machine: install, build, run `normkit tour`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/normkit tour
