#!/usr/bin/env bash
# Fault campaign, heavy part: diff-dd killed, starved of space and raced against itself on
# 256 MiB images, checked against what README.md promises.
#
#   1  restore killed with SIGKILL: after a random delay across its write pass, after a random
#      number of bytes written (between two records), or inside the pwrite of a large record
#      (tearing it); sometimes the rerun is killed too. Running restore again must exit 0,
#      report what it wrote and skipped consistently, and leave the target equal to INFILE.
#      1b: killed at chosen system calls (strace), including at its final fsync: the rerun
#      must finish the restore, which includes syncing the target.
#   2  backup killed at random moments, with and without a previous OUTFILE: the previous one
#      (or none) stays, or the new one is complete; no temporary file, except in the window
#      where the new diff replaces a previous one, and then the next backup removes it.
#      2b: killed at each step of the commit (fsync, link, rename, directory fsync) with
#      strace, and mid-write on a (simulated) filesystem without O_TMPFILE, where the named
#      temporary file left behind must be removed by the next backup.
#   3  backup onto a full filesystem (8 MiB tmpfs, else a loop-mounted ext4) and onto /dev/full.
#   4  two restores of one diff onto one target, started at the same moment (and staggered):
#      one runs, the other is refused by the target's lock or finds everything written.
#   5  block devices (loop devices): backup from devices, restore and verify onto one, and a
#      mounted one refused by O_EXCL with nothing written.
#   6  chains: one-pass restore (restore --base) into a new file killed at random moments must
#      leave nothing under the new name; a chain restored in place, killed after a random
#      number of bytes written, is finished by a rerun; one pass to standard output and onto a
#      loop device gives INFILE.
#   7  a diff rewritten in place (from a random record on, with another diff of the same
#      layout) while restore writes, held by strace after its first write: single restore, a
#      chain in place and one pass in place, raw and compressed; the target must be the image
#      checked, or untouched. Peak RSS of verify, restore, one pass and merge on a 587-byte
#      diff of four 1 GiB zero records, under 64 MiB. A target filling its filesystem during
#      the writing run: exit 6 and "written in part".
#   8  digests: random bit flips and truncations of a digest, from a file and through a pipe,
#      given to backup --digest --digest-out: refused, nothing left; backup --digest
#      --digest-out killed at random moments: OUTFILE and NEXT are each absent or complete,
#      and NEXT never appears without OUTFILE.
#
# Runs as root from a fresh clone (Debian): builds the release binary with --locked, or uses
# $DIFF_DD; installs python3 and strace with apt-get if they are missing. FAULT_SEED makes
# the images and the random choices repeatable (timing still varies); FAULT_SCENARIOS picks
# scenarios ("1 1b 2 2b 3 4 5 6 7 8"); FAULT_VERBOSE=1 logs every trial to stderr. Prints one summary
# line per scenario; exits 1 if any trial failed, listing each failure.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
campaign_start=$SECONDS
seed=${FAULT_SEED:-$(( $(date +%s) % 1000000 ))}
RANDOM=$seed
export SOURCE_DATE_EPOCH=0 # backups are then byte-for-byte reproducible

log() { printf '%s\n' "$*" >&2; }

install_if_missing() { # COMMAND PACKAGE: install PACKAGE with apt-get when COMMAND is absent
  command -v "$1" >/dev/null && return 0
  command -v apt-get >/dev/null || return 1
  log "fault-campaign: installing $2"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1
  command -v "$1" >/dev/null
}

install_if_missing python3 python3-minimal || { log "fault-campaign: python3 is required"; exit 1; }
have_strace=1
install_if_missing strace strace || have_strace=0
install_if_missing /usr/bin/time time || { log "fault-campaign: GNU time is required"; exit 1; }

if [[ -n ${DIFF_DD:-} ]]; then
  BIN=$DIFF_DD
else
  (cd "$repo" && cargo build --release --locked --quiet)
  BIN=${CARGO_TARGET_DIR:-$repo/target}/release/diff-dd
  [[ $BIN == /* ]] || BIN=$repo/$BIN
fi
[[ -x $BIN ]] || { log "fault-campaign: no executable at $BIN"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/diff-dd-faults.XXXXXX")
mounted=""
race_mount=""
loop_device=""
block_devices=() # scenario 5's loop devices
block_mount=""
background=()
cleanup() {
  local pid
  for pid in "${background[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $mounted ]]; then umount "$mounted" 2>/dev/null || umount -l "$mounted" 2>/dev/null || true; fi
  if [[ -n $race_mount ]]; then umount "$race_mount" 2>/dev/null || umount -l "$race_mount" 2>/dev/null || true; fi
  if [[ -n $loop_device ]]; then losetup -d "$loop_device" 2>/dev/null || true; fi
  if [[ -n $block_mount ]]; then umount "$block_mount" 2>/dev/null || umount -l "$block_mount" 2>/dev/null || true; fi
  for pid in "${block_devices[@]}"; do losetup -d "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

failures=()
fail() { # SCENARIO TRIAL WHAT
  failures+=("[$1 trial $2] $3")
  printf 'FAIL [%s trial %s] %s\n' "$1" "$2" "$3"
}
vlog() { if [[ ${FAULT_VERBOSE:-0} == 1 ]]; then log "$@"; fi; }
first_line() { [[ -s $1 ]] && head -n 1 "$1" || printf '(no message)'; }

# --- small helpers that keep RANDOM's sequence in this shell (no subshells) -------------------
rand() { # LOW HIGH: sets R to an integer in [LOW, HIGH]
  local span=$(($2 - $1 + 1))
  R=$(($1 + (RANDOM * 32768 + RANDOM) % span))
}
now_us() { NOW=${EPOCHREALTIME//[!0-9]/}; }
sleep_ms() { local s; printf -v s '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); sleep "$s"; }
start() { # OUT ERR COMMAND...: runs COMMAND in the background, its pid in PID
  local out=$1 err=$2
  shift 2
  "$@" >"$out" 2>"$err" &
  PID=$!
  background+=("$PID")
}
reap() { # PID: waits for it, its exit status in RC (bash's "Killed" notice suppressed)
  RC=0
  { wait "$1"; } 2>/dev/null || RC=$?
}
io_of() { # PID: bytes passed to write calls so far in W, bytes of pages dirtied in WB;
  # returns 1 once PID is gone
  local key value
  W=-1 WB=0
  { while read -r key value; do
      case $key in
        wchar:) W=$value ;;
        write_bytes:) WB=$value; break ;;
      esac
    done <"/proc/$1/io"; } 2>/dev/null || true
  ((W >= 0))
}
pause_ms() { read -r -t "0.00$1" -u "$tick" _ || true; } # a short sleep without a fork
kill_after_writing() { # PID BYTES: SIGKILL as soon as PID has written BYTES (or has exited)
  while io_of "$1" && ((W < $2)); do :; done
  kill -9 "$1" 2>/dev/null || true
}
kill_inside_record() { # PID INDEX PERCENT: SIGKILL while PID writes big record INDEX
  # Restore takes each record in turn: reads the target there, reads the record from the
  # diff, checks its hash and writes it with one pwrite. Once the records before it are
  # written, the pages it dirties (write_bytes, counted as each page is dirtied, while wchar
  # counts only once pwrite returns) show how far that pwrite has got. The target's pages
  # are clean (fresh_target syncs it), so each page of the record counts once.
  local goal
  while io_of "$1" && ((W < big_before[$2])); do :; done
  goal=$((WB + big_length[$2] * $3 / 100))
  while io_of "$1" && ((W < big_before[$2] + big_length[$2] && WB < goal)); do :; done
  kill -9 "$1" 2>/dev/null || true
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
verbose_counts() { # FILE: "X written, Y already restored" from restore -v, in WRITTEN ALREADY
  WRITTEN=$(sed -n 's/.* \([0-9]*\) written, \([0-9]*\) already restored.*/\1/p' "$1")
  ALREADY=$(sed -n 's/.* \([0-9]*\) written, \([0-9]*\) already restored.*/\2/p' "$1")
  WRITTEN=${WRITTEN:--1}
  ALREADY=${ALREADY:--1}
}

# --- images ------------------------------------------------------------------------------------
cat >images.py <<'EOF'
"""make BASE SIZE SEED | change FILE SEED SHARE BIG HUGE: deterministic pseudo-random images."""
import os, random, sys

def make(path, size, seed):
    r = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(size // (16 << 20)):
            f.write(r.randbytes(16 << 20))
        f.write(r.randbytes(size % (16 << 20)))

def change(path, seed, share, big, huge):
    """Overwrites SHARE of the 4 KiB blocks, spread over the image, then BIG runs of 1-4 MiB
    and HUGE runs of 8-14 MiB at 512-byte (not page) aligned offsets, so that records cross
    page boundaries and some take long enough to write that a kill can land inside. The
    blocks are random; the runs repeat a random 64 KiB, so that their records are stored
    compressed."""
    r = random.Random(seed)
    fd = os.open(path, os.O_WRONLY)
    size = os.fstat(fd).st_size
    blocks = size // 4096
    for block in sorted(r.sample(range(blocks), int(blocks * share))):
        os.pwrite(fd, r.randbytes(4096), block * 4096)
    for low, high in [(1, 4)] * big + [(8, 14)] * huge:
        length = r.randrange(low << 20, high << 20, 512)
        pattern = r.randbytes(64 << 10)
        data = (pattern * (length // len(pattern) + 1))[:length]
        os.pwrite(fd, data, r.randrange(0, size - length, 512) | 512)
    os.close(fd)

if sys.argv[1] == "make":
    make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
else:
    change(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
EOF

cat >classify.py <<'EOF'
"""EXTENTS TARGET BASE NEW: what a killed restore left at each extent.
Prints: new torn base order remaining_bytes torn_at_page_boundary."""
import mmap, sys

def view(path):
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)

extents = [tuple(map(int, line.split())) for line in open(sys.argv[1])]
target, base, new = (view(p) for p in sys.argv[2:5])
counts = {"new": 0, "torn": 0, "base": 0}
states, remaining, torn_ok = [], 0, True
for offset, length in extents:
    held = target[offset:offset + length]
    if held == new[offset:offset + length]:
        state = "new"
    elif held == base[offset:offset + length]:
        state = "base"
    else:
        state = "torn"
        want = new[offset:offset + length]
        same = next(i for i, (a, b) in enumerate(zip(held, want)) if a != b)
        first_page_end = min(4096 - offset % 4096, length)
        torn_ok &= same >= first_page_end and (offset + same) % 4096 == 0
    counts[state] += 1
    if state != "new":
        remaining += length
    if not states or states[-1] != state:
        states.append(state)
order_ok = states in ([], ["new"], ["base"], ["torn"], ["new", "base"], ["new", "torn"],
                      ["torn", "base"], ["new", "torn", "base"])
print(counts["new"], counts["torn"], counts["base"], "ok" if order_ok else "bad", remaining,
      "ok" if torn_ok else "bad")
EOF

image_size=$((256 << 20))
log "fault-campaign: seed $seed, binary $BIN, work dir $work"
python3 images.py make base.img "$image_size" "$seed"
cp base.img new.img
python3 images.py change new.img $((seed + 1)) 0.15 8 4
cp base.img older.img
python3 images.py change older.img $((seed + 2)) 0.01 0 0

# Records of up to 4 MiB (whatever -b), some long enough to write that a kill can land
# inside; the long runs are stored compressed, so restores decode while they are killed.
backup=("$BIN" backup -b 16M)
"${backup[@]}" new.img base.img new.diff
"${backup[@]}" older.img base.img older.diff # the "previous OUTFILE" of scenarios 2 and 3
"$BIN" inspect --json new.diff | python3 -c '
import json, sys
for e in json.load(sys.stdin)["extents"]:
    print(e["offset"], e["length"])' >extents.txt
extent_count=$(wc -l <extents.txt)
stored_bytes=$("$BIN" inspect --json new.diff | python3 -c 'import json, sys; print(json.load(sys.stdin)["stored_bytes"])')
# The six largest records, and how many bytes restore writes before each.
big_before=() big_length=() big_index=()
while read -r before length index; do
  big_before+=("$before") big_length+=("$length") big_index+=("$index")
done < <(awk '{ print s, $2, NR - 1; s += $2 }' s=0 extents.txt | sort -k2,2nr | head -n 6 | sort -k3,3n)
changed_bytes=$(awk '{ s += $2 } END { print s }' extents.txt)
diff_size=$(stat -c %s new.diff)
log "fault-campaign: $((image_size >> 20)) MiB images, $extent_count extents, $((changed_bytes >> 20)) MiB changed, diff $((diff_size >> 20)) MiB"

# Calibration (for 1 and 4): uninterrupted restores, and when the write pass runs within one.
fresh_target() { # the base image as a target, already on disk as a dd'ed partition would be
  cp base.img target.img
  sync target.img
}
mkfifo tick
exec {tick}<>tick
durations=()
for run in 1 2 3; do
  fresh_target
  now_us; t0=$NOW
  rc=0; "$BIN" restore new.diff target.img 2>err || rc=$?
  now_us; durations+=($(((NOW - t0) / 1000)))
  if ((rc != 0)) || ! cmp -s target.img new.img; then
    fail 1 "calibration $run" "uninterrupted restore: exit $rc, $(first_line err)"
  fi
done
restore_ms=$(median "${durations[@]}")
# The write pass, sampled every 2 ms so that the sampling barely slows the restore.
firsts=() lasts=()
for run in 1 2; do
  fresh_target
  now_us; t0=$NOW
  start /dev/null err "$BIN" restore new.diff target.img
  first_write=0 all_written=0
  while io_of "$PID"; do
    if ((first_write == 0 && W > 0)); then now_us; first_write=$(((NOW - t0) / 1000)); fi
    if ((W >= changed_bytes)); then now_us; all_written=$(((NOW - t0) / 1000)); break; fi
    pause_ms 2
  done
  reap "$PID"
  firsts+=("$first_write") lasts+=("$all_written")
done
first_write=$(median "${firsts[@]}") all_written=$(median "${lasts[@]}")
((all_written > first_write)) || { first_write=$((restore_ms / 3)); all_written=$((restore_ms * 9 / 10)); }
log "fault-campaign: restore takes ${restore_ms} ms (runs: ${durations[*]}); writes from ${first_write} to ${all_written} ms"

mkdir out
b_finished=0 b_old_kept=0 b_none_left=0 b_new_complete=0
# TRIAL HOW PREVIOUS(0/1) KILLED(0/1) [LEFTOVER_ALLOWED(0/1)]: what a killed backup left in
# out/. A kill between link and rename when replacing an OUTFILE, or any kill on a filesystem
# without O_TMPFILE, may leave .out.diff.diff-dd-PID (README says so); with LEFTOVER_ALLOWED
# such a file is accepted only if the next backup to the same OUTFILE removes it.
check_backup_dir() {
  local trial=$1 how=$2 previous=$3 was_killed=$4 leftover_allowed=${5:-0} listing leftovers=()
  local file
  for file in out/.out.diff.diff-dd-*; do
    if [[ -e $file ]]; then leftovers+=("$file"); fi
  done
  listing=$(ls -A out | { grep -v '^\.out\.diff\.diff-dd-[0-9]*$' || true; } | tr '\n' ' ')
  listing=${listing% }
  if ((${#leftovers[@]})); then
    if ((!leftover_allowed)); then
      fail "$S" "$trial" "backup ($how, previous OUTFILE: $previous) left in the directory: $(ls -A out | tr '\n' ' ')"
      return
    fi
    check_backup_listing "$trial" "$how" "$previous" "$was_killed" "$listing"
    local rc=0
    "${backup[@]}" new.img base.img out/out.diff 2>err5 || rc=$?
    listing=$(ls -A out | tr '\n' ' ')
    if ((rc != 0)) || [[ ${listing% } != out.diff ]] || ! cmp -s out/out.diff new.diff; then
      fail "$S" "$trial" "backup ($how) left ${leftovers[*]}, and the next backup (exit $rc) did not remove it: $listing"
    else
      b_leftover_removed=$((b_leftover_removed + 1))
    fi
    return
  fi
  check_backup_listing "$trial" "$how" "$previous" "$was_killed" "$listing"
}

check_backup_listing() { # TRIAL HOW PREVIOUS KILLED LISTING
  local trial=$1 how=$2 previous=$3 was_killed=$4 listing=$5
  case $listing in
    "")
      if ((previous)); then fail "$S" "$trial" "backup ($how) removed the previous OUTFILE"; return; fi
      if ((!was_killed)); then fail "$S" "$trial" "backup ($how) exited 0 but left no OUTFILE"; return; fi
      b_none_left=$((b_none_left + 1)) ;;
    out.diff)
      if ((was_killed && previous)) && cmp -s out/out.diff older.diff; then
        b_old_kept=$((b_old_kept + 1))
      elif cmp -s out/out.diff new.diff; then
        local rc=0
        "$BIN" verify -q out/out.diff 2>err4 || rc=$?
        if ((rc != 0)); then fail "$S" "$trial" "backup ($how): OUTFILE equals the reference diff but verify exits $rc: $(first_line err4)"; return; fi
        if ((was_killed)); then b_new_complete=$((b_new_complete + 1)); else b_finished=$((b_finished + 1)); fi
      else
        fail "$S" "$trial" "backup ($how, previous OUTFILE: $previous, killed: $was_killed) left an OUTFILE that is neither the previous one nor the complete new diff ($(stat -c %s out/out.diff) bytes)"
      fi ;;
    *)
      fail "$S" "$trial" "backup ($how, previous OUTFILE: $previous) left in the directory: $listing" ;;
  esac
}

summary=()
b_leftover_removed=0

# === 1. restore killed =========================================================================
scenario_1() {
  S=1
  trials=0 failed_before=${#failures[@]}
  killed=0 exited_first=0 untouched=0 partial=0 written_all=0 torn_records=0 double_kills=0
  torn_trials=0 torn_by_aim=0
  verified=0 verify_ok=0

  for trial in $(seq 1 30); do
    trials=$((trials + 1))
    fresh_target
    start /dev/null err "$BIN" restore new.diff target.img
    case $((trial % 3)) in
      1)
        # Timed: seven within the write pass as measured, three anywhere in the run.
        if ((trial % 4 == 1)); then rand 0 $((restore_ms * 11 / 10)); else rand $((first_write * 9 / 10)) $((all_written * 11 / 10)); fi
        how="timed, sleep ${R} ms"
        sleep_ms "$R"
        kill -9 "$PID" 2>/dev/null || true ;;
      2)
        # Once a random number of bytes is written: always mid-write, between two records.
        rand 1 $((changed_bytes - 1))
        how="after $R bytes written"
        kill_after_writing "$PID" "$R" ;;
      0)
        # Aimed inside the pwrite of one of the largest records, a random share of it done.
        rand 0 $((${#big_before[@]} - 1))
        big=$R
        rand 1 99
        how="aimed inside the write of the ${big_length[big]}-byte record #${big_index[big]}, once $R% of its pages are dirtied"
        kill_inside_record "$PID" "$big" "$R" ;;
    esac
    reap "$PID"
    case $RC in
      137) killed=$((killed + 1)) ;;
      0) exited_first=$((exited_first + 1)) ;;
      *) fail "$S" "$trial" "restore ($how) failed by itself: exit $RC, $(first_line err)"; continue ;;
    esac
    read -r n_new n_torn n_base order remaining torn_ok < <(python3 classify.py extents.txt target.img base.img new.img)
    state="new=$n_new torn=$n_torn base=$n_base order=$order torn-at-page=$torn_ok"
    if ((n_new == 0 && n_torn == 0)); then untouched=$((untouched + 1));
    elif ((n_base == 0 && n_torn == 0)); then written_all=$((written_all + 1));
    else partial=$((partial + 1)); fi
    torn_records=$((torn_records + n_torn))
    if ((n_torn > 0)); then
      torn_trials=$((torn_trials + 1))
      if ((trial % 3 == 0)); then torn_by_aim=$((torn_by_aim + 1)); fi
    fi
    vlog "  1 trial $trial: $how; exit $RC; $state"
    if ((RC == 0 && (n_base != 0 || n_torn != 0))); then
      fail "$S" "$trial" "restore exited 0 but the target is not restored ($state)"
    fi
    expect_written=$((n_torn + n_base))
    # Four of the byte-triggered trials: kill the rerun as well, mid-write.
    if ((trial % 9 == 2 && remaining > 1)); then
      double_kills=$((double_kills + 1))
      start /dev/null err2 "$BIN" restore new.diff target.img
      rand 1 $((remaining - 1))
      kill_after_writing "$PID" "$R"
      reap "$PID"
      if ((RC != 137 && RC != 0)); then
        fail "$S" "$trial" "rerun (killed again after $R bytes) failed by itself: exit $RC, $(first_line err2); after the first kill: $state"
        continue
      fi
      read -r n_new n_torn n_base order remaining torn_ok < <(python3 classify.py extents.txt target.img base.img new.img)
      state="$state; after the second kill: new=$n_new torn=$n_torn base=$n_base order=$order"
      vlog "  1 trial $trial: rerun killed after $R bytes written; exit $RC; $state"
      torn_records=$((torn_records + n_torn))
      expect_written=$((n_torn + n_base))
    fi
    rc=0; "$BIN" restore -v new.diff target.img 2>err3 || rc=$?
    verbose_counts err3
    if ((rc != 0)); then
      fail "$S" "$trial" "restore after a kill ($how; $state): exit $rc, $(first_line err3)"
      continue
    fi
    if ! cmp -s target.img new.img; then
      fail "$S" "$trial" "restore after a kill ($how; $state) exited 0 but the target differs from INFILE"
      continue
    fi
    if ((WRITTEN != expect_written || ALREADY != extent_count - expect_written)); then
      fail "$S" "$trial" "restore after a kill ($how; $state) reported $WRITTEN written, $ALREADY already restored; expected $expect_written and $((extent_count - expect_written))"
    fi
    if ((trial % 6 == 0)); then
      verified=$((verified + 1))
      rc=0; "$BIN" verify -q --expect restored new.diff target.img 2>err4 || rc=$?
      if ((rc == 0)); then verify_ok=$((verify_ok + 1)); else
        fail "$S" "$trial" "verify --expect restored after the rerun: exit $rc, $(first_line err4)"
      fi
    fi
  done
  summary+=("1  restore killed: $trials trials (10 timed over the write pass, 10 after a random number of bytes written, 10 aimed at a large record), $((${#failures[@]} - failed_before)) failed; kill landed before exit $killed, after exit $exited_first; target after the kill: untouched $untouched, partly written $partial, fully written $written_all; a record torn mid-write in $torn_trials trials ($torn_by_aim aimed); rerun killed too $double_kills; verify --expect restored ok $verify_ok/$verified (uninterrupted restore ${restore_ms} ms, writes ${first_write}-${all_written} ms)")
}

# --- 1b. restore killed at chosen system calls -------------------------------------------------
scenario_1b() {
  S=1b
  trials=0 failed_before=${#failures[@]}
  if ((have_strace)); then
    # Between two records, at several points; then at the final fsync, after every byte is
    # written but nothing synced: the rerun finds everything written and must still sync.
    points=("pwrite64:when=1" "pwrite64:when=$((extent_count / 3))" "pwrite64:when=$((extent_count * 2 / 3))" "pwrite64:when=$extent_count" "fsync:when=1")
    for point in "${points[@]}"; do
      trials=$((trials + 1))
      fresh_target
      rc=0
      { strace -f -o /dev/null -e trace="${point%%:*}" -e inject="${point%%:*}:signal=KILL:${point#*:}" \
        "$BIN" restore new.diff target.img 2>err; } 2>/dev/null || rc=$?
      if ((rc != 137)); then
        fail "$S" "$point" "restore under strace, meant to be killed at $point: exit $rc, $(first_line err)"
        continue
      fi
      read -r n_new n_torn n_base order remaining torn_ok < <(python3 classify.py extents.txt target.img base.img new.img)
      vlog "  1b $point: new=$n_new torn=$n_torn base=$n_base"
      rc=0
      strace -f -o syncs.log -e trace=fsync,fdatasync,sync_file_range,syncfs,sync,msync \
        "$BIN" restore -v new.diff target.img 2>err3 || rc=$?
      verbose_counts err3
      if ((rc != 0)); then
        fail "$S" "$point" "restore after a kill at $point (new=$n_new base=$n_base): exit $rc, $(first_line err3)"
      elif ! cmp -s target.img new.img; then
        fail "$S" "$point" "restore after a kill at $point exited 0 but the target differs from INFILE"
      elif ! grep -qE '^[0-9]+ +(fsync|fdatasync|sync_file_range|syncfs|sync)\(' syncs.log; then
        fail "$S" "$point" "restore after a kill at $point (target left new=$n_new base=$n_base, written but not synced) exited 0 reporting $WRITTEN written, $ALREADY already restored, without syncing the target: no fsync/fdatasync/sync call in its strace. Reproduce: cp base.img t.img; strace -f -o /dev/null -e inject=fsync:signal=KILL diff-dd restore d.diff t.img; strace -f -e trace=fsync,fdatasync diff-dd restore d.diff t.img"
      fi
    done
    summary+=("1b restore killed at chosen syscalls (strace: pwrite #1, #1/3, #2/3, last, fsync): $trials trials, $((${#failures[@]} - failed_before)) failed")
  else
    summary+=("1b restore killed at chosen syscalls: SKIPPED (strace is not installed and could not be installed)")
  fi
}

# === 2. backup killed ==========================================================================
scenario_2() {
  S=2
  trials=0 failed_before=${#failures[@]}
  b_finished=0 b_old_kept=0 b_none_left=0 b_new_complete=0 b_commit_window=0
  durations=()
  for run in 1 2 3; do
    rm -f out/out.diff
    now_us; t0=$NOW
    rc=0; "${backup[@]}" new.img base.img out/out.diff 2>err || rc=$?
    now_us; durations+=($(((NOW - t0) / 1000)))
    if ((rc != 0)) || ! cmp -s out/out.diff new.diff; then
      fail "$S" "calibration $run" "uninterrupted backup: exit $rc, $(first_line err)"
    fi
  done
  backup_ms=$(median "${durations[@]}")
  log "fault-campaign: backup takes ${backup_ms} ms (runs: ${durations[*]})"

  for trial in $(seq 1 24); do
    trials=$((trials + 1))
    find out -mindepth 1 -delete
    previous=$((trial % 2 == 0 ? 1 : 0))
    ((previous)) && cp older.diff out/out.diff
    start /dev/null err "${backup[@]}" new.img base.img out/out.diff
    if ((trial % 3 == 0)); then
      # Once every byte of the diff is written: inside fsync, link or rename.
      how="after the whole diff was written"
      b_commit_window=$((b_commit_window + 1))
      kill_after_writing "$PID" "$diff_size"
    else
      rand 0 $((backup_ms * 11 / 10))
      how="sleep $R ms"
      sleep_ms "$R"
      kill -9 "$PID" 2>/dev/null || true
    fi
    reap "$PID"
    vlog "  2 trial $trial: previous OUTFILE $previous; $how; exit $RC; directory: $(ls -A out | tr '\n' ' ')"
    case $RC in
      137) check_backup_dir "$trial" "$how" "$previous" 1 "$previous" ;;
      0) check_backup_dir "$trial" "$how" "$previous" 0 ;;
      *) fail "$S" "$trial" "backup ($how) failed by itself: exit $RC, $(first_line err)" ;;
    esac
  done
  summary+=("2  backup killed: $trials trials (12 without, 12 with a previous OUTFILE; $b_commit_window killed once the whole diff was written), $((${#failures[@]} - failed_before)) failed; finished before the kill $b_finished; killed: previous OUTFILE kept $b_old_kept, no OUTFILE $b_none_left, new OUTFILE already complete $b_new_complete (uninterrupted backup ${backup_ms} ms)")
}

# --- 2b. backup killed at each step of the commit ----------------------------------------------
scenario_2b() {
  S=2b
  trials=0 failed_before=${#failures[@]}
  if ((have_strace)); then
    steps=("fsync:when=1:file-fsync" "link,linkat:when=1:link" "rename,renameat,renameat2:when=1:rename" "fsync:when=2:directory-fsync")
    for step in "${steps[@]}"; do
      name=${step##*:}
      calls=${step%%:*}
      when=${step#*:}
      when=${when%:*}
      for previous in 0 1; do
        trials=$((trials + 1))
        find out -mindepth 1 -delete
        ((previous)) && cp older.diff out/out.diff
        rc=0
        { strace -f -o /dev/null -e trace="$calls" -e inject="$calls:signal=KILL:$when" \
          "${backup[@]}" new.img base.img out/out.diff 2>err; } 2>/dev/null || rc=$?
        how="killed by strace at the $name"
        if ((rc == 0 && !previous)) && [[ $name == rename ]]; then
          # A new OUTFILE is linked under its final name directly: there is no rename to kill.
          check_backup_dir "$name/previous=$previous" "not killed: no rename without a previous OUTFILE" 0 0
          continue
        fi
        if ((rc != 137)); then
          fail "$S" "$name/previous=$previous" "backup meant to be $how: exit $rc, $(first_line err)"
          continue
        fi
        before=${#failures[@]}
        # Killed at the rename that replaces an OUTFILE, the linked temporary name remains.
        check_backup_dir "$name/previous=$previous" "$how" "$previous" 1 $([[ $name == rename ]] && echo 1 || echo 0)
        if ((${#failures[@]} > before)); then
          failures[-1]+=". Reproduce: mkdir o; strace -f -o /dev/null -e inject=$calls:signal=KILL:$when diff-dd backup new.img base.img o/out.diff; ls -A o"
        fi
      done
    done
    # A filesystem without O_TMPFILE (vfat, some network and FUSE filesystems), simulated by
    # refusing backup's O_TMPFILE open of out/ with EOPNOTSUPP (the second open of out/: the
    # first lists it for leftovers): backup falls back to a named temporary file. Killed while
    # it writes the diff, it leaves that file, which the next backup must remove.
    for previous in 0 1; do
      trials=$((trials + 1))
      find out -mindepth 1 -delete
      ((previous)) && cp older.diff out/out.diff
      start /dev/null err strace -f -o /dev/null -P out -e trace=openat \
        -e inject=openat:error=EOPNOTSUPP:when=2 "${backup[@]}" new.img base.img out/out.diff
      tracer=$PID child="" temporary=""
      while [[ -z $child && -e /proc/$tracer ]]; do # strace forks a helper first
        kids=()
        read -r -a kids <"/proc/$tracer/task/$tracer/children" 2>/dev/null || true
        for kid in "${kids[@]}"; do
          if [[ /proc/$kid/exe -ef $BIN ]]; then child=$kid; fi
        done
      done
      while [[ -n $child && -e /proc/$child && -z $temporary ]]; do
        for file in out/.out.diff.diff-dd-*; do
          if [[ -f $file ]] && (($(stat -c %s "$file") > 1048576)); then temporary=$file; fi
        done
        pause_ms 2
      done
      if [[ -n $child ]]; then kill -9 "$child" 2>/dev/null || true; fi
      reap "$tracer"
      how="without O_TMPFILE, killed once ${temporary:-its temporary file} held 1 MiB"
      vlog "  2b no-O_TMPFILE previous=$previous: exit $RC; directory: $(ls -A out | tr '\n' ' ')"
      before=${#failures[@]}
      check_backup_dir "no-O_TMPFILE/previous=$previous" "$how" "$previous" $((RC == 0 ? 0 : 1)) 1
      if ((${#failures[@]} > before)); then
        failures[-1]+=". Reproduce: mkdir o; strace -f -o /dev/null -P o -e trace=openat -e inject=openat:error=EOPNOTSUPP:when=2 diff-dd backup new.img base.img o/out.diff & sleep 0.3; kill -9 \$(pgrep -P \$!); ls -A o"
      fi
    done
    summary+=("2b backup killed at each commit step (strace: file fsync, link, rename, directory fsync) and, on a filesystem without O_TMPFILE (simulated), mid-write; each without and with a previous OUTFILE: $trials trials, $((${#failures[@]} - failed_before)) failed; a temporary file left and removed by the next backup $b_leftover_removed")
  else
    summary+=("2b backup killed at each commit step: SKIPPED (strace is not installed and could not be installed)")
  fi
}

# === 3. disk full =============================================================================
scenario_3() {
  S=3
  trials=0 failed_before=${#failures[@]}
  mkdir small
  fs_kind=""
  if mount -t tmpfs -o size=8M tmpfs small 2>mount.err; then
    mounted=$work/small fs_kind="tmpfs 8 MiB"
  elif truncate -s 16M small.img && mkfs.ext4 -q -F small.img >>mount.err 2>&1 &&
    loop_device=$(losetup --find --show small.img 2>>mount.err) &&
    mount "$loop_device" small 2>>mount.err; then
    mounted=$work/small fs_kind="ext4 16 MiB on $loop_device"
  fi
  if [[ -n $fs_kind ]]; then
    rm -rf small/lost+found
    for trial in 1 2 3 4; do
      trials=$((trials + 1))
      find small -mindepth 1 -delete
      previous=$((trial % 2 == 0 ? 1 : 0))
      ((previous)) && cp older.diff small/out.diff
      free_before=$(stat -f -c %a small)
      rc=0; "${backup[@]}" new.img base.img small/out.diff 2>err || rc=$?
      listing=$(ls -A small | tr '\n' ' ')
      listing=${listing% }
      sync -f small 2>/dev/null || true
      free_after=$(stat -f -c %a small)
      if ((rc == 0)); then
        fail "$S" "$trial" "backup of a ${diff_size}-byte diff onto $fs_kind exited 0"
      elif ! grep -qi 'no space' err; then
        fail "$S" "$trial" "backup onto a full $fs_kind: exit $rc but the message does not say no space: $(first_line err)"
      fi
      if ((previous)); then
        [[ $listing == out.diff ]] && cmp -s small/out.diff older.diff ||
          fail "$S" "$trial" "backup onto a full $fs_kind: the previous OUTFILE did not stay byte-identical (directory: '$listing')"
      else
        [[ -z $listing ]] || fail "$S" "$trial" "backup onto a full $fs_kind left: $listing"
      fi
      ((free_after == free_before)) ||
        fail "$S" "$trial" "backup onto a full $fs_kind: $free_before free blocks before, $free_after after (space still held)"
    done
    # The space is all back: a diff that fits is written.
    trials=$((trials + 1))
    find small -mindepth 1 -delete
    rc=0; "${backup[@]}" older.img base.img small/out.diff 2>err || rc=$?
    ((rc == 0)) && cmp -s small/out.diff older.diff ||
      fail "$S" "fits" "after the failures, a $(stat -c %s older.diff)-byte diff onto $fs_kind: exit $rc, $(first_line err)"
    fs_note="$fs_kind: 4 backups of a diff of $((diff_size >> 20)) MiB refused with no space (2 with a previous OUTFILE kept), no file or space left behind, a fitting diff written after"
  else
    fs_note="full filesystem SKIPPED: cannot mount a tmpfs nor a loop ext4 ($(grep -m 2 . mount.err | tr '\n' ' ' | sed 's/ *$//'))"
  fi
  trials=$((trials + 1))
  rc=0; "${backup[@]}" new.img base.img /dev/full 2>err || rc=$?
  if ((rc == 0)); then
    fail "$S" "/dev/full" "backup onto /dev/full exited 0"
  elif ! grep -q '/dev/full' err || ! grep -qi 'no space' err; then
    fail "$S" "/dev/full" "backup onto /dev/full: exit $rc, unclear message: $(first_line err)"
  fi
  full_message=$(first_line err)
  summary+=("3  disk full: $trials trials, $((${#failures[@]} - failed_before)) failed; $fs_note; /dev/full: exit $rc, \"$full_message\"")
}

# === 4. concurrent restores ===================================================================
scenario_4() {
  S=4
  trials=0 failed_before=${#failures[@]}
  refused=0 ran_after=0 extra_restores=0
  mkfifo go
  for trial in $(seq 1 18); do
    trials=$((trials + 1))
    fresh_target
    if ((trial <= 12)); then
      # Both released by one write to a FIFO they are blocked reading.
      how="started together"
      exec {go}<>go
      start /dev/null errA bash -c 'read -r _ <go; exec "$0" restore -v new.diff target.img' "$BIN"
      pA=$PID
      start /dev/null errB bash -c 'read -r _ <go; exec "$0" restore -v new.diff target.img' "$BIN"
      pB=$PID
      sleep 0.2
      printf '\n\n' >&"$go"
      exec {go}>&-
    else
      rand 0 "$restore_ms"
      how="second started $R ms after the first"
      start /dev/null errA "$BIN" restore -v new.diff target.img
      pA=$PID
      sleep_ms "$R"
      start /dev/null errB "$BIN" restore -v new.diff target.img
      pB=$PID
    fi
    reap "$pA"; rcA=$RC
    reap "$pB"; rcB=$RC
    verbose_counts errA; wA=$WRITTEN
    verbose_counts errB; wB=$WRITTEN
    outcome=""
    if ((rcA == 0 && rcB == 0)); then
      if ((wA + wB == extent_count && (wA == 0 || wB == 0))); then
        outcome="ran after"; ran_after=$((ran_after + 1))
      else
        fail "$S" "$trial" "two restores ($how) both exited 0 and wrote $wA and $wB of $extent_count extents: they interleaved"
      fi
    elif ((rcA == 0 && rcB == 1)) || ((rcA == 1 && rcB == 0)); then
      if ((rcA == 1)); then loser=errA winner_written=$wB; else loser=errB winner_written=$wA; fi
      if ! grep -q 'holds its lock' "$loser"; then
        fail "$S" "$trial" "two restores ($how): one was refused, but not by the lock: $(first_line "$loser")"
      elif ((winner_written != extent_count)); then
        fail "$S" "$trial" "two restores ($how): one refused by the lock, the other wrote $winner_written of $extent_count extents"
      else
        outcome="refused"; refused=$((refused + 1))
      fi
    else
      fail "$S" "$trial" "two restores ($how): exits $rcA ($(first_line errA)) and $rcB ($(first_line errB))"
    fi
    vlog "  4 trial $trial: $how; exits $rcA $rcB; written $wA $wB; ${outcome:-failed}"
    if ! cmp -s target.img new.img; then
      extra_restores=$((extra_restores + 1))
      rc=0; "$BIN" restore new.diff target.img 2>err || rc=$?
      if ((rc != 0)) || ! cmp -s target.img new.img; then
        fail "$S" "$trial" "after two restores ($how, $outcome) and one more (exit $rc, $(first_line err)), the target differs from INFILE"
      fi
    fi
  done
  summary+=("4  concurrent restores: $trials pairs (12 started together, 6 staggered), $((${#failures[@]} - failed_before)) failed; one refused by the target's lock $refused, second ran after and wrote nothing $ran_after; needed one more restore $extra_restores; target equal to INFILE at the end of every pair")
}

# === 5. block devices ==========================================================================
# Loop devices stand in for partitions: their size comes from the device, not the inode (which
# a block device's is 0), restore opens them with O_EXCL, and a mounted one must be refused.
scenario_5() {
  S=5
  trials=0 failed_before=${#failures[@]}
  local size=$((32 << 20)) device read_only_message="" mounted_rw_message=""
  python3 images.py make dev-base.img "$size" $((seed + 5))
  cp dev-base.img dev-new.img
  python3 images.py change dev-new.img $((seed + 6)) 0.05 2 0
  cp dev-base.img dev-target.img
  "$BIN" backup dev-new.img dev-base.img dev-files.diff
  for image in dev-new.img dev-base.img dev-target.img; do
    if ! device=$(losetup --find --show "$image" 2>losetup.err); then
      summary+=("5  block devices: SKIPPED (no loop device: $(first_line losetup.err))")
      return
    fi
    block_devices+=("$device")
  done
  local new_dev=${block_devices[-3]} base_dev=${block_devices[-2]} target_dev=${block_devices[-1]}

  trials=$((trials + 1)) # backup from devices: the same bytes as from the files
  rc=0; "$BIN" backup "$new_dev" "$base_dev" dev.diff 2>err || rc=$?
  if ((rc != 0)) || ! cmp -s dev.diff dev-files.diff; then
    fail "$S" backup "backup of $new_dev and $base_dev: exit $rc ($(first_line err)); not the diff of the same images as files"
  fi
  trials=$((trials + 1)) # restore onto a device, then verify it from the device
  rc=0; "$BIN" restore dev-files.diff "$target_dev" 2>err || rc=$?
  if ((rc != 0)) || ! cmp -s "$target_dev" dev-new.img; then
    fail "$S" restore "restore onto $target_dev: exit $rc ($(first_line err)); the device does not hold INFILE"
  fi
  rc=0; "$BIN" verify --expect restored dev-files.diff "$target_dev" 2>err >/dev/null || rc=$?
  ((rc == 0)) || fail "$S" verify "verify --expect restored on $target_dev: exit $rc, $(first_line err)"
  trials=$((trials + 1)) # a second restore finds everything written
  rc=0; "$BIN" restore -v dev-files.diff "$target_dev" 2>err || rc=$?
  if ((rc != 0)) || ! grep -q ' 0 written' err; then
    fail "$S" rerun "second restore onto $target_dev: exit $rc, $(first_line err)"
  fi

  trials=$((trials + 1)) # a block device as OUTFILE: refused without --force, written with it
  local out_dev before_out
  truncate -s "$size" dev-out.img
  if out_dev=$(losetup --find --show dev-out.img 2>losetup.err); then
    block_devices+=("$out_dev")
    before_out=$(sha256sum <"$out_dev")
    rc=0; "$BIN" dev-new.img dev-base.img "$out_dev" 2>err || rc=$?
    if ((rc != 1)) || ! grep -q 'block device.*--force' err || [[ $(sha256sum <"$out_dev") != "$before_out" ]]; then
      fail "$S" outfile "backup onto $out_dev without --force: exit $rc, $(first_line err)"
    fi
    rc=0; "$BIN" --force dev-new.img dev-base.img "$out_dev" 2>err || rc=$?
    if ((rc != 0)) || ! cmp -s -n "$(stat -c %s dev-files.diff)" dev-files.diff "$out_dev"; then
      fail "$S" outfile "backup onto $out_dev with --force: exit $rc, $(first_line err); the device does not start with the diff"
    fi
  fi
  trials=$((trials + 1)) # a read-only device as the target: refused when opened
  local ro_dev
  if ro_dev=$(losetup -r --find --show dev-base.img 2>losetup.err); then
    block_devices+=("$ro_dev")
    rc=0; "$BIN" restore dev-files.diff "$ro_dev" 2>err || rc=$?
    if ((rc != 1)) || ! grep -q 'read-only.*nothing was written' err || ! cmp -s "$ro_dev" dev-base.img; then
      fail "$S" read-only "restore onto the read-only $ro_dev: exit $rc, $(first_line err)"
    fi
    read_only_message=$(first_line err)
  fi

  trials=$((trials + 1)) # a mounted partition is refused (O_EXCL), and left as it was
  if truncate -s "$size" dev-fs.img && mkfs.ext4 -q -F dev-fs.img >mkfs.err 2>&1 &&
    cp dev-fs.img dev-fs-ref.img &&
    device=$(losetup --find --show dev-fs.img 2>>mkfs.err); then
    block_devices+=("$device")
    mkdir -p mnt
    # Mounted read-only first: a filesystem mounted read-write writes to its device by itself
    # (ext4 commits its journal about 5 s after the mount), which "left as it was" would count.
    # A read-only mount holds the device just the same, so O_EXCL must still refuse it.
    if mount -o ro "$device" mnt 2>>mkfs.err; then
      block_mount=$work/mnt
      local before after
      before=$(b3sum --no-names "$device" 2>/dev/null || sha256sum <"$device")
      rc=0; "$BIN" restore dev-files.diff "$device" 2>err || rc=$?
      after=$(b3sum --no-names "$device" 2>/dev/null || sha256sum <"$device")
      if ((rc == 0)) || ! grep -q 'mounted or in use' err || [[ $before != "$after" ]]; then
        fail "$S" mounted "restore onto the mounted $device: exit $rc, $(first_line err); device unchanged: $([[ $before == "$after" ]] && echo yes || echo NO)"
      fi
      mounted_message=$(first_line err)
      trials=$((trials + 1)) # backup of a device mounted read-write: refused unless --force
      mount -o remount,rw mnt 2>>mkfs.err || fail "$S" mounted-rw "cannot remount $device read-write: $(first_line mkfs.err)"
      rc=0; "$BIN" "$device" dev-fs-ref.img fs.diff 2>err || rc=$?
      if ((rc != 1)) || ! grep -q "mounted read-write on $work/mnt" err || [[ -e fs.diff ]]; then
        fail "$S" mounted-rw "backup of $device mounted read-write: exit $rc, $(first_line err)"
      fi
      mounted_rw_message=$(first_line err)
      rc=0; "$BIN" --force "$device" dev-fs-ref.img fs.diff 2>err || rc=$?
      ((rc == 0)) || fail "$S" mounted-rw "backup --force of $device mounted read-write: exit $rc, $(first_line err)"
      rm -f fs.diff
      if mount -o remount,ro mnt 2>>mkfs.err; then
        rc=0; "$BIN" "$device" dev-fs-ref.img fs.diff 2>err || rc=$?
        ((rc == 0)) || fail "$S" mounted-ro "backup of $device mounted read-only: exit $rc, $(first_line err)"
      fi
      umount mnt && block_mount=""
    else
      mounted_message="SKIPPED: cannot mount ($(first_line mkfs.err))"
    fi
  else
    mounted_message="SKIPPED: cannot make a filesystem ($(first_line mkfs.err))"
  fi
  summary+=("5  block devices (loop, 32 MiB): $trials trials, $((${#failures[@]} - failed_before)) failed; backup from devices equals backup from files; restore onto a device, verify --expect restored, rerun writes nothing; a device as OUTFILE refused without --force, written with it; read-only device: \"${read_only_message:-SKIPPED}\"; mounted device: \"$mounted_message\"; backup of a device mounted read-write: \"${mounted_rw_message:-SKIPPED}\", read with --force and once remounted read-only")
}

scenario_6() {
  S=6
  trials=0 failed_before=${#failures[@]}
  local killed_new=0 left_nothing=0 complete_before_kill=0 killed_chain=0 chain_partial=0 device_message=SKIPPED
  # A chain of two: older.diff (base -> older), then chain2.diff made --on it (older -> new).
  "$BIN" backup -b 16M --on older.diff new.img base.img chain2.diff
  local one_pass=("$BIN" restore --base base.img older.diff chain2.diff)
  now_us; local t0=$NOW
  rc=0; "${one_pass[@]}" onepass.img 2>err || rc=$?
  now_us; local one_pass_ms=$(((NOW - t0) / 1000))
  trials=$((trials + 1))
  if ((rc != 0)) || ! cmp -s onepass.img new.img; then
    fail "$S" one-pass "restore --base into a new file: exit $rc, $(first_line err); not INFILE"
  fi
  rm -f onepass.img

  for trial in 1 2 3 4 5 6 7 8; do # one-pass restore into a new file, killed: nothing there
    trials=$((trials + 1))
    rand 1 $((one_pass_ms * 9 / 10 + 1))
    start /dev/null err "${one_pass[@]}" onepass.img
    sleep_ms "$R"
    kill -9 "$PID" 2>/dev/null && killed_new=$((killed_new + 1))
    reap "$PID"
    if ((RC == 0)); then
      cmp -s onepass.img new.img || fail "$S" "one-pass kill $trial" "finished before the kill, but not INFILE"
      rm -f onepass.img
    elif compgen -G '.onepass.img.diff-dd-*' >/dev/null; then
      fail "$S" "one-pass kill $trial" "killed after ${R} ms: a temporary file was left beside the new name"
    elif [[ -e onepass.img ]]; then
      # The kill landed after the file was linked under its name, which happens only once it
      # holds the whole image and is synced, and before the process exited: it must be INFILE.
      if cmp -s onepass.img new.img; then
        complete_before_kill=$((complete_before_kill + 1))
      else
        fail "$S" "one-pass kill $trial" "killed after ${R} ms: an incomplete image was left under the new name"
      fi
      rm -f onepass.img
    else
      left_nothing=$((left_nothing + 1))
    fi
  done

  for trial in 1 2 3 4 5 6 7 8; do # the chain restored in place, killed: the rerun finishes
    trials=$((trials + 1))
    fresh_target
    rand 1 $((changed_bytes - 1))
    start /dev/null err "$BIN" restore older.diff chain2.diff target.img
    kill_after_writing "$PID" "$R"
    reap "$PID"
    ((RC != 0)) && killed_chain=$((killed_chain + 1))
    if ((RC != 0)) && ! cmp -s target.img base.img && ! cmp -s target.img new.img; then
      chain_partial=$((chain_partial + 1))
    fi
    rc=0; "$BIN" restore older.diff chain2.diff target.img 2>err || rc=$?
    if ((rc != 0)) || ! cmp -s target.img new.img; then
      fail "$S" "chain kill $trial" "killed after $R bytes written (exit $RC); the rerun: exit $rc, $(first_line err); target not INFILE"
    fi
  done

  trials=$((trials + 1)) # to standard output
  rc=0; "${one_pass[@]}" - 2>err | cmp -s - new.img || rc=$?
  ((rc == 0)) || fail "$S" stdout "restore --base to standard output: not INFILE ($(first_line err))"

  trials=$((trials + 1)) # onto a block device, in one pass
  local device
  truncate -s "$image_size" onepass-dev.img
  if device=$(losetup --find --show onepass-dev.img 2>losetup.err); then
    block_devices+=("$device")
    rc=0; "${one_pass[@]}" "$device" 2>err || rc=$?
    if ((rc != 0)) || ! cmp -s "$device" new.img; then
      fail "$S" device "restore --base onto $device: exit $rc, $(first_line err); the device does not hold INFILE"
    fi
    rc=0; "$BIN" verify --expect restored chain2.diff "$device" >/dev/null 2>err || rc=$?
    ((rc == 0)) || fail "$S" device "verify --expect restored on $device: exit $rc, $(first_line err)"
    device_message="written and verified"
  fi
  summary+=("6  chains: $trials trials, $((${#failures[@]} - failed_before)) failed; one-pass restore into a new file (${one_pass_ms} ms) killed $killed_new times, nothing left under its name $left_nothing, the whole image already under it $complete_before_kill; chain restored in place killed $killed_chain times (target partly written $chain_partial), every rerun finished it; to standard output; onto a loop device: $device_message")
}

# === 7. a diff rewritten during restore, long records, errors after the first write =========
scenario_7() {
  S=7
  trials=0 failed_before=${#failures[@]}
  if ((!have_strace)); then
    summary+=("7  diff rewritten during restore, memory, errors after writing: SKIPPED (no strace)")
    return
  fi
  # Two new images changed at the same 2000 blocks of a 64 MiB base, each block one byte value
  # repeated (so raw and compressed diffs of both have records of the same layout), and a day
  # after each (the same blocks changed again, half a block on).
  python3 - <<'PY'
import os
size, extents, block = 64 << 20, 2000, 4096
base = bytearray(open("base.img", "rb").read(size))
images = {name: bytearray(base) for name in ("r1", "r2")}
for extent in range(extents):
    at = extent * (size // extents) // block * block
    images["r1"][at:at + block] = bytes([1 + extent % 100]) * block
    images["r2"][at:at + block] = bytes([101 + extent % 100]) * block
images["r1b"], images["r2b"] = bytearray(images["r1"]), bytearray(images["r1"])
for extent in range(extents):
    at = extent * (size // extents) // block * block + block // 2
    images["r1b"][at:at + block] = bytes([201]) * block
    images["r2b"][at:at + block] = bytes([202]) * block
open("rbase.img", "wb").write(base)
for name, image in images.items():
    open(name + ".img", "wb").write(image)
PY
  record_start() { # DIFF K: the byte where record K's frame starts, in R
    R=$(python3 - "$1" "$2" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read(); k = int(sys.argv[2])
p = 14 + 4 + struct.unpack_from("<I", d, 14)[0]
for _ in range(k):
    n, variant = struct.unpack_from("<II", d, p)
    stored = {0: lambda: struct.unpack_from("<Q", d, p + 16)[0], 2: lambda: 0,
              3: lambda: struct.unpack_from("<Q", d, p + 24)[0]}[variant]()
    p += 4 + n + stored
print(p)
PY
)
  }
  local swapped=0 refused=0 encoding form k expected
  for encoding in none 4; do
    "$BIN" backup --compress "$encoding" r1.img rbase.img r1.diff
    "$BIN" backup --compress "$encoding" r2.img rbase.img r2.diff
    "$BIN" backup --compress "$encoding" --on r1.diff r1b.img rbase.img r1b.diff
    "$BIN" backup --compress "$encoding" --on r1.diff r2b.img rbase.img r2b.diff
    for form in single chain one-pass; do
      for trial in 1 2 3; do
        trials=$((trials + 1))
        rand 1000 1980; k=$R
        case $form in
          single) cp r1.diff work.diff; other=r2.diff; expected=r1.img
            command=(restore work.diff race.img) ;;
          chain) cp r1b.diff work.diff; other=r2b.diff; expected=r1b.img
            command=(restore r1.diff work.diff race.img) ;;
          one-pass) cp r1b.diff work.diff; other=r2b.diff; expected=r1b.img
            command=(restore --base rbase.img --force r1.diff work.diff race.img) ;;
        esac
        record_start "$other" "$k"; local from=$R
        cp rbase.img race.img
        strace -f -o /dev/null -P race.img -e trace=pwrite64 \
          -e inject=pwrite64:delay_exit=1000000:when=1 "$BIN" "${command[@]}" 2>err &
        local pid=$! waited=0
        while cmp -s -n 1 race.img rbase.img && cmp -s race.img rbase.img && ((waited < 3000)); do
          pause_ms 5; waited=$((waited + 5))
        done
        python3 -c "import os,sys; d=open('$other','rb').read()[$from:]; f=os.open('work.diff',os.O_WRONLY); os.pwrite(f,d,$from)"
        swapped=$((swapped + 1))
        reap "$pid"
        if ((RC == 0)); then
          cmp -s race.img "$expected" ||
            fail "$S" "$form --compress $encoding K=$k" "the diff was rewritten from record $k during the restore: exit 0, but the target is not the image of the diff as it was checked"
        else
          refused=$((refused + 1))
          cmp -s race.img rbase.img ||
            fail "$S" "$form --compress $encoding K=$k" "the diff was rewritten from record $k during the restore: exit $RC ($(grep -v '^strace' err | head -n 1)) after writing"
        fi
      done
    done
  done
  local swap_note="diff rewritten from record K (random, 1000-1980 of 2000) after the first write: $swapped runs (single, chain in place, one pass in place; raw and compressed), $refused refused, every other one wrote exactly the image checked"

  # Memory: a 587-byte diff of four 1 GiB zero records (and the other forms on it), each
  # under a bound that does not grow with the records' length.
  local rss_note="" what peak bomb=$repo/tests/vectors/native/v3-zero-s1g.diff
  truncate -s 4G bomb-base.img
  for i in 0 1 2 3; do printf X | dd of=bomb-base.img bs=1 seek=$((i * 1073741824 + 100)) conv=notrunc status=none; done
  cp --sparse=always bomb-base.img bomb-target.img
  for what in verify restore one-pass merge; do
    trials=$((trials + 1))
    case $what in
      verify) command=(verify "$bomb") ;;
      restore) command=(restore "$bomb" bomb-target.img) ;;
      one-pass) command=(restore --base bomb-base.img "$bomb" bomb-new.img) ;;
      merge) command=(merge "$bomb" bomb-merged.diff) ;;
    esac
    rc=0; /usr/bin/time -f %M -o rss "$BIN" "${command[@]}" >/dev/null 2>err || rc=$?
    peak=$(tail -n 1 rss)
    if ((rc != 0)); then
      fail "$S" "rss $what" "${command[*]}: exit $rc, $(first_line err)"
    elif ((peak > 65536)); then
      fail "$S" "rss $what" "${command[*]} took $peak KiB at its peak (bound: 64 MiB)"
    fi
    rss_note+="$what $((peak / 1024)) MiB, "
  done
  rm -f bomb-base.img bomb-target.img bomb-new.img bomb-merged.diff

  # A target on a filesystem that fills up during the writing run: exit 6, and the message
  # says it was written in part.
  local enospc_note="SKIPPED (no tmpfs)"
  mkdir -p racefull
  if mount -t tmpfs -o size=16M tmpfs racefull 2>/dev/null; then
    race_mount=$work/racefull
    trials=$((trials + 1))
    # A base of zeros, so that the target holds it sparse; 40 MiB of it changed.
    truncate -s 64M zbase.img
    cp zbase.img znew.img
    head -c 40M /dev/urandom | dd of=znew.img conv=notrunc status=none
    "$BIN" backup znew.img zbase.img z.diff
    truncate -s 64M racefull/t.img
    rc=0; "$BIN" restore z.diff racefull/t.img 2>err || rc=$?
    if ((rc != 6)) || ! grep -q 'written in part: run the same restore again to finish' err; then
      fail "$S" enospc "restore onto a sparse target on a full 16 MiB tmpfs: exit $rc, $(first_line err)"
    fi
    enospc_note="exit $rc, \"$(first_line err | sed 's/.*; //')\""
    umount racefull && race_mount=""
  fi
  summary+=("7  $trials trials, $((${#failures[@]} - failed_before)) failed; $swap_note; peak RSS on the 1 GiB-sector diff: ${rss_note%, }; a target filling its filesystem during the writing run: $enospc_note")
}

# === 8. digests ===============================================================================
scenario_8() {
  S=8
  trials=0 failed_before=${#failures[@]}
  local size rc flips=0 cuts=0 none=0 diff_only=0 both=0 finished=0 durations=() digest_ms
  "$BIN" digest base.img base.dg
  "$BIN" backup --digest base.dg --digest-out ref-next.dg new.img ref-digest.diff
  size=$(stat -c %s base.dg)
  mkdir -p dout
  # Damaged digests: one bit flipped anywhere, or cut anywhere; from a file or a pipe.
  for trial in $(seq 1 16); do
    trials=$((trials + 1))
    find dout -mindepth 1 -delete
    cp base.dg bad.dg
    if ((trial % 2)); then
      rand 0 $((size - 1)); local at=$R
      rand 0 7
      python3 -c 'import sys; p, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]); d = bytearray(open(p, "rb").read()); d[a] ^= 1 << b; open(p, "wb").write(d)' bad.dg "$at" "$R"
      flips=$((flips + 1)); how="bit $R of byte $at flipped"
    else
      rand 0 $((size - 1))
      truncate -s "$R" bad.dg
      cuts=$((cuts + 1)); how="cut to $R bytes"
    fi
    rc=0
    if ((trial % 4 < 2)); then
      "$BIN" backup --digest bad.dg --digest-out dout/next.dg new.img dout/d.diff 2>err || rc=$?
    else
      how="$how, through a pipe"
      "$BIN" backup --digest - --digest-out dout/next.dg new.img dout/d.diff <bad.dg 2>err || rc=$?
    fi
    vlog "  8 trial $trial: $how; exit $rc: $(first_line err)"
    if ((rc != 1)) || [[ -n $(ls -A dout) ]]; then
      fail "$S" "$trial" "backup --digest with a damaged digest ($how): exit $rc, left: $(ls -A dout | tr '\n' ' '), $(first_line err)"
    fi
  done
  # Killed at random moments.
  for run in 1 2 3; do
    find dout -mindepth 1 -delete
    now_us; local t0=$NOW
    "$BIN" backup --digest base.dg --digest-out dout/next.dg new.img dout/d.diff
    now_us; durations+=($(((NOW - t0) / 1000)))
  done
  digest_ms=$(median "${durations[@]}")
  for trial in $(seq 1 16); do
    trials=$((trials + 1))
    find dout -mindepth 1 -delete
    start /dev/null err "$BIN" backup --digest base.dg --digest-out dout/next.dg new.img dout/d.diff
    rand 0 $((digest_ms * 11 / 10))
    sleep_ms "$R"
    kill -9 "$PID" 2>/dev/null || true
    reap "$PID"
    local listing
    listing=$(ls -A dout | tr '\n' ' ')
    vlog "  8 kill $trial: after $R ms, exit $RC, left: $listing"
    case "${listing% }" in
      "") none=$((none + 1)) ;;
      d.diff)
        if cmp -s dout/d.diff ref-digest.diff; then diff_only=$((diff_only + 1))
        else fail "$S" "kill $trial" "killed after $R ms: an incomplete OUTFILE"; fi ;;
      "d.diff next.dg")
        if cmp -s dout/d.diff ref-digest.diff && cmp -s dout/next.dg ref-next.dg; then
          if ((RC == 0)); then finished=$((finished + 1)); else both=$((both + 1)); fi
        else
          fail "$S" "kill $trial" "killed after $R ms: OUTFILE or NEXT incomplete"
        fi ;;
      *) fail "$S" "kill $trial" "killed after $R ms (exit $RC) left: $listing" ;;
    esac
  done
  summary+=("8  digests: $trials trials, $((${#failures[@]} - failed_before)) failed; damaged digests refused with nothing left: $flips bit flips, $cuts cuts; backup --digest killed (uninterrupted ${digest_ms} ms): nothing left $none, OUTFILE alone (complete) $diff_only, both complete $both, finished $finished")
}

# === run ======================================================================================
for scenario in ${FAULT_SCENARIOS:-1 1b 2 2b 3 4 5 6 7 8}; do
  declare -F "scenario_$scenario" >/dev/null || { log "fault-campaign: no scenario $scenario"; exit 2; }
  "scenario_$scenario"
done

# === summary ==================================================================================
echo "fault campaign (seed $seed, $((image_size >> 20)) MiB images, $extent_count extents, $((changed_bytes >> 20)) MiB changed, stored in $((stored_bytes >> 20)) MiB):"
printf '%s\n' "${summary[@]}"
elapsed=$((SECONDS - campaign_start))
if ((${#failures[@]} > 0)); then
  echo "FAILED: ${#failures[@]} trial(s) in $((elapsed / 60))m$((elapsed % 60))s (FAULT_SEED=$seed repeats the images and random choices):"
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
echo "all trials passed in $((elapsed / 60))m$((elapsed % 60))s"
