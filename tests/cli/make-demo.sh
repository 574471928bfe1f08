#!/usr/bin/env bash
# `make demo` builds the programs scripts/demo.sh runs and nothing else: not the unit tests and
# fuzzers that `make build` adds (57 of 172 build steps), nor a tool the demo does not use.
set -euo pipefail
source_dir=${DSK_SOURCE_DIR:?}
build_dir=${DSK_BUILD_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }

# The build command make would run (-n: print, run nothing; deps and the demo itself included).
build_line=$(make -s -n -C "$source_dir" demo BUILD="$build_dir" JOBS=2 | grep -- "cmake --build" || true)
[ "$(wc -l <<<"$build_line")" = 1 ] || fail "make demo: one build command expected: $build_line"
targets=$(sed -n 's/.* --target //p' <<<"$build_line" | tr ' ' '\n' | sort -u)
[ -n "$targets" ] || fail "make demo builds every target: $build_line"

# The tools the demo runs: each dsk-* command word of scripts/demo.sh that is a program in tools/.
used=$(grep -v '^\s*#' "$source_dir/scripts/demo.sh" | grep -oE '\bdsk-[a-z-]+' | sort -u |
  while read -r tool; do [ -f "$source_dir/tools/$tool.cpp" ] && echo "$tool"; done)
[ "$targets" = "$used" ] || fail "make demo builds '$(echo $targets)', the demo runs '$(echo $used)'"

# Nothing test-only is needed to build them.
if ninja -C "$build_dir" -t inputs $targets | grep -E '(^|/)tests/|doctest|fuzz'; then
  fail "the demo's targets depend on test code"
fi
echo "make demo: ok"
