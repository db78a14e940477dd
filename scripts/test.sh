#!/usr/bin/env bash
# test.sh — every test from a fresh Debian 12 machine: install, build, then run the C++
# (GoogleTest) and Python (pytest against PyTorch) suites and the CLI checks through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
