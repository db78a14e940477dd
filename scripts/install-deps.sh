#!/usr/bin/env bash
# install-deps.sh — installs the Debian 12 packages normkit builds, tests and benchmarks
# with (DESIGN.md §6). Idempotent: does nothing when every package is already present.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git doxygen
  libhwy-dev libomp-dev libgtest-dev libbenchmark-dev libcli11-dev
  pybind11-dev python3-dev python3-numpy python3-pytest python3-matplotlib
  python3-torch libtorch-dev libdnnl-dev libpng-dev
  libopenmpi-dev openmpi-bin libopenblas-dev zlib1g-dev dataset-fashion-mnist
  clang libclang-rt-14-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
