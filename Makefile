# weft: set-up, build, tests, demo and benchmarks on Debian bookworm.
#
#   make demo    install what is missing, build, train a small GPT on 4 local ranks
#   make test    install what is missing, build, run the whole suite, then the ASan/UBSan run
#                and the ThreadSanitizer run
#   make bench   weft against Open MPI and Gloo, on 2 and then 4 ranks
#   make bench-train  weft-train against PyTorch eager (installs Debian's python3-torch first)
#   make bench-parallel  weft-train on every dp x tp x pp layout of 4 and 8 ranks
#
# Every target is idempotent: packages are installed only when missing, CMake configures only
# a build directory that has not been configured (Ninja re-runs CMake when a CMakeLists changes).

SHELL := /bin/bash

# Everything the build, the tests and the benchmarks need on a minimal bookworm.
# gRPC and protobuf: the coordinator ranks meet through (proto/coordinator.proto).
# iproute2, slurm-wlm and munge: the integration tests of jobs across hosts (network namespaces)
# and under a real single-node Slurm; openssl: the coordinator's TLS test makes its certificates.
# libcli11-dev: the programs' flags (runtime/command_line.h).
DEB_PACKAGES := cmake ninja-build g++ make pkg-config procps python3 \
  libgtest-dev \
  libopenmpi-dev openmpi-bin libgloo-dev libopenblas-dev nlohmann-json3-dev libxxhash-dev python3-numpy \
  libcli11-dev \
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
  iproute2 slurm-wlm munge openssl

# `make bench-train` needs these.
BENCH_TRAIN_PACKAGES := python3-torch

# The Python module and its torch.distributed backend (python/), with their tests: pybind11, the
# Python headers, numpy, DLPack, libtorch and PyTorch.
DEB_PACKAGES += pybind11-dev python3-dev python3-numpy libdlpack-dev libtorch-dev python3-torch

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# CUDA (kernels/cuda, tests/gpu, the GPU benchmarks) is built only where nvcc exists.
NVCC := $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
WEFT_WITH_CUDA := $(if $(NVCC),ON,OFF)

# Overridable, e.g. `make test BUILD_DIR=build-mine ASAN_DIR=build-mine-asan`.
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan
BENCH_SIZES ?= 8,1K,64K,1M,16M,64M,256M

# Extra options for bench/bench-train, e.g. `make bench-train BENCH_TRAIN_ARGS="--steps 50"`.
BENCH_TRAIN_ARGS ?=
# Extra options for bench/bench-parallel, e.g. `make bench-parallel BENCH_PARALLEL_ARGS="--steps 20"`.
BENCH_PARALLEL_ARGS ?=

.PHONY: all deps build test test-asan test-tsan demo bench bench-train bench-parallel clean
all: build

# $(call install_missing,PACKAGES): apt-get install those of PACKAGES that are not installed
# (nothing at all when every one is). A recipe line of its own in any target.
define install_missing
@if ! command -v dpkg-query >/dev/null; then \
  echo "make $@: not a Debian system; install these yourself: $(1)"; exit 0; \
fi; \
missing=""; \
for p in $(1); do \
  dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -qx 'install ok installed' \
    || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  echo "make $@: installing$$missing"; \
  $(SUDO) apt-get update -q && \
  $(SUDO) env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends $$missing; \
fi
endef

deps:
	$(call install_missing,$(DEB_PACKAGES))

build: deps
	@[ -f $(BUILD_DIR)/build.ninja ] || $(if $(NVCC),CUDACXX=$(NVCC)) \
	  cmake --preset default -B $(BUILD_DIR) -DWEFT_WITH_CUDA=$(WEFT_WITH_CUDA)
	cmake --build $(BUILD_DIR)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j2 --timeout 600
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory test-tsan

# The multi-process tests again under AddressSanitizer + UndefinedBehaviorSanitizer. The
# 64 MiB runs are left to the plain build: under ASan they cost minutes and exercise no path
# the smaller sizes do not. Only the executables those tests run are built. Two at a time, as
# the plain suite: their ranks mostly wait on each other, and all 93 passed so on a loaded
# 2-core machine (load average 13).
ASAN_TESTS := multiproc_collectives_test multiproc_mpi_test multiproc_direct_test \
  multiproc_faults_test multiproc_setup_death_test
test-asan: deps
	@[ -f $(ASAN_DIR)/build.ninja ] || cmake --preset debug-asan -B $(ASAN_DIR) -DWEFT_WITH_CUDA=OFF
	cmake --build $(ASAN_DIR) --target $(ASAN_TESTS)
	ctest --test-dir $(ASAN_DIR) -L multiproc -E 'AllreduceOver64MiB|^python_' \
	  --output-on-failure --timeout 600 -j2

# The tests that run weft's threads, again under ThreadSanitizer: the executor, the tcp, shm and
# inproc transports (comm_unit_test), the coordinator and its clients' beat threads
# (coordinator_test), the kernels' own threads and OpenBLAS's (kernels_test), the trace recorder
# written from several threads (runtime_test), data parallelism's bucket overlap and the model
# lanes (parallel_unit_test, train_unit_test), the multi-process collectives and faults on tcp,
# shm and under mpirun, and weft-train on 1, 2 and 4 ranks with and without lanes. Only those
# executables are built. The
# 64 MiB cases are left to the plain build, as under ASan, and so is MpiDeadlines: it leaves
# communicator set-ups pending inside Open MPI on helper threads while the next ones start, and
# ThreadSanitizer then reports races and lock cycles between Open MPI's own internals (libmpi,
# libopen-pal, the vader BTL), nothing of weft's. Any report fails its test
# (halt_on_error); tests/tsan.supp names only third-party libraries, never weft's code.
# GCC 12's ThreadSanitizer dies with "unexpected memory mapping" on kernels that randomize mmap
# more than it allows; the tests run without address randomization (setarch -R) where the
# machine lets a process ask for that, else as they are (`sysctl vm.mmap_rnd_bits=28` fixes it).
TSAN_TESTS := comm_unit_test coordinator_test kernels_test parallel_unit_test train_unit_test runtime_test \
  multiproc_collectives_test multiproc_faults_test multiproc_mpi_test train_integration_test
TSAN_RUN_OPTIONS := suppressions=$(CURDIR)/tests/tsan.supp:halt_on_error=1:second_deadlock_stack=1
TSAN_NO_ASLR := $(shell setarch $$(uname -m) -R true 2>/dev/null && echo setarch $$(uname -m) -R)
test-tsan: deps
	@[ -f $(TSAN_DIR)/build.ninja ] || cmake --preset tsan -B $(TSAN_DIR) -DWEFT_WITH_CUDA=OFF
	cmake --build $(TSAN_DIR) --target $(TSAN_TESTS)
	TSAN_OPTIONS=$(TSAN_RUN_OPTIONS) $(TSAN_NO_ASLR) ctest --test-dir $(TSAN_DIR) -L 'unit|multiproc' \
	  -E '64MiB|^layering|^readme|^MpiDeadlines' --output-on-failure -j2 --timeout 600
	TSAN_OPTIONS=$(TSAN_RUN_OPTIONS) $(TSAN_NO_ASLR) ctest --test-dir $(TSAN_DIR) \
	  -R '^Train\.OneTwoAndFourRanks' \
	  --output-on-failure --timeout 600

# The main job: a small GPT trained on 4 local ranks of the built-in corpus (flags in
# train/demo.flags, shared with the test that checks this model learns). It leaves its JSON log,
# the ranks' timeline (a Chrome trace: ui.perfetto.dev, Open trace file) and a plot of the loss
# and tokens/s (an SVG: any browser).
DEMO_LOG ?= $(BUILD_DIR)/demo-log.json
DEMO_TRACE ?= $(BUILD_DIR)/demo-trace.json
DEMO_PLOT ?= $(BUILD_DIR)/demo-plot.svg
demo: build
	@rm -f $(DEMO_LOG)
	$(BUILD_DIR)/launcher/weftrun -n 4 -- $(BUILD_DIR)/train/weft-train \
	  $$(cat train/demo.flags) --log-json $(DEMO_LOG) --trace $(DEMO_TRACE) --plot $(DEMO_PLOT)

bench: build
	bench/compare-collectives --ranks 2 --sizes $(BENCH_SIZES) --build-dir $(BUILD_DIR)
	bench/compare-collectives --ranks 4 --sizes $(BENCH_SIZES) --build-dir $(BUILD_DIR)

# weft-train against PyTorch eager on the same model, batch and cores, the sgemm peak, and the
# data-parallel communication hiding: one table (bench/bench-train --help).
bench-train: build
	$(call install_missing,$(BENCH_TRAIN_PACKAGES))
	bench/bench-train --build-dir $(BUILD_DIR) $(BENCH_TRAIN_ARGS)

# Every dp x tp x pp layout of 4 and 8 ranks (1f1b, and interleaved and zb with a pipeline):
# tokens/s against one rank, measured pipeline idle beside the schedule's bubble, and the share
# of step time in tp communication: one table (bench/bench-parallel --help).
bench-parallel: build
	bench/bench-parallel --build-dir $(BUILD_DIR) --ranks 4,8 $(BENCH_PARALLEL_ARGS)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR)
