#!/usr/bin/env bash
# sanitize.sh — builds the library and the GoogleTest suite with AddressSanitizer +
# UndefinedBehaviorSanitizer (NORMKIT_SANITIZE) in build-asan and runs it; any report fails.
# Only what the C++ tests need is built (no Python, CLI, bench) to keep CI on 2 cores short.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${NORMKIT_ASAN_BUILD:-build-asan}
# -O1: what the sanitizer documentation recommends, and quicker to compile than -O2.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DNORMKIT_SANITIZE=ON -DNORMKIT_BUILD_PYTHON=OFF -DNORMKIT_BUILD_TOOLS=OFF -DNORMKIT_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target normkit_tests -j "$(nproc)"
# LeakSanitizer is on too: the suite must not leak.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$build/normkit_tests" --gtest_brief=1 "$@"
echo "sanitize: normkit_tests passed under ASan + UBSan"
