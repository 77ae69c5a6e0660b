#!/bin/sh
# weft's C API as a user gets it: `cmake --install` into a fresh prefix, then
#  - examples/c built on the installed CMake package (find_package(weft)) and run on 3 ranks;
#  - tests/integration/capi/c_api_check.c built with pkg-config alone and run on 2, 3 and 4
#    ranks (every op, a split, errors as codes): every rank must pass every check.
# Usage: c_api_package_test.sh SOURCE_DIR BUILD_DIR WORK_DIR C_COMPILER GENERATOR
set -eu
src=$1 build=$2 work=$3 cc=$4 generator=$5
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
test -f "$prefix/include/weft/weft.h"
ls "$prefix"/lib*/libweft.so* >/dev/null

# The CMake package.
cmake -S "$src/examples/c" -B "$work/example" -G "$generator" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/example-configure.log"
cmake --build "$work/example" >"$work/example-build.log"
out=$(timeout 120 "$prefix/bin/weftrun" -n 3 -- "$work/example/weft-allreduce-example")
echo "$out"
echo "$out" | grep -q "3 ranks: allreduce sum = 6 12 18 24"

# pkg-config alone.
libdir=$(dirname "$(ls "$prefix"/lib*/pkgconfig/weft.pc)")
export PKG_CONFIG_PATH="$libdir"
# shellcheck disable=SC2046  # pkg-config's flags are words
"$cc" -std=c99 -Wall -Wextra -Werror $(pkg-config --cflags weft) \
  "$src/tests/integration/capi/c_api_check.c" -o "$work/c_api_check" \
  $(pkg-config --libs weft) -Wl,-rpath,"$(dirname "$libdir")" -lm
for n in 2 3 4; do
  out=$(timeout 120 "$prefix/bin/weftrun" -n "$n" -- "$work/c_api_check")
  echo "$out"
  passed=$(echo "$out" | grep -c "checks passed, 0 failed" || true)
  if [ "$passed" -ne "$n" ]; then
    echo "FAILED: $passed of $n ranks passed every check" >&2
    exit 1
  fi
done
echo "C API: installed package, example and checks on 2, 3 and 4 ranks passed"
