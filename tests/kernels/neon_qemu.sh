#!/usr/bin/env bash
# The NEON kernels on an x86 host: cross-compile for AArch64, run under qemu-aarch64-static.
#   neon_qemu.sh build SRC_DIR BUILD_DIR      configure + build the cross tree
#   neon_qemu.sh run BUILD_DIR CPU ISA        run test_kernels ISA under qemu -cpu CPU
# Exit 77 (skipped) when the cross compiler or qemu is missing, or the build was skipped.
# -cpu max has dotprod and i8mm; -cpu cortex-a72 has neither, so neondot must say SKIP there.
set -euo pipefail
mode=$1
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
    echo "SKIP: needs gcc-aarch64-linux-gnu and qemu-user-static (deploy/install-deps.sh test)"
    exit 77
fi
case "$mode" in
build)
    src=$2; build=$3
    cmake -S "$src" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/toolchain-aarch64.cmake" \
        -DDR_BUILD_BENCH=OFF -DDR_KERNELS_ONLY=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo ${DR_CROSS_FLAGS:-} >/dev/null
    cmake --build "$build" --target test_kernels test_dispatch -j "$(nproc)" >"$build.log" 2>&1 ||
        { cat "$build.log"; exit 1; }
    echo "built $build/tests/kernels/test_kernels for aarch64"
    ;;
run)
    build=$2; cpu=$3; isa=$4
    bin="$build/tests/kernels/test_kernels"
    if [ ! -x "$bin" ]; then
        echo "SKIP: no cross-built $bin (the build step was skipped or failed)"
        exit 77
    fi
    DR_TEST_EMULATED=1 exec qemu-aarch64-static -cpu "$cpu" "$bin" "$isa"
    ;;
*)
    echo "usage: $0 build SRC BUILD | run BUILD CPU ISA" >&2
    exit 2
    ;;
esac
