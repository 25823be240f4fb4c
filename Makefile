# Makefile — the user's front door. `make bench` and `make test` install what is
# missing (Debian packages), configure and build, then run the default job or every
# test (a second time under AddressSanitizer and UndefinedBehaviorSanitizer).
# `make figures RUN=...` draws a run's figures.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
BENCH_ARGS ?=
PYTHON     ?= /usr/bin/python3

# mpirun refuses root unless told; CI and containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT = 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = 1

.PHONY: all deps build bench test test-release test-asan figures clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

bench: build
	./$(BUILD)/uniprefill-bench $(BENCH_ARGS)

test: test-release test-asan

test-release: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The sanitizer pass covers the CPU code: CUDA stays off there.
test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNIPREFILL_SANITIZE=ON -DUNIPREFILL_CUDA=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS) -L cpu

# Paper figures of one run: make figures RUN=results/runs/X.h5 [OUT=dir]
RUN ?=
OUT ?= results/figures/$(basename $(notdir $(RUN)))
figures:
	@test -n "$(RUN)" || { echo "usage: make figures RUN=path/to/run.h5 [OUT=dir]" >&2; exit 2; }
	$(PYTHON) analysis/figures.py $(RUN) -o $(OUT)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
