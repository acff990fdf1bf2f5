#!/usr/bin/env bash
# Benchmarks: regkit against the baselines the issues name, on one generated
# tree, in one run, printed as ratios. No timing is asserted anywhere.
#
# usage: scripts/bench.sh [--tags N] [--runs K] [--work DIR] [SECTION...]
#   SECTION: a scripts/bench-<SECTION>.sh file, e.g. core (default: every one)
#   --tags N   tags in the generated tree (default 5000)
#   --runs K   runs per fast command; the median counts (default 5)
#   --work DIR where trees and outputs go (default /dev/shm/regkit-bench
#              when /dev/shm has 6 GB free, else /tmp/regkit-bench)
#
# Why tmpfs by default: on this project's VMs the disk is shared and noisy,
# and a benchmark loop that deletes an output and at once writes it again
# makes ext4 scan for recently deleted inodes on every mkdir (seen with perf:
# `recently_deleted` in `__ext4_new_inode`), which times the previous run's
# `rm -rf` rather than the command. On tmpfs every command does the same
# syscalls and the figures repeat. `--work` on a disk folder measures there.
#
# The tree is written by `scripts/fixture.py generate bench`, which a test
# (tests/it/fixtures.rs) proves writes exactly what the real registry writes
# after pushing the same images.
set -euo pipefail
cd "$(dirname "$0")/.."

TAGS=5000
RUNS=5
WORK=/tmp/regkit-bench
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt 6000000 ]; then
  WORK=/dev/shm/regkit-bench
fi
SECTIONS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tags) TAGS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) echo "bench: unknown option $1" >&2; exit 2 ;;
    *) SECTIONS+=("$1"); shift ;;
  esac
done
cargo build --release --quiet --bin regkit --example replay
REGKIT=$PWD/target/release/regkit
REPLAY=$PWD/target/release/examples/replay
mkdir -p "$WORK"
TREE=$WORK/tree-$TAGS
if [ ! -d "$TREE" ]; then
  python3 scripts/fixture.py generate bench --tags "$TAGS" "$TREE" >&2
fi
V2=$TREE/docker/registry/v2
OUT=$WORK/out

declare -A T      # name -> median seconds
declare -A MEM    # name -> peak RSS (KB)

now() { echo "$EPOCHREALTIME"; }

# measure NAME RUNS PREP CMD: runs PREP (untimed), then CMD (timed), RUNS times.
measure() {
  local name=$1 runs=$2 prep=$3 cmd=$4 times=() i s e
  for ((i = 0; i < runs; i++)); do
    eval "$prep"
    sync
    s=$(now)
    eval "$cmd" >/dev/null
    e=$(now)
    times+=("$(echo "$e - $s" | bc -l)")
  done
  T[$name]=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '  %-34s %8.3f s  (median of %d)\n' "$name" "${T[$name]}" "$runs" >&2
}

# peak NAME PREP CMD: the peak resident memory of CMD.
peak() {
  local name=$1 prep=$2 cmd=$3
  eval "$prep"
  /usr/bin/time -o "$WORK/peak.txt" -f '%M' bash -c "$cmd" >/dev/null 2>&1
  MEM[$name]=$(tail -n 1 "$WORK/peak.txt")
  printf '  %-34s %8d KB peak RSS\n' "$name" "${MEM[$name]}" >&2
}

ratio() { echo "scale=2; $1 / $2" | bc -l; }

# verdict VALUE OP TARGET: "met" or "MISSED".
verdict() { if (( $(echo "$1 $2 $3" | bc -l) )); then echo met; else echo MISSED; fi; }

REPORT=()
row() { REPORT+=("$(printf '| %s | %s | %s | %s |' "$1" "$2" "$3" "$4")"); }

# Each scripts/bench-<name>.sh defines section_<name>, using the helpers above.
for f in scripts/bench-*.sh; do
  # shellcheck source=/dev/null
  . "$f"
done
[ ${#SECTIONS[@]} -gt 0 ] || SECTIONS=($(ls scripts/bench-*.sh | sed -e 's|scripts/bench-||' -e 's|\.sh$||'))

for s in "${SECTIONS[@]}"; do
  "section_$s"
done

echo
echo "regkit bench: $TAGS tags, $(nproc) cores, $(date -u +%Y-%m-%d), command: scripts/bench.sh ${SECTIONS[*]}"
echo
echo "| measure | result | target | |"
echo "| --- | --- | --- | --- |"
printf '%s\n' "${REPORT[@]}"
