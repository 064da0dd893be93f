//! A diff rewritten in place while a restore writes from it (as `rsync --inplace` or
//! `dd conv=notrunc` would): every byte written must be one the check accepted. The restore is
//! held for a moment (strace) right after its first write to the target; the diff's records
//! from record K on are then replaced by those of another diff of the same layout, whose
//! records carry valid hashes of their own. The target must end up holding the image of the
//! diff as it was checked, or be refused with nothing written; never a mix.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{diff_dd, Random};

const IMAGE: usize = 8 << 20;
const EXTENTS: usize = 1000;
const BLOCK: usize = 4096;

/// The base image, and two new images changed at the same blocks: each block in `first` holds
/// one byte value repeated and in `second` another, so that raw and compressed diffs of both
/// have records of the same offsets and stored sizes.
fn images() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let base = Random(0x5a4_ce00_0000_0018).bytes(IMAGE);
    let (mut first, mut second) = (base.clone(), base.clone());
    for extent in 0..EXTENTS {
        let at = extent * (IMAGE / EXTENTS) / BLOCK * BLOCK;
        first[at..at + BLOCK].fill(1 + (extent % 100) as u8);
        second[at..at + BLOCK].fill(101 + (extent % 100) as u8);
    }
    (base, first, second)
}

/// Where record `index` of the native diff `diff` starts (its frame's length field).
fn record_start(diff: &[u8], index: usize) -> usize {
    let u32_at = |at: usize| u32::from_le_bytes(diff[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(diff[at..at + 8].try_into().unwrap()) as usize;
    let mut at = 14;
    at += 4 + u32_at(at);
    for _ in 0..index {
        let payload = u32_at(at);
        let stored = match u32_at(at + 4) {
            0 => u64_at(at + 16),
            2 => 0,
            3 => u64_at(at + 24),
            other => panic!("record frame of variant {other}"),
        };
        at += 4 + payload + stored;
    }
    at
}

fn backup(work: &Path, options: &[&str], on: &[&str], new: &str, diff: &str) {
    let mut command = diff_dd();
    command
        .current_dir(work)
        .env("SOURCE_DATE_EPOCH", "0")
        .arg("backup");
    for previous in on {
        command.args(["--on", previous]);
    }
    command
        .args(options)
        .args([new, "base.img", diff])
        .assert()
        .success();
}

/// Runs diff-dd with `args` in `work`, held for a second after its first write to
/// `target`; meanwhile `work.diff` gets the bytes of `other` from record `from_record` on.
/// Returns the exit status and standard error.
fn restore_racing(
    work: &Path,
    args: &[&str],
    target: &str,
    other: &str,
    from_record: usize,
) -> (bool, String) {
    let strace_found = Command::new("strace").arg("-V").output().is_ok();
    assert!(strace_found, "strace is needed (.ci/run installs it)");
    let binary = assert_cmd::cargo::cargo_bin("diff-dd");
    let before = fs::read(work.join(target)).unwrap();
    let child = Command::new("strace")
        .current_dir(work)
        .args([
            "-f",
            "-o",
            "/dev/null",
            "-P",
            target,
            "-e",
            "trace=pwrite64",
        ])
        .args(["-e", "inject=pwrite64:delay_exit=1000000:when=1"])
        .arg(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while fs::read(work.join(target)).unwrap() == before {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the restore never wrote"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let replacement = fs::read(work.join(other)).unwrap();
    let from = record_start(&replacement, from_record);
    let diff = fs::OpenOptions::new()
        .write(true)
        .open(work.join("work.diff"))
        .unwrap();
    diff.write_all_at(&replacement[from..], from as u64)
        .unwrap();
    drop(diff);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.starts_with("strace: "))
        .collect::<Vec<_>>()
        .join("\n");
    (output.status.success(), stderr)
}

/// The target holds `expected` after a successful run, or `before` after a refusal.
fn assert_checked_bytes_only(
    work: &Path,
    target: &str,
    outcome: (bool, String),
    expected: &[u8],
    before: &[u8],
    case: &str,
) {
    let after = fs::read(work.join(target)).unwrap();
    let (success, stderr) = outcome;
    if success {
        assert!(
            after == expected,
            "{case}: exit 0 but the target does not hold the checked image"
        );
    } else {
        assert!(after == before, "{case}: refused ({stderr}) after writing");
    }
}

#[test]
fn a_diff_rewritten_during_a_restore_is_never_written() {
    let (base, first, second) = images();
    for compress in ["none", "3"] {
        let work = tempfile::tempdir().unwrap();
        let work = work.path();
        fs::write(work.join("base.img"), &base).unwrap();
        fs::write(work.join("first.img"), &first).unwrap();
        fs::write(work.join("second.img"), &second).unwrap();
        let options = ["--compress", compress];
        backup(work, &options, &[], "first.img", "first.diff");
        backup(work, &options, &[], "second.img", "second.diff");
        let (a, b) = (
            fs::read(work.join("first.diff")).unwrap(),
            fs::read(work.join("second.diff")).unwrap(),
        );
        assert_eq!(a.len(), b.len(), "the two diffs differ in layout");
        for from_record in [EXTENTS - 200, EXTENTS - 50] {
            let case = format!("restore, --compress {compress}, records {from_record}.. replaced");
            fs::write(work.join("t.img"), &base).unwrap();
            fs::copy(work.join("first.diff"), work.join("work.diff")).unwrap();
            let outcome = restore_racing(
                work,
                &["restore", "work.diff", "t.img"],
                "t.img",
                "second.diff",
                from_record,
            );
            assert_checked_bytes_only(work, "t.img", outcome, &first, &base, &case);
        }

        // A chain: first.img, then a day after it (the same blocks changed again, either way).
        let mut day2_first = first.clone();
        let mut day2_second = first.clone();
        for extent in 0..EXTENTS {
            let at = extent * (IMAGE / EXTENTS) / BLOCK * BLOCK + BLOCK / 2;
            day2_first[at..at + BLOCK].fill(201);
            day2_second[at..at + BLOCK].fill(202);
        }
        fs::write(work.join("day2-first.img"), &day2_first).unwrap();
        fs::write(work.join("day2-second.img"), &day2_second).unwrap();
        backup(
            work,
            &options,
            &["first.diff"],
            "day2-first.img",
            "day2-first.diff",
        );
        backup(
            work,
            &options,
            &["first.diff"],
            "day2-second.img",
            "day2-second.diff",
        );
        let from_record = EXTENTS / 2;
        let case = format!("chain in place, --compress {compress}");
        fs::write(work.join("t.img"), &base).unwrap();
        fs::copy(work.join("day2-first.diff"), work.join("work.diff")).unwrap();
        let outcome = restore_racing(
            work,
            &["restore", "first.diff", "work.diff", "t.img"],
            "t.img",
            "day2-second.diff",
            from_record,
        );
        assert_checked_bytes_only(work, "t.img", outcome, &day2_first, &base, &case);

        let case = format!("one pass in place, --compress {compress}");
        fs::write(work.join("t.img"), &base).unwrap();
        fs::copy(work.join("day2-first.diff"), work.join("work.diff")).unwrap();
        let outcome = restore_racing(
            work,
            &[
                "restore",
                "--base",
                "base.img",
                "--force",
                "first.diff",
                "work.diff",
                "t.img",
            ],
            "t.img",
            "day2-second.diff",
            from_record,
        );
        assert_checked_bytes_only(work, "t.img", outcome, &day2_first, &base, &case);
    }
}

/// The private copy needs a directory with room: one that cannot take it refuses the restore
/// before anything is written, naming the directory and the way out.
#[test]
fn a_spool_directory_that_cannot_hold_the_copy_refuses_with_nothing_written() {
    let (base, first, _) = images();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    fs::write(work.join("base.img"), &base).unwrap();
    fs::write(work.join("first.img"), &first).unwrap();
    backup(work, &[], &[], "first.img", "first.diff");
    fs::write(work.join("t.img"), &base).unwrap();
    let stderr = crate::util::refused(
        diff_dd()
            .current_dir(work)
            .args(["restore", "--spool", "missing-dir", "first.diff", "t.img"])
            .assert(),
    );
    assert!(
        stderr.contains("cannot copy the diff: missing-dir") && stderr.contains("--spool DIR"),
        "{stderr}"
    );
    assert!(fs::read(work.join("t.img")).unwrap() == base);
}
