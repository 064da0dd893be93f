#!/usr/bin/env bash
# Benchmark of backups from a digest: `backup --digest`, which reads INFILE and a digest of
# REFFILE once each, beside the plain backup, which reads both images, and beside their floors,
# in the same rounds.
#
#   bench/digest.sh [RUNS]       (default 5; environment: BENCH_DIR, BENCH_SIZE_MIB, DIFF_DD,
#                                 ORIGINAL_DIFF_DD, B3SUM, BENCH_COLD)
#
# The pair is bench/run.sh's (2 GiB, 1% of 4 KiB blocks changed), made here if BENCH_DIR does
# not hold it; a directory holding bench/realistic.sh's pair (base.img, new.img) works too.
# Each round times, one after the other:
#   - `cat INFILE` and, when b3sum is installed (or B3SUM names it), `b3sum INFILE`;
#   - `digest REFFILE` (beside `b3sum REFFILE`, its floor);
#   - the plain backup; the original C diff-dd 1.0 when ORIGINAL_DIFF_DD names its binary (it
#     reads both images and hashes nothing); backup --digest; backup --digest --digest-out.
# With BENCH_COLD=1 (root: it writes /proc/sys/vm/drop_caches), each round also times
# `cat INFILE`, the plain backup and backup --digest with the page cache dropped before each.
# Medians over the rounds are printed, with ratios, and the sizes: the digest, the diffs, and
# peak RSS (GNU time) of backup --digest.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
size_mib=${BENCH_SIZE_MIB:-2048}
if [[ -n ${BENCH_DIR:-} ]]; then
  work=$BENCH_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/diff-dd-digest-bench.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
if [[ -z ${DIFF_DD:-} ]]; then
  cargo build --release --locked --quiet
  DIFF_DD=$PWD/target/release/diff-dd
fi
base=$work/base.img new=$work/new.img
if [[ ! -f $new ]]; then
  echo "making a ${size_mib} MiB pair in $work ..." >&2
  head -c "$((size_mib << 20))" /dev/urandom >"$base"
  cp "$base" "$new"
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
b3sum=${B3SUM:-$(command -v b3sum || true)}
original=${ORIGINAL_DIFF_DD:-}
cold=${BENCH_COLD:-0}
digest=$work/base.digest next=$work/next.digest
plain=$work/plain.diff from_digest=$work/digest.diff orig=$work/original.diff

now() { date +%s%N; }
seconds() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
declare -A times
# time NAME COMMAND...: appends the command's wall time to times[NAME].
time_it() {
  local name=$1 start end
  shift
  start=$(now); "$@" >/dev/null; end=$(now)
  times[$name]+="$((end - start)) "
}

cat "$base" "$new" >/dev/null
"$DIFF_DD" digest "$base" "$digest"
echo "timing $runs rounds ..." >&2
for ((round = 1; round <= runs; round++)); do
  time_it cat cat "$new"
  [[ -n $b3sum ]] && time_it b3sum "$b3sum" "$base"
  time_it digest "$DIFF_DD" digest "$base" "$digest"
  rm -f "$plain" "$from_digest" "$orig" "$next"
  time_it backup "$DIFF_DD" backup "$new" "$base" "$plain"
  [[ -n $original ]] && time_it original "$original" "$new" "$base" "$orig"
  time_it from_digest "$DIFF_DD" backup --digest "$digest" "$new" "$from_digest"
  rm -f "$from_digest"
  time_it digest_out "$DIFF_DD" backup --digest "$digest" --digest-out "$next" "$new" "$from_digest"
  if [[ $cold == 1 ]]; then
    drop_caches; time_it cold_cat cat "$new"
    drop_caches; rm -f "$plain"; time_it cold_backup "$DIFF_DD" backup "$new" "$base" "$plain"
    drop_caches; rm -f "$from_digest"
    time_it cold_from_digest "$DIFF_DD" backup --digest "$digest" "$new" "$from_digest"
    cat "$base" "$new" >/dev/null
  fi
  printf 'round %d:' "$round"
  for name in "${!times[@]}"; do
    last=${times[$name]% }
    printf ' %s %ss' "$name" "$(seconds "${last##* }")"
  done
  echo
done

# The restored image is INFILE, and NEXT is INFILE's digest.
cp "$base" "$work/target.img"
"$DIFF_DD" restore "$from_digest" "$work/target.img"
cmp -s "$work/target.img" "$new" || { echo "the diff from the digest did not restore INFILE" >&2; exit 1; }
rm -f "$work/target.img"
"$DIFF_DD" verify -q --digest "$next" "$new" || { echo "NEXT is not the digest of INFILE" >&2; exit 1; }

med() { printf '%s\n' ${times[$1]} | median; }
line() { # NAME LABEL [FLOOR_NAME...]: the median and its ratio to each floor measured
  local name=$1 label=$2 value ratios=""
  shift 2
  [[ -n ${times[$name]:-} ]] || return 0
  value=$(med "$name")
  for floor in "$@"; do
    [[ -n ${times[$floor]:-} ]] || continue
    ratios+=$(awk -v a="$value" -v b="$(med "$floor")" -v f="$floor" 'BEGIN { printf "  %.2fx %s", a / b, f }')
  done
  printf '  %-34s %ss%s\n' "$label" "$(seconds "$value")" "$ratios"
}
image_size=$(stat -c %s "$new")
echo "pair: 2 x $image_size bytes; medians of $runs rounds (ratios to the row named):"
line cat "cat INFILE (cat)"
line b3sum "b3sum REFFILE (b3sum)"
line digest "digest REFFILE" b3sum
line backup "backup (backup)" cat
line original "original C diff-dd (original)" cat backup
line from_digest "backup --digest" backup original cat
line digest_out "backup --digest --digest-out" backup original cat
line cold_cat "cold: cat INFILE (cold_cat)"
line cold_backup "cold: backup (cold_backup)" cold_cat
line cold_from_digest "cold: backup --digest" cold_backup cold_cat
printf '  digest: %s bytes (%s%% of the image)\n' "$(stat -c %s "$digest")" \
  "$(awk -v a="$(stat -c %s "$digest")" -v b="$image_size" 'BEGIN { printf "%.3f", 100 * a / b }')"
printf '  diffs: plain %s bytes, from the digest %s bytes (%sx)\n' "$(stat -c %s "$plain")" \
  "$(stat -c %s "$from_digest")" \
  "$(awk -v a="$(stat -c %s "$from_digest")" -v b="$(stat -c %s "$plain")" 'BEGIN { printf "%.2f", a / b }')"
if [[ -x /usr/bin/time ]]; then
  rm -f "$from_digest" "$next"
  rss=$(/usr/bin/time -f %M "$DIFF_DD" backup --digest "$digest" --digest-out "$next" "$new" "$from_digest" 2>&1 >/dev/null | tail -n 1)
  echo "  peak RSS of backup --digest --digest-out: $rss KB"
fi
