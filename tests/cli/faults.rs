//! Fault campaign, the fast part (the heavy part, kill -9 and full filesystems, is
//! .ci/fault-campaign.sh): damaged diffs, wrong targets and misuse must be refused with a
//! clear error and a non-zero exit, leaving every file as it was.

use std::fs;
use std::path::Path;

use crate::util::{diff_dd, Fixture, Random};

/// The campaign's fixture: a 64 KiB base image, a new image changed in three places, and the
/// native diff between them (good.diff in the work directory, and its bytes).
fn fixture() -> (Fixture, Vec<u8>) {
    let base = Random(0x0fa1_75ca_3a16_0001).bytes(64 * 1024);
    let mut new = base.clone();
    new[1000] ^= 0xff; // sector 1
    for byte in &mut new[8192..9216] {
        *byte = !*byte; // sectors 16-17
    }
    new[65535] ^= 1; // the last sector
    let fixture = Fixture::new(base, new);
    fixture
        .command()
        .env("SOURCE_DATE_EPOCH", "0")
        .args(["new.img", "base.img", "good.diff"])
        .assert()
        .success();
    let diff = fs::read(fixture.path("good.diff")).unwrap();
    (fixture, diff)
}

/// Where each frame, frame header and record's data starts and ends in `diff`.
fn frame_boundaries(diff: &[u8]) -> Vec<usize> {
    let u32_at = |at: usize| u32::from_le_bytes(diff[at..at + 4].try_into().unwrap()) as usize;
    let mut boundaries = vec![0, 13, 14];
    let mut at = 14;
    let header_length = u32_at(at);
    at += 4 + header_length;
    boundaries.extend([18, at]);
    loop {
        let payload = u32_at(at);
        let variant = u32_at(at + 4);
        boundaries.extend([at + 4, at + 4 + payload]);
        if variant == 1 {
            at += 4 + payload;
            break; // the trailer
        }
        let length = u64::from_le_bytes(diff[at + 16..at + 24].try_into().unwrap()) as usize;
        at += 4 + payload + length;
        boundaries.push(at);
    }
    boundaries.extend([at, at + 8, at + 40, diff.len() - 1]);
    boundaries.sort_unstable();
    boundaries.dedup();
    boundaries
}

#[test]
fn the_fixture_restores() {
    let (fixture, diff) = fixture();
    let (output, after) = fixture.restore("plain", &diff, &fixture.base);
    assert!(output.status.success());
    assert!(after == fixture.new);
}

/// Every byte of the diff, one bit flipped in each: header, record headers, data, trailer and
/// footer alike. Each must be refused with the target untouched.
#[test]
fn a_flipped_bit_anywhere_is_refused() {
    let (fixture, diff) = fixture();
    let positions: Vec<usize> = (0..diff.len()).collect();
    assert!(
        positions.len() >= 500,
        "the diff is too small to give 500 positions"
    );
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let (fixture, diff) = (&fixture, &diff);
            let positions = &positions;
            scope.spawn(move || {
                for &position in positions.iter().skip(worker).step_by(2) {
                    let mut damaged = diff.clone();
                    damaged[position] ^= 1 << (position % 8);
                    let name = format!("flip-{position}");
                    fixture.assert_refused(
                        &name,
                        &damaged,
                        &format!("bit {} of byte {position}", position % 8),
                    );
                }
            });
        }
    });
}

/// Cut at every frame boundary and at 200 pseudo-random points.
#[test]
fn a_truncated_diff_is_refused() {
    let (fixture, diff) = fixture();
    let mut cuts = frame_boundaries(&diff);
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        cuts.push(random.below(diff.len()));
    }
    for cut in cuts {
        fixture.assert_refused(
            &format!("cut-{cut}"),
            &diff[..cut],
            &format!("cut at {cut}"),
        );
    }
}

#[test]
fn extra_bytes_after_the_footer_are_refused() {
    let (fixture, diff) = fixture();
    let mut longer = diff.clone();
    longer.push(0);
    fixture.assert_refused("longer", &longer, "one byte appended");
}

#[test]
fn one_byte_off_inside_an_extent_is_refused_before_any_write() {
    let (fixture, diff) = fixture();
    for position in [1000, 8192, 9215, 65535] {
        let mut target = fixture.base.clone();
        target[position] ^= 0x40;
        let (output, after) = fixture.restore("wrong", &diff, &target);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("wrong target") && stderr.contains("nothing was written"),
            "{stderr}"
        );
        assert!(after == target, "byte {position}: the target changed");
    }
}

#[test]
fn one_byte_off_outside_every_extent_restores_and_verify_then_says_neither() {
    let (fixture, _) = fixture();
    let mut target = fixture.base.clone();
    target[30_000] ^= 0x40;
    let target_path = fixture.path("outside.img");
    fs::write(&target_path, &target).unwrap();
    diff_dd()
        .arg(fixture.path("good.diff"))
        .arg(&target_path)
        .assert()
        .success();
    let mut expected = fixture.new.clone();
    expected[30_000] ^= 0x40;
    assert!(fs::read(&target_path).unwrap() == expected);
    let output = diff_dd()
        .args(["verify", "--json"])
        .arg(fixture.path("good.diff"))
        .arg(&target_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["target"]["state"], "neither");
    assert_eq!(report["target"]["extents"]["restored"], 3);
}

#[test]
fn targets_of_the_wrong_size_are_refused() {
    let (fixture, diff) = fixture();
    for size in [
        0,
        512,
        fixture.base.len() - 1,
        fixture.base.len() + 1,
        fixture.base.len() + 4096,
    ] {
        let mut target = fixture.base.clone();
        target.resize(size, 0);
        let (output, after) = fixture.restore("size", &diff, &target);
        assert_eq!(output.status.code(), Some(1), "size {size}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("wrong target"));
        assert!(after == target);
    }
}

#[test]
fn a_locked_target_is_refused() {
    let (fixture, _) = fixture();
    let target_path = fixture.path("locked.img");
    fs::write(&target_path, &fixture.base).unwrap();
    // Another restore holds the lock: the same lock a running diff-dd takes.
    let holder = fs::File::open(&target_path).unwrap();
    holder.lock().unwrap();
    let output = diff_dd()
        .arg(fixture.path("good.diff"))
        .arg(&target_path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("lock"));
    assert!(fs::read(&target_path).unwrap() == fixture.base);
    holder.unlock().unwrap();
    diff_dd()
        .arg(fixture.path("good.diff"))
        .arg(&target_path)
        .assert()
        .success();
}

fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn misuse_is_refused_and_leaves_files_alone() {
    let (fixture, good) = fixture();
    let directory = fixture.path("a-directory");
    fs::create_dir(&directory).unwrap();
    let fifo = fixture.path("a-fifo");
    make_fifo(&fifo);
    let base = fixture.path("base.img");
    let new = fixture.path("new.img");
    let diff = fixture.path("good.diff");
    let (out1, out2) = (fixture.path("out1"), fixture.path("out2"));
    let short = fixture.path("short.img");
    fs::write(&short, [0; 512]).unwrap();
    let cases: Vec<(&str, Vec<&Path>)> = vec![
        // Refused for the images before the FIFO is opened, which would wait for a reader.
        (
            "images of different sizes into a FIFO",
            vec![&new, &short, &fifo],
        ),
        ("a directory as INFILE", vec![&directory, &base, &out1]),
        ("a directory as OUTFILE", vec![&new, &base, &directory]),
        ("a FIFO as INFILE", vec![&fifo, &base, &out2]),
        ("a directory as DIFFFILE", vec![&directory, &base]),
        ("a FIFO as the target", vec![&diff, &fifo]),
        ("a directory as the target", vec![&diff, &directory]),
        ("the diff as its own target", vec![&diff, &diff]),
    ];
    for (what, paths) in cases {
        let output = diff_dd()
            .args(&paths)
            .timeout(std::time::Duration::from_secs(10))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
        assert!(stderr.starts_with("diff-dd: "), "{what}: {stderr}");
    }
    assert!(fs::read(&base).unwrap() == fixture.base);
    assert!(fs::read(&diff).unwrap() == good);
    assert!(!out1.exists() && !out2.exists());
}

#[test]
fn zero_length_images_make_an_empty_diff_that_restores() {
    let (fixture, _) = fixture();
    let empty = fixture.path("empty.img");
    fs::write(&empty, b"").unwrap();
    let diff = fixture.path("empty.diff");
    diff_dd()
        .arg(&empty)
        .arg(&empty)
        .arg(&diff)
        .assert()
        .success();
    diff_dd().arg(&diff).arg(&empty).assert().success();
    diff_dd()
        .arg("verify")
        .arg(&diff)
        .arg(&empty)
        .assert()
        .success();
    assert_eq!(fs::read(&empty).unwrap().len(), 0);
}

#[test]
fn a_full_device_as_outfile_fails_cleanly() {
    if !Path::new("/dev/full").exists() {
        return; // Not Linux-like; nothing to test.
    }
    let (fixture, _) = fixture();
    let output = diff_dd()
        .arg(fixture.path("new.img"))
        .arg(fixture.path("base.img"))
        .arg("/dev/full")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/dev/full") && stderr.contains("No space left"),
        "{stderr}"
    );
}

/// A backup killed while its diff had a temporary name leaves `.NAME.diff-dd-PID`; the next
/// backup to that OUTFILE removes it when PID no longer runs, and nothing else.
#[test]
fn the_next_backup_removes_temporary_files_of_killed_backups() {
    let (fixture, _) = fixture();
    let outfile = fixture.path("out.diff");
    // Process IDs above the kernel's maximum (4194304) never run; PID 1 always does.
    let dead = fixture.path(".out.diff.diff-dd-99999999");
    let alive = fixture.path(".out.diff.diff-dd-1");
    let unrelated = [
        fixture.path(".out.diff.diff-dd-12x"),
        fixture.path(".other.diff.diff-dd-99999999"),
        fixture.path("out.diff.diff-dd-99999999"),
    ];
    for path in unrelated.iter().chain([&dead, &alive]) {
        fs::write(path, b"partial").unwrap();
    }
    diff_dd()
        .arg(fixture.path("new.img"))
        .arg(fixture.path("base.img"))
        .arg(&outfile)
        .assert()
        .success();
    assert!(!dead.exists(), "the dead backup's temporary file was kept");
    assert!(
        alive.exists(),
        "a running process's temporary file was removed"
    );
    for path in &unrelated {
        assert!(path.exists(), "{} was removed", path.display());
    }
}

/// A restore killed inside the only record of a diff leaves that record torn: new data up to
/// a page boundary, base data after. Running restore again must finish it (found by the
/// `v3_records` fuzz target: the dry run used to check the whole-diff hash it never fed).
#[test]
fn a_torn_single_record_is_finished_by_a_rerun() {
    let base = vec![0u8; 16384];
    let mut new = base.clone();
    new[..8192].fill(b'N');
    let fixture = Fixture::new(base, new);
    fixture.backup(&[], "one.diff");
    // Torn at the first page boundary, one sector past it, one sector before the end.
    for torn_at in [4096, 4096 + 512, 8192 - 512] {
        let mut target = fixture.base.clone();
        target[..torn_at].copy_from_slice(&fixture.new[..torn_at]);
        fs::write(fixture.path("target.img"), &target).unwrap();
        fixture
            .command()
            .args(["one.diff", "target.img"])
            .assert()
            .success();
        assert!(
            fs::read(fixture.path("target.img")).unwrap() == fixture.new,
            "torn at {torn_at}: not finished"
        );
    }
}
