#!/usr/bin/env bash
# test.sh — every test from a fresh Debian 12 machine: install, build, then run the C++
# (GoogleTest) and Python (pytest against PyTorch) suites and the CLI checks through CTest,
# then the C++ suite again under ASan + UBSan (build-asan) and a bounded fuzz run (build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
bash scripts/sanitize.sh
bash scripts/fuzz.sh "${NORMKIT_FUZZ_SECONDS:-60}"
