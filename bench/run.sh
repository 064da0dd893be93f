#!/usr/bin/env bash
# Benchmark: backup and restore of a 2 GiB image pair with 1% of its 4 KiB blocks changed,
# timed beside `cat INFILE REFFILE > /dev/null` in the same run, the floor for reading both.
#
#   bench/run.sh [RUNS]          (default 5; environment: BENCH_DIR, BENCH_SIZE_MIB, DIFF_DD)
#
# When b3sum (`cargo install b3sum`) is installed, each round also times
# `b3sum --num-threads 2 INFILE REFFILE`: the BLAKE3 reference implementation hashing the same
# bytes on both cores, the floor for any backup that hashes both images.
#
# Restore is timed beside its own floor, an original-style apply: a plain loop of pwrite of
# the extents (read from a v1 diff of the same pair, as the original tool's restore reads its
# diff) followed by fsync, with no checks at all. One-pass restore (restore --base) into a
# new file is timed beside `cp --sparse=never REFFILE NEW && sync`, the floor for writing
# the whole image, after an untimed copy of the same size.
#
# Every round times cat, b3sum, backup, restore and their floors one after the other, so that
# a noisy neighbour slows all alike; the medians over the rounds are reported, with ratios.
# The images stay in the page cache (the machine has memory to spare), as cat's do: what is
# measured is diff-dd's own work, not the disk.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
size_mib=${BENCH_SIZE_MIB:-2048}
# BENCH_DIR keeps the pair between runs (and reuses it); otherwise a temporary directory.
if [[ -n ${BENCH_DIR:-} ]]; then
  work=$BENCH_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/diff-dd-bench.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi

if [[ -z ${DIFF_DD:-} ]]; then
  cargo build --release --locked --quiet
  DIFF_DD=$PWD/target/release/diff-dd
fi

base=$work/base.img new=$work/new.img diff=$work/bench.diff target=$work/target.img
if [[ $(stat -c %s "$new" 2>/dev/null) != "$((size_mib << 20))" ]]; then
  echo "making a ${size_mib} MiB pair in $work ..." >&2
  head -c "$((size_mib << 20))" /dev/urandom >"$base"
  cp "$base" "$new"
  # 1% of the 4 KiB blocks, chosen with a fixed seed, get new random contents.
  python3 - "$new" "$size_mib" <<'PY'
import os, random, sys
path, size_mib = sys.argv[1], int(sys.argv[2])
blocks = size_mib * 256
rng = random.Random(2026)
with open(path, "r+b") as f:
    for block in sorted(rng.sample(range(blocks), blocks // 100)):
        f.seek(block * 4096)
        f.write(os.urandom(4096))
PY
fi
cat "$base" "$new" >/dev/null # into the page cache
echo "timing $runs rounds ..." >&2

now() { date +%s%N; }
seconds() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The floor for restore: the extents of a v1 diff (u64 LE offset, one sector) with adjacent
# sectors joined, prepared once as offset, length and data (so that the timed part is only
# the writing), applied by bench/floor.rs: each written with one pwrite, then one fsync.
floor_extents=$work/bench-extents.bin
if [[ ! -s $floor_extents ]]; then
  "$DIFF_DD" backup --format v1 "$new" "$base" "$work/bench-v1.diff"
  python3 - "$work/bench-v1.diff" "$floor_extents" <<'PY'
import sys
sector, record = 512, 8 + 512
data = open(sys.argv[1], "rb").read()
extents, end = [], None
for at in range(0, len(data), record):
    offset = int.from_bytes(data[at:at + 8], "little")
    if offset != end:
        extents.append([offset, []])
    extents[-1][1].append(data[at + 8:at + record])
    end = offset + sector
with open(sys.argv[2], "wb") as out:
    for offset, sectors in extents:
        joined = b"".join(sectors)
        out.write(offset.to_bytes(8, "little") + len(joined).to_bytes(8, "little") + joined)
PY
fi
floor=$work/floor
[[ $floor -nt bench/floor.rs ]] || rustc --edition 2021 -O -o "$floor" bench/floor.rs
apply_floor() { "$floor" "$floor_extents" "$1"; } # TARGET

b3sum=$(command -v b3sum || true)
one_pass=$work/one-pass.img copy=$work/copy.img
declare -a cat_ns b3sum_ns backup_ns restore_ns floor_ns one_pass_ns copy_ns
for ((round = 1; round <= runs; round++)); do
  start=$(now); cat "$new" "$base" >/dev/null; end=$(now)
  cat_ns+=($((end - start)))

  if [[ -n $b3sum ]]; then
    start=$(now); "$b3sum" --num-threads 2 "$new" "$base" >/dev/null; end=$(now)
    b3sum_ns+=($((end - start)))
  else
    b3sum_ns+=(0) # not installed: the column shows 0 and no ratio is printed
  fi

  rm -f "$diff"
  start=$(now); "$DIFF_DD" "$new" "$base" "$diff"; end=$(now)
  backup_ns+=($((end - start)))

  # Not timed: the dd of the full image back, synced, so that restore's own fsync does not
  # also pay for writing the copy.
  cp "$base" "$target" && sync "$target"
  start=$(now); "$DIFF_DD" "$diff" "$target"; end=$(now)
  restore_ns+=($((end - start)))
  cmp -s "$target" "$new" || { echo "restore did not rebuild INFILE" >&2; exit 1; }

  cp "$base" "$target" && sync "$target"
  start=$(now); apply_floor "$target"; end=$(now)
  floor_ns+=($((end - start)))
  cmp -s "$target" "$new" || { echo "the floor did not rebuild INFILE" >&2; exit 1; }

  # The first new 2 GiB file written after a pause costs several times what the next one
  # does on a virtual machine (the host hands the memory back page by page): an untimed
  # copy takes that cost, then the two are timed in alternating order, each right after
  # the file before it was removed.
  rm -f "$copy" && cp --sparse=never "$base" "$copy" && sync "$copy"
  for turn in 0 1; do
    rm -f "$one_pass" "$copy" && sync
    if (((round + turn) % 2 == 0)); then
      start=$(now); "$DIFF_DD" restore --base "$base" "$diff" "$one_pass"; end=$(now)
      one_pass_ns+=($((end - start)))
      cmp -s "$one_pass" "$new" || { echo "one-pass restore did not rebuild INFILE" >&2; exit 1; }
    else
      start=$(now); cp --sparse=never "$base" "$copy" && sync "$copy"; end=$(now)
      copy_ns+=($((end - start)))
    fi
  done
  rm -f "$one_pass" "$copy"

  printf 'round %d: cat %ss  b3sum %ss  backup %ss  restore %ss  floor %ss  one-pass %ss  cp %ss\n' \
    "$round" "$(seconds "${cat_ns[-1]}")" "$(seconds "${b3sum_ns[-1]}")" \
    "$(seconds "${backup_ns[-1]}")" "$(seconds "${restore_ns[-1]}")" \
    "$(seconds "${floor_ns[-1]}")" "$(seconds "${one_pass_ns[-1]}")" "$(seconds "${copy_ns[-1]}")"
done

cat_median=$(printf '%s\n' "${cat_ns[@]}" | median)
backup_median=$(printf '%s\n' "${backup_ns[@]}" | median)
restore_median=$(printf '%s\n' "${restore_ns[@]}" | median)
extents=$("$DIFF_DD" inspect --json "$diff" | python3 -c 'import json,sys; print(json.load(sys.stdin)["extent_count"])')
echo "pair: 2 x ${size_mib} MiB, diff $(stat -c %s "$diff") bytes, $extents extents; medians of $runs rounds:"
printf '  cat INFILE REFFILE  %ss\n' "$(seconds "$cat_median")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
if [[ -n $b3sum ]]; then
  b3sum_median=$(printf '%s\n' "${b3sum_ns[@]}" | median)
  printf '  b3sum, 2 threads    %ss  (%sx cat)\n' "$(seconds "$b3sum_median")" \
    "$(ratio "$b3sum_median" "$cat_median")"
fi
printf '  backup              %ss  (%sx cat' "$(seconds "$backup_median")" \
  "$(ratio "$backup_median" "$cat_median")"
[[ -n $b3sum ]] && printf ', %sx b3sum' "$(ratio "$backup_median" "$b3sum_median")"
printf ')\n'
floor_median=$(printf '%s\n' "${floor_ns[@]}" | median)
one_pass_median=$(printf '%s\n' "${one_pass_ns[@]}" | median)
copy_median=$(printf '%s\n' "${copy_ns[@]}" | median)
printf '  pwrite + fsync      %ss  (original-style apply of the extents, no checks)\n' \
  "$(seconds "$floor_median")"
printf '  restore             %ss  (%sx pwrite + fsync)\n' "$(seconds "$restore_median")" \
  "$(ratio "$restore_median" "$floor_median")"
printf '  cp --sparse=never   %ss  (REFFILE to a new file, and sync)\n' "$(seconds "$copy_median")"
printf '  restore --base      %ss  (%sx cp; into a new file, one pass)\n' \
  "$(seconds "$one_pass_median")" "$(ratio "$one_pass_median" "$copy_median")"
