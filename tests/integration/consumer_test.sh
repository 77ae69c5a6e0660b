#!/bin/bash
# README says a program uses weft by linking the CMake target weft_comm. This builds such a
# program (tests/integration/consumer/: add_subdirectory(weft), link weft_comm, no C++ standard
# of its own) and runs it as one rank doing an allreduce, then as two under WEFTRUN. README's
# C++ example of the API is built the same way and run alike.
#
#   consumer_test.sh WEFT_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER LAUNCHER WEFTRUN
#
# LAUNCHER is the compiler launcher (ccache), empty for none.
# WORK_DIR is kept between runs, so a later run rebuilds only what changed; the first builds the
# ~60 files weft_comm is made of (ccache, when there is one, makes a rebuilt WORK_DIR cheap).
# Only the two programs' targets are built: weft's tests, benchmarks and CUDA code are off, and
# at -O0 without debug information: what is tested is that the targets compile and link for a
# consumer, and a fresh machine (no ccache) builds them in about half the time of -O2 -g.
set -u
src=$1 work=$2 generator=$3 cxx=$4 launcher=$5 weftrun=$6
[ -n "$launcher" ] || launcher=$(command -v ccache || true)

# README's ```cpp block, rewritten only when it changed (so an unchanged one is not rebuilt).
mkdir -p "$work"
awk '/^```cpp$/ { inside = 1; next } /^```$/ { if (inside) exit } inside' "$src/README.md" \
  >"$work/readme_example.cc.new"
[ -s "$work/readme_example.cc.new" ] \
  || { echo "consumer_test: README.md has no \`\`\`cpp example of the API"; exit 1; }
cmp -s "$work/readme_example.cc.new" "$work/readme_example.cc" \
  || mv "$work/readme_example.cc.new" "$work/readme_example.cc"
rm -f "$work/readme_example.cc.new"

cmake -S "$src/tests/integration/consumer" -B "$work" -G "$generator" \
  -DWEFT_SOURCE_DIR="$src" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0 \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$launcher" -DCMAKE_C_COMPILER_LAUNCHER="$launcher" \
  -DWEFT_WITH_CUDA=OFF >"$work.configure.log" 2>&1 \
  || { cat "$work.configure.log"; echo "consumer_test: configuring the consumer failed"; exit 1; }
cmake --build "$work" --target consumer readme_example --parallel 2 \
  || { echo "consumer_test: building a program that links weft_comm failed (above)"; exit 1; }

# run EXPECTED_PATTERN COMMAND...: COMMAND must exit 0 and print a line matching the pattern.
run() {
  local expected=$1; shift
  echo "+ $*"
  out=$(timeout 120 "$@" 2>&1); rc=$?
  echo "$out"
  [ $rc -eq 0 ] || { echo "consumer_test: '$*' exited $rc"; exit 1; }
  echo "$out" | grep -q "$expected" \
    || { echo "consumer_test: '$*' did not print '$expected'"; exit 1; }
}
run "rank 0 of 1: allreduce over .* gave 1$" "$work/consumer"
run "rank 1 of 2: allreduce over .* gave 3$" "$weftrun" -n 2 -- "$work/consumer"
run "" "$work/readme_example"
run "" "$weftrun" -n 2 -- "$work/readme_example"
