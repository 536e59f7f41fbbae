#!/usr/bin/env bash
# Installs every Debian 12 package driftrec needs, with apt-get only.
#
# Idempotent: packages already present are skipped, so a second run is quick and
# touches nothing.  Fails loudly, naming the package, when one cannot be installed.
#
# Usage: deploy/install-deps.sh [GROUP ...]     (default: all groups)
#   build   compilers, CMake and the C libraries the product links against
#   python  training, export, reports and interop tests (/usr/bin/python3)
#   test    what the test suite needs beyond build + python (sanitizers, NEON under qemu,
#           redis and nginx for integration tests)
#   bench   peers measured in the benchmarks (hnswlib, FAISS, ONNX writer)
set -euo pipefail

# Why each package is here: the comment beside it.
pkgs_build=(
    build-essential cmake pkg-config   # toolchain and the one build for everything C
    libgrpc-dev                        # gRPC C core 1.51: the server and the C client
    libprotobuf-c-dev protobuf-c-compiler protobuf-compiler  # messages, protoc-c at build time
    grpc-proto                         # grpc/health/v1/health.proto
    libdnnl-dev                        # oneDNN 2.6: second matrix-product backend
    libjemalloc-dev                    # the server's allocator and its statistics
    libbenchmark-dev                   # Google Benchmark for bench/kernels_bench
    libcjson-dev                       # JSON: manifests, config, logs
    libutf8proc-dev                    # Unicode properties for the WordPiece tokenizer
    liblmdb-dev                        # embedded durable history store
    libhiredis-dev                     # shared history store for many replicas
    libmicrohttpd-dev                  # Prometheus /metrics endpoint
    libssl-dev                         # libcrypto: SHA-256 of model files, HMAC-SHA256 of user ids in logs,
                                       # PEM checks of TLS files and token digests
    clang-format                       # make format / make check-format
)
pkgs_python=(
    python3 python3-numpy python3-torch  # training, export, reference outputs
    libopenblas0-pthread                 # torch/numpy fp32 on OpenBLAS, not the reference BLAS
    python3-grpcio python3-protobuf      # a real gRPC client nobody here wrote
    python3-yaml                         # validating deploy manifests in tests
    python3-matplotlib python3-tqdm      # report plots, progress bars on long work
)
pkgs_test=(
    clang libclang-rt-14-dev           # libFuzzer targets, sanitizers
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static  # NEON under qemu-aarch64
    redis-server nginx                 # the Redis history store's tests, A/B proxy test
    openssl                            # test certificates for the TLS and mTLS tests
)
pkgs_bench=(
    libhnswlib-dev libfaiss-dev        # ANN peers
    python3-onnx                       # writes the ONNX models ONNX Runtime runs as a peer
)

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(build python test bench)

wanted=()
for g in "${groups[@]}"; do
    case "$g" in
    build) wanted+=("${pkgs_build[@]}") ;;
    python) wanted+=("${pkgs_python[@]}") ;;
    test) wanted+=("${pkgs_test[@]}") ;;
    bench) wanted+=("${pkgs_bench[@]}") ;;
    *) echo "install-deps: unknown group '$g' (build, python, test, bench)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#wanted[@]} packages present (${groups[*]})"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: need root to install: ${missing[*]}" >&2
        exit 1
    fi
else
    SUDO=
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "install-deps: apt-get update failed" >&2; exit 1; }
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    # Retry one by one so the error names the package that failed.
    for p in "${missing[@]}"; do
        $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 ||
            { echo "install-deps: FAILED to install package '$p'" >&2; exit 1; }
    done
fi

# nginx and redis-server start system services on install; the tests start their own
# instances on loopback, so stop the packaged ones where a service manager runs them.
for svc in nginx redis-server; do
    if [[ " ${missing[*]} " == *" $svc "* ]] && command -v service >/dev/null 2>&1; then
        $SUDO service "$svc" stop >/dev/null 2>&1 || true
    fi
done
echo "install-deps: done"
