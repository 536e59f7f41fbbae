# driftrec: the commands a user types.  CMake does the building; this file sets it up.
#   make run            build, self-check the kernels, serve on 127.0.0.1:50051
#   make test           install what is missing, build, run every test
#   make build          build only
#   make model          generate the demo shop and train the default model on it (<= 10 min)
#   make bench-kernels  the kernel micro-benchmark table (build/bench/kernels.json)
#   make bench-deps     benchmark-only dependencies (peers)
#   make bench-models   BERT-mini and the interest model vs ONNX Runtime and PyTorch
#   make bench-server   driftrec-server vs a Python grpcio + PyTorch peer (saturation, p99)
#   make bench-overload the server at 3x a lowered capacity for 5 minutes (refusals, RSS)
#   make bench-concurrency  Recommend at concurrency 1, 16, 64: cached, not cached, query text
#   make test-asan      the unit and kernel tests under ASan + UBSan (build-asan/)
#   make test-tsan      the unit tests and the server's concurrency tests under TSan (build-tsan/)
#   make format / make check-format
MAKEFLAGS += --no-print-directory
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_FLAGS ?=

.PHONY: all build configure deps deps-train deps-test model run test test-asan test-tsan bench-deps bench-kernels \
        format check-format clean

all: build

deps:
	@bash deploy/install-deps.sh build

deps-train:
	@bash deploy/install-deps.sh build python

deps-test:
	@bash deploy/install-deps.sh build python test

configure: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The self-check, then the server in the foreground (Ctrl-C drains and stops it), serving the
# demo model bundle (trained first by `make model` when absent; with DEMO_BUNDLE pointing
# elsewhere and missing, Recommend and Rank answer FAILED_PRECONDITION).  The example calls
# use the bundle's first item id.
DEMO_RUN := models/train/out/runs/demo
DEMO_BUNDLE ?= $(DEMO_RUN)/bundle
run: build
	@if [ ! -f $(DEMO_BUNDLE)/manifest.json ] && [ "$(DEMO_BUNDLE)" = "$(DEMO_RUN)/bundle" ]; then \
		echo "No demo model yet: training it first (make model)."; $(MAKE) model; fi
	@$(BUILD_DIR)/server/driftrec-server --self-check
	@echo
	@echo "driftrec-server on 127.0.0.1:50051, metrics on http://127.0.0.1:9090/metrics, history in var/history."
	@if [ -d $(DEMO_BUNDLE) ]; then echo "Model: $(DEMO_BUNDLE)"; \
	else echo "No model bundle at $(DEMO_BUNDLE): Recommend and Rank need one; 'make model' trains the demo model."; fi
	@item=$$(head -n 1 $(DEMO_BUNDLE)/items/ids.txt 2>/dev/null || echo boots-1); \
	echo "Try, from another shell:"; \
	echo "  $(BUILD_DIR)/server/driftrec-cli health"; \
	echo "  $(BUILD_DIR)/server/driftrec-cli ingest --user alice --item $$item --type click --dwell 12"; \
	echo "  $(BUILD_DIR)/server/driftrec-cli recommend --user alice --k 5"; \
	echo "  $(BUILD_DIR)/server/driftrec-cli rank --user alice $$item"; \
	echo "  $(BUILD_DIR)/server/driftrec-history var/history user alice"
	@echo
	@$(BUILD_DIR)/server/driftrec-server --history var/history \
		$$(if [ -d $(DEMO_BUNDLE) ]; then echo --model $(DEMO_BUNDLE); fi)

# The default demo model: the demo shop's data (models/train/demo_data.py), then BERT-mini
# pre-training, the interest model, evaluation and export (models/train/configs/demo.json).
# The bundle lands in models/train/out/runs/demo/bundle, where `make run` looks for it.
model: build deps-train
	@/usr/bin/python3 models/train/demo_data.py --out models/train/out/demo-data --preset demo
	@DR_BUILD_DIR=$(BUILD_DIR) /usr/bin/python3 models/train/train.py models/train/configs/demo.json \
		--fresh --run-dir $(DEMO_RUN)
	@echo "model: report in $(DEMO_RUN)/report.md, bundle in $(DEMO_RUN)/bundle"

test: deps-test
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

# Unit, kernel and end-to-end tests again with the sanitizers (the e2e tests drive the
# instrumented server; the Python-only tests gain nothing there).
test-asan: deps-test
	@cmake -S . -B $(ASAN_DIR) -DDR_SANITIZE=address,undefined -DDR_BUILD_BENCH=OFF \
		$(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_DIR) -j $(JOBS)
	@cd $(ASAN_DIR) && ctest --output-on-failure -j $(JOBS) -L 'unit|kernels|e2e' -LE neon $(CTEST_FLAGS)

# The unit tests and the server's concurrency tests (the ctest entries labelled "tsan": the e2e
# classes that drive threads, reloads, drains and both history stores) under ThreadSanitizer.
# Any report fails: the process exits 66 (the e2e helper also looks for reports in the server's
# stderr).  tests/tsan.supp holds only reports inside uninstrumented libraries, each with why.
TSAN_OPTIONS ?= exitcode=66 second_deadlock_stack=1 history_size=4 \
	suppressions=$(CURDIR)/tests/tsan.supp
test-tsan: deps-test
	@cmake -S . -B $(TSAN_DIR) -DDR_SANITIZE=thread -DDR_BUILD_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(TSAN_DIR) -j $(JOBS)
	@cd $(TSAN_DIR) && TSAN_OPTIONS="$(TSAN_OPTIONS)" \
		ctest --output-on-failure -j $(JOBS) -L 'unit|tsan' -LE 'neon|e2e' $(CTEST_FLAGS)

bench-deps:
	@bash deploy/install-deps.sh build python bench
	@# ONNX Runtime for bench-models: npm's CPU build, into bench/models/node_modules (git-ignored).
	@# ONNXRUNTIME_NODE_INSTALL=skip: the package's install script would download extra binaries.
	@if command -v npm >/dev/null 2>&1; then \
		cd bench/models && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --loglevel=error; \
	else \
		echo "bench-deps: npm not found: no ONNX Runtime peer (Node.js >= 18 and npm: apt-get install nodejs npm)"; \
	fi

# One thread, pinned to one core where taskset exists, so runs compare.  One run per x86
# ISA this CPU has (oneDNN is capped to each run's ISA), merged into kernels.json.
BENCH_ISAS ?= $(shell $(BUILD_DIR)/server/driftrec-server --self-check 2>/dev/null | \
	grep -o '[a-z0-9]*(usable)' | sed 's/(usable)//' | grep -v '^ref$$' | tr '\n' ' ')
bench-kernels: build
	@$(BUILD_DIR)/bench/quant_accuracy
	@echo
	@set -e; for isa in $(BENCH_ISAS); do \
		$$(command -v taskset >/dev/null && echo taskset -c 0) $(BUILD_DIR)/bench/kernels_bench \
			--isa $$isa --json $(BUILD_DIR)/bench/kernels-$$isa.json $(BENCH_FLAGS); echo; \
	done
	@/usr/bin/python3 -c 'import json,sys; rows=[r for f in sys.argv[2:] for r in json.load(open(f))]; \
		json.dump(rows, open(sys.argv[1], "w"), indent=1); print("merged", len(rows), "rows into", sys.argv[1])' \
		$(BUILD_DIR)/bench/kernels.json $(foreach i,$(BENCH_ISAS),$(BUILD_DIR)/bench/kernels-$(i).json)

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' '*.cc' 2>/dev/null)

format:
	@clang-format -i $(FORMAT_FILES)

check-format:
	@clang-format --dry-run -Werror $(FORMAT_FILES) && echo "check-format: clean"

clean:
	@rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR)

# The ANN index against hnswlib and FAISS: synthetic 100k x 128 and the real item vectors
# (docs/ann.md).  One thread for queries, --threads for builds; JSON, PNG and a markdown table
# in build/bench/ann/.  bench-ann-scale: the 1M x 64 set (driftrec and hnswlib).
ANN_OUT = $(BUILD_DIR)/bench/ann
bench-ann: build
	@mkdir -p $(ANN_OUT)
	@OPENBLAS_NUM_THREADS=1 $(ANN_OUT)/ann_bench --sets synthetic,real --threads 2 \
		--work $(ANN_OUT) --json $(ANN_OUT)/ann.json $(ANN_FLAGS)
	@/usr/bin/python3 bench/ann/report.py $(ANN_OUT)/ann.json $(ANN_OUT)/ann.png

bench-ann-scale: build
	@mkdir -p $(ANN_OUT)
	@$(ANN_OUT)/ann_bench --sets scale --threads 2 --indexes driftrec,driftrec-rerank,hnswlib \
		--work $(ANN_OUT) --json $(ANN_OUT)/ann-scale.json $(ANN_FLAGS)
	@/usr/bin/python3 bench/ann/report.py $(ANN_OUT)/ann-scale.json $(ANN_OUT)/ann-scale.png
.PHONY: bench-ann bench-ann-scale

# BERT-mini (batch 1, 16) and the interest model (batch 1, 8) against ONNX Runtime (fp32, int8)
# and PyTorch fp32, one thread, the same random weights; docs/models.md (Benchmark).  Table on
# stdout, build/bench/models.json.  MODELS_BENCH_FLAGS: --rounds N, --quick, --isas LIST.
bench-models: build
	@/usr/bin/python3 bench/models/run.py --build $(BUILD_DIR) $(MODELS_BENCH_FLAGS)
.PHONY: bench-models

# driftrec-server against the Python grpcio + PyTorch peer (bench/peers/), the same bundle and
# client (driftrec-load, open loop, a replay of the demo shop's histories): saturation QPS and
# p50/p99 at 50% and 80% of it.  Needs `make model`.  Not in CI.  SERVER_BENCH_FLAGS: e.g.
# --peer-int8, --mix recommend_query=1.
bench-server: build
	@/usr/bin/python3 bench/peers/bench_server.py --build $(BUILD_DIR) $(SERVER_BENCH_FLAGS)

# driftrec-server at 3x a lowered capacity (1 worker) for 5 minutes: refusals, deadlines,
# resident memory (about 6 minutes).
bench-overload: build
	@/usr/bin/python3 bench/load/overload.py --build $(BUILD_DIR) $(OVERLOAD_FLAGS)

# Recommend's QPS, p50, p99 at concurrency 1, 16, 64: cached state, not cached, 50 inline
# events, and with a query text (a few minutes).
bench-concurrency: build
	@/usr/bin/python3 bench/load/concurrency.py --build $(BUILD_DIR) $(CONCURRENCY_FLAGS)
.PHONY: bench-server bench-overload bench-concurrency
