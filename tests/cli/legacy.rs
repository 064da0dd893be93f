//! Diffs written by the original diff-dd tools (tests/vectors/legacy, see its README): restore,
//! inspect and verify them, reproduce v1 byte for byte, and refuse what the original's own test
//! suite refuses, leaving every file as it was.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::{diff_dd, listed_extents, vector, Fixture};

fn legacy(name: &str) -> PathBuf {
    vector("legacy").join(name)
}

const VECTORS: [(&str, &str); 3] = [
    ("v1-s512.diff", "512"),
    ("v1-s4096.diff", "4096"),
    ("v2.diff", "512"),
];

#[test]
fn every_legacy_vector_restores_new_img() {
    let fixture = Fixture::vectors();
    for (name, sector_size) in VECTORS {
        for subcommand in [None, Some("restore")] {
            let target = fixture.target("target.img");
            let mut command = diff_dd();
            command
                .args(subcommand)
                .args(["-s", sector_size])
                .arg(legacy(name))
                .arg(&target);
            command.assert().success().stdout("").stderr("");
            assert!(
                fs::read(&target).unwrap() == fixture.new,
                "{name} did not restore new.img"
            );
        }
    }
}

#[test]
fn verbose_restore_says_legacy_diffs_hold_no_hashes() {
    let fixture = Fixture::vectors();
    let target = fixture.target("target.img");
    let output = diff_dd()
        .arg("-v")
        .arg(legacy("v2.diff"))
        .arg(&target)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("holds no hashes"), "{stderr}");
}

#[test]
fn backup_format_v1_reproduces_the_original_bytes() {
    let fixture = Fixture::vectors();
    let cases: [(&str, &[&str]); 2] = [
        ("v1-s512.diff", &["-s", "512"]),
        ("v1-s4096.diff", &["-s", "4096", "-b", "65536"]),
    ];
    for (name, options) in cases {
        let written = fixture.path(name);
        diff_dd()
            .arg("backup")
            .args(options)
            .args(["--format", "v1"])
            .arg(fixture.path("new.img"))
            .arg(fixture.path("base.img"))
            .arg(&written)
            .assert()
            .success();
        assert!(
            fs::read(&written).unwrap() == fs::read(legacy(name)).unwrap(),
            "{name} differs"
        );
        // The original synopsis takes --format too.
        let again = fixture.path(&format!("again-{name}"));
        diff_dd()
            .args(options)
            .args(["--format", "v1"])
            .arg(fixture.path("new.img"))
            .arg(fixture.path("base.img"))
            .arg(&again)
            .assert()
            .success();
        assert!(fs::read(&again).unwrap() == fs::read(legacy(name)).unwrap());
    }
}

#[test]
fn format_v1_refuses_a_short_last_sector() {
    let fixture = Fixture::new(vec![2u8; 1000], vec![1u8; 1000]);
    let (infile, reffile, outfile) = (
        fixture.path("new.img"),
        fixture.path("base.img"),
        fixture.path("out"),
    );
    let output = diff_dd()
        .args(["backup", "--format", "v1"])
        .args([&infile, &reffile, &outfile])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("short last sector"));
    assert!(!outfile.exists());
}

#[test]
fn format_is_refused_when_restoring() {
    let fixture = Fixture::vectors();
    let target = fixture.target("target.img");
    diff_dd()
        .args(["--format", "v1"])
        .arg(legacy("v2.diff"))
        .arg(&target)
        .assert()
        .code(2);
    assert!(fs::read(&target).unwrap() == fixture.base);
}

#[test]
fn inspect_lists_legacy_extents_with_the_native_field_names() {
    let output = diff_dd()
        .args(["inspect", "--json", "-s", "4096"])
        .arg(legacy("v1-s4096.diff"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["format"], "v1");
    assert_eq!(listing["sector_size"], 4096);
    assert!(listing["image_size"].is_null());
    assert!(listing["base_blake3"].is_null());
    let extents = listed_extents(&listing);
    // Twelve 4 KiB sectors, adjacent ones shown as one extent.
    assert_eq!(
        extents,
        [
            (0, 12288),
            (36864, 16384),
            (69632, 4096),
            (126976, 8192),
            (196608, 4096),
            (258048, 4096)
        ]
    );
    assert_eq!(listing["extent_count"], 6);
    assert_eq!(listing["changed_bytes"], 49152);

    let output = diff_dd()
        .args(["inspect", "--json"])
        .arg(legacy("v2.diff"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["format"], "v2");
    assert!(listing["sector_size"].is_null());
    let offsets: Vec<u64> = listing["extents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|extent| extent["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(
        offsets,
        [0, 5220, 10239, 40000, 70000, 70020, 131071, 200000, 262143]
    );
    assert_eq!(listing["changed_bytes"], 10668);
}

#[test]
fn verify_checks_legacy_structure_and_says_there_are_no_hashes() {
    let fixture = Fixture::vectors();
    let target = fixture.target("target.img");
    let output = diff_dd()
        .arg("verify")
        .arg(legacy("v2.diff"))
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("no hashes to check"), "{text}");

    let output = diff_dd()
        .args(["verify", "--json", "-s", "4096"])
        .arg(legacy("v1-s4096.diff"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["diff"]["holds_hashes"], false);
    assert_eq!(report["diff"]["intact"], true);

    // --expect cannot be satisfied without hashes.
    diff_dd()
        .args(["verify", "--expect", "base"])
        .arg(legacy("v2.diff"))
        .arg(&target)
        .assert()
        .code(4);
    // A target too small for the records is refused as a corrupt fit.
    let small = fixture.path("small.img");
    fs::write(&small, vec![0u8; 100_000]).unwrap();
    diff_dd()
        .arg("verify")
        .arg(legacy("v2.diff"))
        .arg(&small)
        .assert()
        .code(3);
}

/// Runs a refused restore of `diff` and checks that it names the problem and that neither the
/// diff nor the target changed.
fn assert_restore_refused(fixture: &Fixture, diff: &Path, sector_size: &str, expected_words: &str) {
    let target = fixture.target("target.img");
    let diff_before = fs::read(diff).unwrap();
    let output = diff_dd()
        .args(["-s", sector_size])
        .arg(diff)
        .arg(&target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}: {stderr}",
        diff.display()
    );
    assert!(
        stderr.starts_with("diff-dd: ") && stderr.contains(expected_words),
        "{stderr}"
    );
    assert!(fs::read(&target).unwrap() == fixture.base);
    assert!(fs::read(diff).unwrap() == diff_before);
}

#[test]
fn refuses_what_the_original_test_suite_refuses() {
    let fixture = Fixture::vectors();
    let v1 = fs::read(legacy("v1-s512.diff")).unwrap();

    let empty = fixture.path("empty.diff");
    fs::write(&empty, b"").unwrap();
    assert_restore_refused(&fixture, &empty, "512", "empty");

    let ragged = fixture.path("ragged.diff");
    fs::write(&ragged, &v1[..v1.len() - 1]).unwrap();
    assert_restore_refused(
        &fixture,
        &ragged,
        "512",
        "not a non-zero multiple of 8 + 512",
    );

    // The same v1 file read with the wrong sector size does not fit its records.
    assert_restore_refused(
        &fixture,
        &legacy("v1-s512.diff"),
        "4096",
        "not a non-zero multiple of 8 + 4096",
    );

    let record = 8 + 512;
    let mut backwards = v1.clone();
    let (first, second) = (v1[..record].to_vec(), v1[record..2 * record].to_vec());
    backwards[..record].copy_from_slice(&second);
    backwards[record..2 * record].copy_from_slice(&first);
    let backwards_path = fixture.path("backwards.diff");
    fs::write(&backwards_path, &backwards).unwrap();
    assert_restore_refused(&fixture, &backwards_path, "512", "offsets must increase");

    let mut past_end = v1.clone();
    let last = past_end.len() - record;
    past_end[last..last + 8].copy_from_slice(&262144u64.to_le_bytes());
    let past_end_path = fixture.path("past-end.diff");
    fs::write(&past_end_path, &past_end).unwrap();
    assert_restore_refused(
        &fixture,
        &past_end_path,
        "512",
        "past the end of the target",
    );

    let v2 = fs::read(legacy("v2.diff")).unwrap();
    let truncated = fixture.path("truncated-v2.diff");
    fs::write(&truncated, &v2[..v2.len() - 1]).unwrap();
    assert_restore_refused(&fixture, &truncated, "512", "truncated");

    let mut zero_size = v2.clone();
    zero_size[14 + 8..14 + 12].copy_from_slice(&0u32.to_be_bytes());
    let zero_size_path = fixture.path("zero-size-v2.diff");
    fs::write(&zero_size_path, &zero_size).unwrap();
    assert_restore_refused(&fixture, &zero_size_path, "512", "empty");

    let mut unknown_version = v2.clone();
    unknown_version[13] = 9;
    let unknown_path = fixture.path("version-9.diff");
    fs::write(&unknown_path, &unknown_version).unwrap();
    assert_restore_refused(&fixture, &unknown_path, "512", "version 9");
}
