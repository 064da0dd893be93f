//! Memory is bounded by the buffer size and a constant, whatever lengths a diff states: a diff
//! of four 1 GiB zero records stored in 587 bytes, and chains of 8 MiB compressed, zero and
//! raw records (longer than any record held whole), are checked, restored, laid over an image,
//! merged and verified in a few tens of MB. Peak RSS is the child's own (`wait4`).

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::{vector, Random};

/// Runs diff-dd with `args` in `work`; returns whether it succeeded and its peak RSS in bytes,
/// as GNU time reports it (a child's peak counts what its parent held when it forked, so the
/// command is started from the small time process, not from this test process).
fn run_measured(work: &Path, args: &[&str]) -> (bool, u64) {
    let report = work.join("peak-rss");
    let status = Command::new("/usr/bin/time")
        .current_dir(work)
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(assert_cmd::cargo::cargo_bin("diff-dd"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("GNU time is needed (.ci/run installs it)");
    let report = fs::read_to_string(&report).unwrap();
    let kib: u64 = report
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("time reported {report:?}"));
    (status.success(), kib * 1024)
}

/// The most any of these commands may take: the default 4 MiB buffer on each of up to four
/// reading threads, the pieces of long records, zstd's window of 8 MiB and the binary itself.
const PEAK_LIMIT: u64 = 64 << 20;

#[test]
fn a_diff_of_one_gib_zero_records_is_verified_in_bounded_memory() {
    let work = tempfile::tempdir().unwrap();
    let (success, peak) = run_measured(
        work.path(),
        &[
            "verify",
            vector("native/v3-zero-s1g.diff").to_str().unwrap(),
        ],
    );
    assert!(success, "verify refused the 1 GiB-sector diff");
    assert!(peak < PEAK_LIMIT, "verify took {peak} bytes");
}

#[test]
fn chains_of_long_records_restore_in_bounded_memory() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    const SECTOR: usize = 8 << 20;
    let base = Random(0x3e3_0000_0018_0002).bytes(8 * SECTOR);
    let mut monday = base.clone();
    monday[..SECTOR].fill(7); // compressed (a few bytes)
    monday[2 * SECTOR..3 * SECTOR].fill(0); // a zero record
    monday[5 * SECTOR + 100] ^= 1; // a raw record of one sector
    let mut tuesday = monday.clone();
    for (at, byte) in tuesday[SECTOR / 2..3 * SECTOR / 2].iter_mut().enumerate() {
        *byte = (at % 97) as u8; // compressed, over Monday's first two records
    }
    tuesday[7 * SECTOR..].copy_from_slice(&Random(7).bytes(SECTOR));
    for (name, bytes) in [
        ("base.img", &base),
        ("mon.img", &monday),
        ("tue.img", &tuesday),
    ] {
        fs::write(work.join(name), bytes).unwrap();
    }
    let backup = |args: &[&str]| {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("diff-dd"));
        let status = command.current_dir(work).args(args).status().unwrap();
        assert!(status.success(), "backup {args:?} failed");
    };
    backup(&[
        "backup", "-s", "8M", "-b", "8M", "mon.img", "base.img", "mon.diff",
    ]);
    backup(&[
        "backup", "-s", "8M", "-b", "8M", "--on", "mon.diff", "tue.img", "base.img", "tue.diff",
    ]);

    fs::write(work.join("t.img"), &base).unwrap();
    fs::write(work.join("c.img"), &base).unwrap();
    fs::write(work.join("w.img"), &base).unwrap();
    let runs: [(&str, &[&str], &str, &Vec<u8>); 7] = [
        (
            "restore",
            &["restore", "mon.diff", "t.img"],
            "t.img",
            &monday,
        ),
        ("rerun", &["restore", "mon.diff", "t.img"], "t.img", &monday),
        (
            "verify",
            &["verify", "--expect", "restored", "mon.diff", "t.img"],
            "t.img",
            &monday,
        ),
        (
            "chain in place",
            &["restore", "mon.diff", "tue.diff", "c.img"],
            "c.img",
            &tuesday,
        ),
        (
            "one pass",
            &[
                "restore", "--base", "base.img", "mon.diff", "tue.diff", "n.img",
            ],
            "n.img",
            &tuesday,
        ),
        (
            "merge",
            &[
                "merge",
                "--base",
                "base.img",
                "mon.diff",
                "tue.diff",
                "week.diff",
            ],
            "base.img",
            &base,
        ),
        (
            "merged restore",
            &["restore", "week.diff", "w.img"],
            "w.img",
            &tuesday,
        ),
    ];
    for (what, args, target, expected) in runs {
        let (success, peak) = run_measured(work, args);
        assert!(success, "{what} failed");
        assert!(
            fs::read(work.join(target)).unwrap() == *expected,
            "{what}: wrong image"
        );
        assert!(peak < PEAK_LIMIT, "{what} took {peak} bytes");
    }
}
