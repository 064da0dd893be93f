#!/usr/bin/env bash
# Benchmark on a realistic pair: a 2 GiB ext4 image made with `mke2fs -d` from the real files
# of /usr/share, and the same image after deleting a few hundred of its files and writing a
# few hundred MB of other real files (from /usr/lib) into it with debugfs. File choices use a
# fixed seed, so the pair is the same on one machine from run to run.
#
#   bench/realistic.sh [RUNS]      (default 5; environment: BENCH_DIR, DIFF_DD)
#   bench/realistic.sh pair        (only make the pair in BENCH_DIR: bench/files.sh uses it)
#
# Each round times, one after the other: backup with compression (the default) and with
# --compress none, and restore of each diff (onto a fresh copy of the base image, then sync;
# in alternating order), with restore's CPU time beside its wall time.
# Printed, as medians: the diff sizes beside `zstd -3` of the raw diff and, when xdelta3 is
# installed, `xdelta3 -e -s` of the pair (timed once: it takes tens of seconds); the time
# ratios compressed/raw; and the peak RSS of backup and restore (GNU time), also on an 8 GiB
# sparse pair.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
if [[ -n ${BENCH_DIR:-} ]]; then
  work=$BENCH_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/diff-dd-realistic.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi
if [[ -z ${DIFF_DD:-} ]]; then
  cargo build --release --locked --quiet
  DIFF_DD=$PWD/target/release/diff-dd
fi
base=$work/base.img new=$work/new.img

if [[ ! -f $new ]]; then
  echo "making the ext4 pair in $work ..." >&2
  rm -f "$base"
  mke2fs -q -t ext4 -d /usr/share -E root_owner=0:0 "$base" 2G
  cp "$base" "$new"
  # A few hundred files deleted, a few hundred MB of other files written (fixed seed).
  python3 - "$work" <<'PY'
import os, random, sys
work = sys.argv[1]
rng = random.Random(2026)
shared = []
for root, _, files in os.walk("/usr/share"):
    for name in files:
        path = os.path.join(root, name)
        if os.path.isfile(path) and not os.path.islink(path):
            shared.append(os.path.relpath(path, "/usr/share"))
shared.sort()
libraries = []
for root, _, files in os.walk("/usr/lib"):
    for name in files:
        path = os.path.join(root, name)
        if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) > 65536:
            libraries.append(path)
libraries.sort()
commands = [f'rm "/{path}"' for path in rng.sample(shared, 300)]
written, total = 0, 0
for path in rng.sample(libraries, len(libraries)):
    size = os.path.getsize(path)
    if total + size > 300 << 20:
        continue
    commands.append(f'write "{path}" "/added-{written}"')
    written += 1
    total += size
    if written >= 400:
        break
open(os.path.join(work, "debugfs.cmd"), "w").write("\n".join(commands) + "\n")
print(f"deleting 300 files, writing {written} files ({total >> 20} MiB)", file=sys.stderr)
PY
  debugfs -w -f "$work/debugfs.cmd" "$new" >/dev/null 2>&1
fi
[[ $runs == pair ]] && exit 0
cat "$base" "$new" >/dev/null # into the page cache

now() { date +%s%N; }
seconds() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
timed() { local start; start=$(now); "$@"; echo $(($(now) - start)); }

# CPU seconds (user + system) of a command, from GNU time: restore's wall time is mostly its
# final fsync of ~300 MB, which varies from run to run far more than the work does.
cpu_of() { awk '{ printf "%.0f", ($1 + $2) * 1e9 }' "$work/cpu"; }
declare -a zstd_backup raw_backup zstd_restore raw_restore zstd_restore_cpu raw_restore_cpu
for ((round = 1; round <= runs; round++)); do
  zstd_backup+=("$(timed "$DIFF_DD" "$new" "$base" "$work/zstd.diff")")
  raw_backup+=("$(timed "$DIFF_DD" --compress none "$new" "$base" "$work/raw.diff")")
  # Alternating which goes first, so that neither always follows the other's writes.
  kinds=(zstd raw)
  ((round % 2 == 0)) && kinds=(raw zstd)
  for kind in "${kinds[@]}"; do
    cp "$base" "$work/target.img" && sync
    elapsed=$(timed sh -c "/usr/bin/time -o '$work/cpu' -f '%U %S' '$DIFF_DD' '$work/$kind.diff' '$work/target.img' && sync")
    if [[ $kind == zstd ]]; then
      zstd_restore+=("$elapsed") zstd_restore_cpu+=("$(cpu_of)")
    else
      raw_restore+=("$elapsed") raw_restore_cpu+=("$(cpu_of)")
    fi
    cmp -s "$work/target.img" "$new" || { echo "restore of $kind.diff did not rebuild the new image" >&2; exit 1; }
  done
  echo "round $round: backup zstd $(seconds "${zstd_backup[-1]}")s raw $(seconds "${raw_backup[-1]}")s; restore zstd $(seconds "${zstd_restore[-1]}")s raw $(seconds "${raw_restore[-1]}")s" >&2
done

size() { stat -c %s "$1"; }
zstd -3 -q -f -o "$work/raw.diff.zst" "$work/raw.diff"
m() { printf '%s\n' "$@" | median; }
zb=$(m "${zstd_backup[@]}") rb=$(m "${raw_backup[@]}") zr=$(m "${zstd_restore[@]}") rr=$(m "${raw_restore[@]}")
zc=$(m "${zstd_restore_cpu[@]}") rc=$(m "${raw_restore_cpu[@]}")
echo "pair: 2 GiB ext4 from /usr/share; changed $("$DIFF_DD" inspect --json "$work/raw.diff" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["changed_bytes"], "bytes in", d["extent_count"], "extents")')"
echo "diff, compressed (default)  $(size "$work/zstd.diff") bytes"
echo "diff, --compress none       $(size "$work/raw.diff") bytes"
echo "zstd -3 of the raw diff     $(size "$work/raw.diff.zst") bytes"
if command -v xdelta3 >/dev/null; then
  start=$(now)
  xdelta3 -e -f -s "$base" "$new" "$work/pair.xdelta"
  echo "xdelta3 -e -s of the pair   $(size "$work/pair.xdelta") bytes ($(seconds $(($(now) - start)))s, once)"
fi
awk -v zb="$zb" -v rb="$rb" -v zr="$zr" -v rr="$rr" -v zc="$zc" -v rc="$rc" 'BEGIN {
  printf "backup  compressed %.3fs, raw %.3fs: %.2fx\n", zb / 1e9, rb / 1e9, zb / rb
  printf "restore compressed %.3fs, raw %.3fs: %.2fx (medians of restore + sync)\n", zr / 1e9, rr / 1e9, zr / rr
  printf "restore CPU compressed %.3fs, raw %.3fs: %.2fx (medians of user + system)\n", zc / 1e9, rc / 1e9, zc / rc }'

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1; }
cp "$base" "$work/target.img"
echo "peak RSS, 2 GiB pair: backup $(rss "$DIFF_DD" "$new" "$base" "$work/rss.diff") KB, restore $(rss "$DIFF_DD" "$work/rss.diff" "$work/target.img") KB"
# 8 GiB sparse pair: the same changes at the start, holes elsewhere.
truncate -s 8G "$work/base8.img" "$work/new8.img"
dd if="$base" of="$work/base8.img" bs=4M conv=notrunc,sparse status=none
dd if="$new" of="$work/new8.img" bs=4M conv=notrunc,sparse status=none
cp --sparse=always "$work/base8.img" "$work/target8.img"
echo "peak RSS, 8 GiB pair: backup $(rss "$DIFF_DD" "$work/new8.img" "$work/base8.img" "$work/rss8.diff") KB, restore $(rss "$DIFF_DD" "$work/rss8.diff" "$work/target8.img") KB"
rm -f "$work/base8.img" "$work/new8.img" "$work/target8.img"
