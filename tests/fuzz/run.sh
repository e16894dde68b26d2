#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (fuzzer + ASan + UBSan) and runs
# each for a bounded time from its committed seed corpus.
#   tests/fuzz/run.sh [seconds-per-target] [extra libFuzzer flags...]
# Env: FUZZ_BUILD_DIR (default <root>/build-fuzz), FUZZ_TARGETS (names).
# Exits non-zero if a target crashes, leaks or hangs; the reproducer is
# left in $FUZZ_BUILD_DIR/artifacts.  Once its cause is fixed, copy it into
# tests/fuzz/regressions/<target>/: every run replays those first.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SECONDS_EACH="${1:-20}"
shift || true
OUT="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
TARGETS="${FUZZ_TARGETS:-fuzz_frame fuzz_handshake fuzz_dispatch fuzz_pickle}"
CXX="${FUZZ_CXX:-clang++-14}"
mkdir -p "$OUT/artifacts"
# clang 14's LeakSanitizer loses track of a live thread whose kernel thread
# id an earlier, finished thread of the same process had ("Thread N not found
# in registry" under LSAN_OPTIONS=verbosity=1), and reports that thread's
# memory as leaked.  fuzz_dispatch's server makes a thread per dropped
# connection, ~1 per 6 inputs, so with the kernel's default pid_max of 32768
# ids come round again after ~33k threads (about a minute): a false leak.
# 4194304 is the kernel's maximum (and systemd's default on 64-bit).
pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 0)
if [ "$pid_max" -lt 4194304 ]; then
  if { echo 4194304 >/proc/sys/kernel/pid_max; } 2>/dev/null; then
    echo "fuzz: raised kernel.pid_max from $pid_max to 4194304 (thread ids must not repeat within a run)"
  else
    echo "fuzz: kernel.pid_max is $pid_max and cannot be raised: runs past ~$pid_max server threads may report a false leak"
  fi
fi
for t in $TARGETS; do
  src="$HERE/$t.cpp"
  bin="$OUT/$t"
  if [ ! -x "$bin" ] || [ -n "$(find "$HERE" "$ROOT/include" -newer "$bin" -name '*.[ch]pp' -print -quit)" ]; then
    echo "fuzz: building $t"
    "$CXX" -std=c++17 -g -O1 -Wall -Wextra -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
      -I"$ROOT/include" -I"$HERE" "$src" -o "$bin" -lboost_serialization -lcrypto -pthread
  fi
done
status=0
for t in $TARGETS; do
  work="$OUT/corpus/$t"
  mkdir -p "$work"
  # Inputs that once failed, replayed exactly (no mutation) before the
  # random run: a fixed defect that comes back fails here every time.
  reg="$HERE/regressions/$t"
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    if ! "$OUT/$t" -runs=0 -timeout=10 -rss_limit_mb=2048 "$reg" >"$OUT/$t.replay.log" 2>&1; then
      echo "fuzz: $t regression replay FAILED (log: $OUT/$t.replay.log)"; tail -40 "$OUT/$t.replay.log"; status=1
      continue
    fi
    echo "fuzz: $t replayed $(ls "$reg" | wc -l) regression inputs"
  fi
  echo "fuzz: running $t for ${SECONDS_EACH}s"
  # New inputs go to $work; the committed seeds are only read.
  if ! UBSAN_OPTIONS=print_stacktrace=1 "$OUT/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$OUT/artifacts/$t-" -print_final_stats=1 "$@" "$work" "$HERE/corpus/$t" \
       $( [ -d "$reg" ] && echo "$reg" ) \
       >"$OUT/$t.log" 2>&1; then
    echo "fuzz: $t FAILED (log: $OUT/$t.log)"; tail -40 "$OUT/$t.log"; status=1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$OUT/$t.log" | sed "s/^/fuzz: $t /" || true
done
exit $status
