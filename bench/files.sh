#!/usr/bin/env bash
# inspect --files on the realistic ext4 pair of bench/realistic.sh (2 GiB from /usr/share, a
# few hundred files deleted and a few hundred MB of files written with debugfs), against
# plain inspect: wall time (median of RUNS) and peak RSS (GNU time). Then the cross-check:
# the regular files the audit lists as added, deleted or modified with changed data must be
# those that differ between the two images as mounted (loop mounts, read-only: needs root),
# by content or by existence.
#
#   bench/files.sh [RUNS]      (default 5; environment: BENCH_DIR, DIFF_DD)
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
if [[ -n ${BENCH_DIR:-} ]]; then
  work=$BENCH_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/diff-dd-files.XXXXXX")
  trap 'umount -q "$work/mnt-base" "$work/mnt-new" 2>/dev/null || true; rm -rf "$work"' EXIT
fi
if [[ -z ${DIFF_DD:-} ]]; then
  cargo build --release --locked --quiet
  DIFF_DD=$PWD/target/release/diff-dd
fi
BENCH_DIR=$work DIFF_DD=$DIFF_DD bench/realistic.sh pair
base=$work/base.img new=$work/new.img diff=$work/files.diff
[[ -f $diff ]] || "$DIFF_DD" "$new" "$base" "$diff"
cat "$base" "$diff" >/dev/null # into the page cache

now() { date +%s%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
timed() { local start; start=$(now); "$@" >/dev/null; echo $(($(now) - start)); }
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1; }
plain=() files=()
for ((round = 1; round <= runs; round++)); do
  plain+=("$(timed "$DIFF_DD" inspect "$diff")")
  files+=("$(timed "$DIFF_DD" inspect --files "$base" "$diff")")
done
m() { printf '%s\n' "$@" | median | awk '{ printf "%.3f", $1 / 1e9 }'; }
echo "diff: $("$DIFF_DD" inspect --json "$diff" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["changed_bytes"], "bytes in", d["extent_count"], "extents")')"
echo "time (median of $runs): inspect $(m "${plain[@]}")s, inspect --files $(m "${files[@]}")s"
echo "peak RSS: inspect $(rss "$DIFF_DD" inspect "$diff") KB, inspect --files $(rss "$DIFF_DD" inspect --files "$base" "$diff") KB"
"$DIFF_DD" inspect --json --files "$base" "$diff" >"$work/audit.json"
python3 - "$work/audit.json" <<'PY'
import json, sys
audit = json.load(open(sys.argv[1]))
counts = {}
for f in audit["files"]:
    counts[f["status"]] = counts.get(f["status"], 0) + 1
print("audit:", len(audit["files"]), "entries", counts, "metadata",
      {k: v for k, v in audit["metadata"].items() if v}, "free", audit["free_bytes"],
      "unowned", audit["unowned_bytes"])
PY

# The truth, from the mounted images.
mkdir -p "$work/mnt-base" "$work/mnt-new"
mount -o ro,loop,noload "$base" "$work/mnt-base"
mount -o ro,loop,noload "$new" "$work/mnt-new"
python3 - "$work" <<'PY'
import filecmp, json, os, sys
work = sys.argv[1]
def files(root):
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                out["/" + os.path.relpath(path, root)] = path
    return out
base, new = files(work + "/mnt-base"), files(work + "/mnt-new")
truth = {p: "deleted" for p in base.keys() - new.keys()}
truth.update({p: "added" for p in new.keys() - base.keys()})
for p in base.keys() & new.keys():
    if not filecmp.cmp(base[p], new[p], shallow=False):
        truth[p] = "modified"
audit = json.load(open(work + "/audit.json"))
listed = {}
for f in audit["files"]:
    if f["kind"] != "file" or f["path"] is None:
        continue
    if f["status"] == "modified" and f["data_bytes"] == 0:
        continue  # the inode alone changed: same content
    listed.setdefault(f["path"], set()).add(f["status"])
# A path deleted and added again (its inode reused by another file) counts as modified.
listed = {p: ("modified" if s == {"added", "deleted"} else s.pop()) for p, s in listed.items()}
missing = sorted(set(truth.items()) - set(listed.items()))
extra = sorted(set(listed.items()) - set(truth.items()))
print(f"cross-check: {len(truth)} files differ between the mounted images; the audit lists "
      f"{len(listed)} with changed data; missing {len(missing)}, extra {len(extra)}")
for item in missing[:10]:
    print("  missing", item)
for item in extra[:10]:
    print("  extra", item)
sys.exit(1 if missing or extra else 0)
PY
umount "$work/mnt-base" "$work/mnt-new"
