//! The core contract, driven through the real binary on real files: backup finds exactly the
//! changed sectors, restore rebuilds INFILE from REFFILE, the original synopsis and the
//! subcommands agree, and every bad argument is refused before any file is touched.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::Value;

use crate::util::{diff_dd, listed_extents, Fixture, Random};

/// `base` with changes of every shape: single bytes, runs across buffer and sector
/// boundaries, the first and the last byte.
fn changed_copy(base: &[u8], random: &mut Random, changes: usize) -> Vec<u8> {
    let mut new = base.to_vec();
    let length = new.len();
    for _ in 0..changes {
        let start = random.below(length);
        let longest = if random.below(4) == 0 { 20_000 } else { 3 };
        let run = 1 + random.below(longest);
        for byte in &mut new[start..length.min(start + run)] {
            *byte = !*byte;
        }
    }
    new[0] ^= 0x5a;
    new[length - 1] ^= 0xa5;
    new
}

/// The record size limit diff-dd writes: whole sectors up to 4 MiB, at least one sector,
/// whatever -b (man/diff-dd.5).
fn record_limit(sector: usize) -> usize {
    ((4 << 20) / sector).max(1) * sector
}

/// What the diff must list: each maximal run of changed sectors, cut into records of at most
/// `limit` bytes from its start, the last sector possibly short.
fn expected_extents(base: &[u8], new: &[u8], sector: usize, limit: usize) -> Vec<(u64, u64)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for start in (0..base.len()).step_by(sector) {
        let end = base.len().min(start + sector);
        if base[start..end] == new[start..end] {
            continue;
        }
        match runs.last_mut() {
            Some((_, run_end)) if *run_end == start => *run_end = end,
            _ => runs.push((start, end)),
        }
    }
    let mut extents = Vec::new();
    for (start, end) in runs {
        for piece in (start..end).step_by(limit) {
            extents.push((piece as u64, (end.min(piece + limit) - piece) as u64));
        }
    }
    extents
}

fn inspect_json(diff: &Path) -> Value {
    let output = diff_dd()
        .args(["inspect", "--json"])
        .arg(diff)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn random_changes_round_trip_at_several_sector_and_buffer_sizes() {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    // (sector size, buffer size, image size): short last sectors, buffers small enough that
    // runs are split into several records, and the defaults.
    let cases = [
        (512, 4096, 300_000 + 123),
        (4096, 8192, 400_000 + 4000),
        (1, 64, 20_000 + 1),
        (512, 4 << 20, 1 << 20),
        (520, 520 * 3, 100_000),
    ];
    for (sector, buffer, size) in cases {
        let base = random.bytes(size);
        let new = changed_copy(&base, &mut random, 40);
        let fixture = Fixture::new(base, new);
        let options = [
            "-s".to_string(),
            sector.to_string(),
            "-b".into(),
            buffer.to_string(),
        ];
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        fixture.backup(&options, "a.diff");

        let listing = inspect_json(&fixture.path("a.diff"));
        let expected = expected_extents(&fixture.base, &fixture.new, sector, record_limit(sector));
        assert_eq!(
            listed_extents(&listing),
            expected,
            "-s {sector} -b {buffer}: the diff does not list exactly the changed sectors"
        );
        assert_eq!(listing["sector_size"], sector);
        assert_eq!(listing["image_size"], size);
        let changed: u64 = expected.iter().map(|(_, length)| length).sum();
        assert_eq!(listing["changed_bytes"], changed);
        fixture.assert_restores("a.diff");
    }
}

#[test]
fn whole_image_hashes_are_blake3_of_the_files() {
    // Larger than the buffer, so both images are hashed in independent pieces and merged.
    let mut random = Random(7);
    let base = random.bytes(3 << 20 | 777);
    let new = changed_copy(&base, &mut random, 10);
    let fixture = Fixture::new(base, new);
    for buffer in ["64K", "1M", "4M"] {
        fixture.backup(&["-b", buffer], "h.diff");
        let listing = inspect_json(&fixture.path("h.diff"));
        assert_eq!(
            listing["image_blake3"],
            blake3::hash(&fixture.new).to_hex().as_str(),
            "-b {buffer}"
        );
        assert_eq!(
            listing["base_blake3"],
            blake3::hash(&fixture.base).to_hex().as_str(),
            "-b {buffer}"
        );
    }
}

#[test]
fn identical_images_make_an_empty_diff() {
    let base = Random(3).bytes(50_000);
    let fixture = Fixture::new(base.clone(), base);
    fixture.backup(&[], "empty.diff");
    let listing = inspect_json(&fixture.path("empty.diff"));
    assert_eq!(listed_extents(&listing), vec![]);
    assert_eq!(listing["changed_bytes"], 0);
    fixture.assert_restores("empty.diff");
}

#[test]
fn every_sector_changed() {
    let base = Random(4).bytes(100_000);
    let new: Vec<u8> = base.iter().map(|byte| !byte).collect();
    let fixture = Fixture::new(base, new);
    fixture.backup(&["-s", "4096", "-b", "16K"], "all.diff");
    let listing = inspect_json(&fixture.path("all.diff"));
    let extents = listed_extents(&listing);
    // One run, shorter than a record: -b 16K reads it in pieces but does not split it.
    assert_eq!(extents, [(0, 100_000)]);
    fixture.assert_restores("all.diff");
}

#[test]
fn synopsis_and_subcommands_write_the_same_diff() {
    let mut random = Random(5);
    let base = random.bytes(70_000);
    let new = changed_copy(&base, &mut random, 5);
    let fixture = Fixture::new(base, new);
    let run = |leading: &[&str], diff: &str| {
        fixture
            .command()
            .env("SOURCE_DATE_EPOCH", "1764000000")
            .args(leading)
            .args(["new.img", "base.img", diff])
            .assert()
            .success();
        fs::read(fixture.path(diff)).unwrap()
    };
    let plain = run(&[], "plain.diff");
    assert_eq!(plain, run(&["backup"], "explicit.diff"));
    // Sizes written with suffixes mean the same bytes as plain numbers.
    let in_bytes = run(&["-s", "4096", "-b", "1048576"], "bytes.diff");
    assert_eq!(run(&["-s", "4K", "-b", "1M"], "k.diff"), in_bytes);
    assert_eq!(
        run(
            &["--sector-size", "4KiB", "--buffer-size", "1MiB"],
            "kib.diff"
        ),
        in_bytes
    );

    // The two-path synopsis and `restore` alike.
    for leading in [&[][..], &["restore"][..]] {
        let target = fixture.target("target.img");
        fixture
            .command()
            .args(leading)
            .args(["plain.diff", "target.img"])
            .assert()
            .success()
            .stdout("")
            .stderr("");
        assert!(fs::read(&target).unwrap() == fixture.new);
    }
}

#[test]
fn a_file_named_like_a_subcommand_is_reached_as_dot_slash() {
    let mut random = Random(6);
    let base = random.bytes(10_000);
    let new = changed_copy(&base, &mut random, 3);
    let fixture = Fixture::new(base, new);
    fs::rename(fixture.path("new.img"), fixture.path("backup")).unwrap();
    fs::rename(fixture.path("base.img"), fixture.path("restore")).unwrap();
    fixture
        .command()
        .args(["./backup", "./restore", "./verify"])
        .assert()
        .success();
    fixture
        .command()
        .args(["./verify", "./restore"])
        .assert()
        .success();
    assert!(fs::read(fixture.path("restore")).unwrap() == fixture.new);
    let help = diff_dd().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("./"));
}

#[test]
fn bad_arguments_are_usage_errors_and_create_nothing() {
    let fixture = Fixture::new(vec![1; 4096], vec![2; 4096]);
    let before = fixture.names();
    let cases: &[(&[&str], &str)] = &[
        (&[], "required"),
        (
            &["new.img"],
            "give INFILE REFFILE OUTFILE to make a diff, or DIFFFILE OUTFILE",
        ),
        (
            &["new.img", "base.img", "out.diff", "extra"],
            "unexpected value 'extra'",
        ),
        (
            &["-s", "0", "new.img", "base.img", "out.diff"],
            "--sector-size",
        ),
        (
            &["-s", "abc", "new.img", "base.img", "out.diff"],
            "--sector-size",
        ),
        (&["-s", "-1", "new.img", "base.img", "out.diff"], "'-1'"),
        (
            &["-s", "4q", "new.img", "base.img", "out.diff"],
            "--sector-size",
        ),
        (
            &["-b", "0", "new.img", "base.img", "out.diff"],
            "--buffer-size",
        ),
        (
            &["-b", "2G", "new.img", "base.img", "out.diff"],
            "--buffer-size",
        ),
        (
            &[
                "-b",
                "99999999999999999999",
                "new.img",
                "base.img",
                "out.diff",
            ],
            "--buffer-size",
        ),
        (
            &["-s", "4096", "-b", "512", "new.img", "base.img", "out.diff"],
            "larger than --buffer-size",
        ),
        (
            &["-b", "1000", "new.img", "base.img", "out.diff"],
            "--buffer-size 1000 is not a multiple of the default --sector-size 512",
        ),
        // The error names what the user gave, not the default they did not.
        (
            &["-s", "1000", "new.img", "base.img", "out.diff"],
            "--sector-size 1000 does not divide the default --buffer-size 4M",
        ),
        (
            &[
                "-s", "4096", "-b", "6000", "new.img", "base.img", "out.diff",
            ],
            "use a multiple such as 8192",
        ),
        // A typo of a command is not a file to back up or restore.
        (
            &["restor", "out.diff", "new.img"],
            "did you mean 'restore'?",
        ),
        (
            &["bakup", "new.img", "base.img", "out.diff"],
            "did you mean 'backup'?",
        ),
        (&["verfy", "out.diff"], "did you mean 'verify'?"),
        (
            &["--no-such-option", "new.img", "base.img", "out.diff"],
            "--no-such-option",
        ),
        (&["new.img", "base.img", "out.diff", "-s"], "-s"),
        (&["backup", "new.img", "base.img"], "OUTFILE"),
        (&["restore", "out.diff"], "OUTFILE"),
        (&["-q", "-v", "new.img", "base.img", "out.diff"], "--quiet"),
        (&["--format", "v1", "out.diff", "base.img"], "--format"),
    ];
    for (arguments, named) in cases {
        let output = fixture.command().args(*arguments).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "{arguments:?}: the error does not name {named}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{arguments:?}: {stderr}");
        assert_eq!(fixture.names(), before, "{arguments:?} left a file behind");
    }
    assert!(fs::read(fixture.path("base.img")).unwrap() == fixture.base);
}

/// A runtime error: exit 1, one line `diff-dd: <what failed>: <path>: <reason>`.
fn assert_fails(fixture: &Fixture, arguments: &[&Path], words: &[&str]) {
    let output = diff_dd().args(arguments).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{arguments:?}: {stderr}");
    assert!(stderr.starts_with("diff-dd: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    for word in words {
        assert!(
            stderr.contains(word),
            "{arguments:?}: no {word:?} in {stderr}"
        );
    }
    assert!(output.stdout.is_empty());
    assert!(fs::read(fixture.path("base.img")).unwrap() == fixture.base);
    assert!(fs::read(fixture.path("new.img")).unwrap() == fixture.new);
}

#[test]
fn runtime_errors_name_the_file_and_the_reason() {
    let fixture = Fixture::new(vec![1; 8192], vec![2; 8192]);
    let (new, base, out) = (
        fixture.path("new.img"),
        fixture.path("base.img"),
        fixture.path("out.diff"),
    );
    let missing = fixture.path("missing.img");
    let shorter = fixture.path("shorter.img");
    fs::write(&shorter, [1; 4096]).unwrap();
    let missing_name = missing.to_string_lossy().into_owned();
    assert_fails(
        &fixture,
        &[&missing, &base, &out],
        &[&missing_name, "No such file"],
    );
    assert_fails(
        &fixture,
        &[&new, &missing, &out],
        &[&missing_name, "No such file"],
    );
    assert_fails(&fixture, &[&new, &shorter, &out], &["size"]);
    assert_fails(
        &fixture,
        &[&missing, &base],
        &[&missing_name, "No such file"],
    );
    assert!(!out.exists());

    // OUTFILE may not be INFILE or REFFILE under any name.
    let hard_link = fixture.path("hard-link.img");
    fs::hard_link(&base, &hard_link).unwrap();
    let soft_link = fixture.path("soft-link.img");
    symlink(&new, &soft_link).unwrap();
    for outfile in [&new, &base, &hard_link, &soft_link] {
        assert_fails(&fixture, &[&new, &base, outfile], &["same file"]);
    }
}

#[test]
fn a_failed_backup_keeps_the_previous_outfile_and_leaves_no_temporary_file() {
    let mut random = Random(8);
    let base = random.bytes(20_000);
    let new = changed_copy(&base, &mut random, 4);
    let fixture = Fixture::new(base, new);
    fixture.backup(&[], "keep.diff");
    let previous = fs::read(fixture.path("keep.diff")).unwrap();
    fs::write(fixture.path("short.img"), [0; 100]).unwrap();
    let before = fixture.names();
    diff_dd()
        .arg(fixture.path("new.img"))
        .arg(fixture.path("short.img"))
        .arg(fixture.path("keep.diff"))
        .assert()
        .code(1);
    assert!(fs::read(fixture.path("keep.diff")).unwrap() == previous);
    assert_eq!(fixture.names(), before);

    // A successful backup replaces it in one step, again without leftovers.
    fs::write(fixture.path("new.img"), &fixture.base).unwrap();
    fixture.backup(&[], "keep.diff");
    assert!(fs::read(fixture.path("keep.diff")).unwrap() != previous);
    assert_eq!(fixture.names(), before);
}

#[test]
fn verbose_prints_a_summary_and_quiet_prints_nothing() {
    let mut random = Random(9);
    let base = random.bytes(40_000);
    let new = changed_copy(&base, &mut random, 4);
    let fixture = Fixture::new(base, new);
    let output = fixture
        .command()
        .args(["-v", "new.img", "base.img", "v.diff"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(output.stdout.is_empty());
    let summary = String::from_utf8_lossy(&output.stderr);
    let extents = listed_extents(&inspect_json(&fixture.path("v.diff"))).len();
    for word in [
        format!("{extents} extent"),
        "changed".into(),
        "% of".into(),
        "/s".into(),
    ] {
        assert!(summary.contains(&word), "no {word:?} in {summary}");
    }
    fixture
        .command()
        .args(["-q", "new.img", "base.img", "q.diff"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
}

#[test]
fn help_documents_the_synopsis_and_the_size_suffixes() {
    let output = diff_dd().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for words in [
        "INFILE REFFILE OUTFILE",
        "DIFFFILE OUTFILE",
        "--sector-size",
        "--buffer-size",
        "K",
        "1024",
    ] {
        assert!(help.contains(words), "--help lacks {words:?}");
    }
}

#[test]
fn the_buffer_size_never_changes_the_diff() {
    // A run of 5 MiB changed: longer than a record, so it is split at 4 MiB whatever -b.
    let mut random = Random(12);
    let base = random.bytes(6 << 20);
    let mut new = base.clone();
    for byte in &mut new[(512 << 10)..(512 << 10) + (5 << 20)] {
        *byte = !*byte;
    }
    new[(6 << 20) - 1] ^= 1;
    let fixture = Fixture::new(base, new);
    let mut diffs = Vec::new();
    for buffer in ["512", "64K", "4M", "16M"] {
        let name = format!("b{buffer}.diff");
        // The same creation time in every header: only -b differs.
        fixture
            .command()
            .env("SOURCE_DATE_EPOCH", "0")
            .args(["-b", buffer, "new.img", "base.img", &name])
            .assert()
            .success();
        diffs.push(fs::read(fixture.path(&name)).unwrap());
        let listing = inspect_json(&fixture.path(&name));
        assert_eq!(
            listed_extents(&listing),
            [
                (512 << 10, 4 << 20),
                ((512 << 10) + (4 << 20), 1 << 20),
                ((6 << 20) - 512, 512)
            ],
            "-b {buffer}"
        );
        assert_eq!(listing["record_size_limit"], 4 << 20, "-b {buffer}");
        fixture.assert_restores(&name);
    }
    assert!(
        diffs.windows(2).all(|pair| pair[0] == pair[1]),
        "-b changed the diff"
    );
}
