# The two commands of the README: `make test` and `make demo`.
BUILD ?= build
BUILD_ASAN ?= build-asan
JOBS ?= $(shell nproc)

.PHONY: all setup build build-asan test test-fast demo bench clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@mkdir -p $(BUILD) && flock $(BUILD)/.lock sh -c 'cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory'

build-asan: setup
	@mkdir -p $(BUILD_ASAN) && flock $(BUILD_ASAN)/.lock sh -c 'cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPMAE_SANITIZE=ON >/dev/null && cmake --build $(BUILD_ASAN) -j $(JOBS) -- --no-print-directory'

# The whole suite, then again under AddressSanitizer + UBSan.
test: build build-asan
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

# Only the optimised build's suite (quicker while developing).
test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)/bin/apmae

bench: build
	@bash bench/run.sh $(BUILD)/bin/apmae

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
