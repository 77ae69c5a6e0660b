#!/bin/bash
# README says a program uses weft by linking the CMake target weft_comm. This builds such a
# program (tests/integration/consumer/: add_subdirectory(weft), link weft_comm, no C++ standard
# of its own) and runs it as one rank doing an allreduce.
#
#   consumer_test.sh WEFT_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER BUILD_TYPE [LAUNCHER]
#
# WORK_DIR is kept between runs, so a later run rebuilds only what changed; the first builds the
# ~60 files weft_comm is made of (ccache, when there is one, makes a rebuilt WORK_DIR cheap).
# Only the target `consumer` is built: weft's tests, benchmarks and CUDA code are off.
set -u
src=$1 work=$2 generator=$3 cxx=$4 build_type=$5 launcher=${6:-}
[ -n "$launcher" ] || launcher=$(command -v ccache || true)

cmake -S "$src/tests/integration/consumer" -B "$work" -G "$generator" \
  -DWEFT_SOURCE_DIR="$src" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE="$build_type" \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$launcher" -DCMAKE_C_COMPILER_LAUNCHER="$launcher" \
  -DWEFT_WITH_CUDA=OFF >"$work.configure.log" 2>&1 \
  || { cat "$work.configure.log"; echo "consumer_test: configuring the consumer failed"; exit 1; }
cmake --build "$work" --target consumer --parallel 2 \
  || { echo "consumer_test: building a program that links weft_comm failed (above)"; exit 1; }

out=$("$work/consumer" 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "consumer_test: the consumer exited $rc"; exit 1; }
echo "$out" | grep -q "rank 0 of 1: allreduce over .* gave 1$" \
  || { echo "consumer_test: the consumer did not report its allreduce"; exit 1; }
