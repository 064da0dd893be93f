//! Golden vectors: diffs checked in under tests/vectors/ pin the native format's bytes.
//!
//! The writer vectors are made from tests/vectors/legacy/{new,base}.img with
//! SOURCE_DATE_EPOCH=1764000000; the header holds the tool version, so a version bump
//! regenerates them (`DIFF_DD_BLESS=1 cargo test --test cli vectors::`), and the change to
//! the bytes is reviewed like any other. Reading them must keep working in every later version.

use std::fs;

use crate::util::{diff_dd, listed_extents, repository, vector, Fixture};

/// The native vectors diff-dd writes today: file name and the options that make them (-b,
/// a read buffer, changes nothing). The last is made from new.img with a run of zeros and a
/// run of text written over it (`new_with_zeros_and_text`): a zero record and a compressed
/// one.
const NATIVE: [(&str, &[&str]); 3] = [
    ("v3-zstd-s512.diff", &["-s", "512"]),
    (
        "v3-raw-s4096.diff",
        &["-s", "4096", "-b", "8K", "--compress", "none"],
    ),
    (
        "v3-zstd-zeros-text-s512.diff",
        &["-s", "512", "--compress", "19"],
    ),
];

/// Native diffs written by earlier versions, which must keep restoring: raw records only
/// (before compression and zero records), and v3-s4096-b8k.diff with the record size limit
/// 8192 that -b 8K gave before the limit stopped following -b.
const EARLIER: [&str; 3] = ["v3-s512.diff", "v3-s4096.diff", "v3-s4096-b8k.diff"];

/// new.img with bytes 150016..158208 (whole sectors) zeroed and 180000..190000 holding repeated text.
fn new_with_zeros_and_text(new: &[u8]) -> Vec<u8> {
    let mut changed = new.to_vec();
    changed[150_016..158_208].fill(0);
    let text = b"diff-dd stores this run compressed. ";
    for (byte, source) in changed[180_000..190_000]
        .iter_mut()
        .zip(text.iter().cycle())
    {
        *byte = *source;
    }
    changed
}

/// The new image a native vector restores to.
fn new_image_of(name: &str, fixture: &Fixture) -> Vec<u8> {
    if name.contains("zeros") {
        new_with_zeros_and_text(&fixture.new)
    } else {
        fixture.new.clone()
    }
}

#[test]
fn backup_writes_the_golden_bytes() {
    let fixture = Fixture::vectors();
    for (name, options) in NATIVE {
        let written = fixture.path(name);
        fs::write(fixture.path("this-new.img"), new_image_of(name, &fixture)).unwrap();
        diff_dd()
            .env("SOURCE_DATE_EPOCH", "1764000000")
            .args(options)
            .arg(fixture.path("this-new.img"))
            .arg(fixture.path("base.img"))
            .arg(&written)
            .assert()
            .success()
            .stdout("")
            .stderr("");
        let golden_path = vector("native").join(name);
        let fresh = fs::read(&written).unwrap();
        if std::env::var_os("DIFF_DD_BLESS").is_some() {
            fs::write(&golden_path, &fresh).unwrap();
        }
        assert!(
            fresh == fs::read(&golden_path).unwrap(),
            "{name}: the writer's bytes changed (see the comment at the top of this file)"
        );
    }
}

/// The digest vector (base.img at 4 KiB blocks) and the diff backup makes from it: records
/// over blocks (variants 4 to 6).
const DIGEST: &str = "base-b4k.digest";
const FROM_DIGEST: &str = "v3-from-digest-s512.diff";

#[test]
fn digest_and_backup_from_a_digest_write_the_golden_bytes() {
    let fixture = Fixture::vectors();
    let run = |args: &[&str]| {
        diff_dd()
            .current_dir(fixture.dir())
            .env("SOURCE_DATE_EPOCH", "1764000000")
            .args(args)
            .assert()
            .success()
            .stdout("")
            .stderr("");
    };
    run(&["digest", "--block-size", "4K", "base.img", DIGEST]);
    run(&["backup", "--digest", DIGEST, "new.img", FROM_DIGEST]);
    for name in [DIGEST, FROM_DIGEST] {
        let golden_path = vector("native").join(name);
        let fresh = fs::read(fixture.path(name)).unwrap();
        if std::env::var_os("DIFF_DD_BLESS").is_some() {
            fs::write(&golden_path, &fresh).unwrap();
        }
        assert!(
            fresh == fs::read(&golden_path).unwrap(),
            "{name}: the writer's bytes changed (see the comment at the top of this file)"
        );
    }
}

#[test]
fn golden_diffs_restore_new_img() {
    let fixture = Fixture::vectors();
    let names = NATIVE
        .iter()
        .map(|(name, _)| *name)
        .chain(EARLIER)
        .chain([FROM_DIGEST]);
    for name in names {
        fixture.assert_restores_to(vector("native").join(name), &new_image_of(name, &fixture));
    }
}

#[test]
fn the_zero_and_compressed_vector_holds_both_kinds_of_record() {
    let output = diff_dd()
        .args(["inspect", "--json"])
        .arg(vector("native/v3-zstd-zeros-text-s512.diff"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["data_encoding"], "zstd");
    let extents = listing["extents"].as_array().unwrap();
    let zero = extents.iter().find(|extent| extent["zero"] == true);
    let zero = zero.expect("a zero extent");
    assert_eq!(
        (zero["offset"].as_u64(), zero["stored_bytes"].as_u64()),
        (Some(150_016), Some(0))
    );
    // The run of text, compressed.
    let text = extents.iter().find(|extent| extent["offset"] == 179_712);
    let text = text.expect("the text extent");
    assert!(
        text["stored_bytes"].as_u64() < text["length"].as_u64(),
        "{text}"
    );
    assert!(listing["stored_bytes"].as_u64() < listing["changed_bytes"].as_u64());
}

#[test]
fn golden_diff_lists_its_header_and_extents() {
    let output = diff_dd()
        .args(["inspect", "--json"])
        .arg(vector("native/v3-s512.diff"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["format"], "v3");
    assert_eq!(listing["sector_size"], 512);
    assert_eq!(listing["image_size"], 262144);
    assert_eq!(listing["record_size_limit"], 4 << 20);
    assert_eq!(listing["created_unix_seconds"], 1764000000);
    let extents = listed_extents(&listing);
    // new.img differs from base.img at byte 0, within 5220..6662, at 10239, within
    // 40000..49215, at 70000-70020, 131071, 131072, 200000 and the last byte.
    assert_eq!(
        extents,
        [
            (0, 512),
            (5120, 2048),
            (9728, 512),
            (39936, 9728),
            (69632, 512),
            (130560, 1024),
            (199680, 512),
            (261632, 512)
        ]
    );
    assert_eq!(listing["changed_bytes"], 15360);
    let fixture = Fixture::vectors();
    assert_eq!(
        listing["base_blake3"],
        blake3::hash(&fixture.base).to_hex().as_str()
    );
    assert_eq!(
        listing["image_blake3"],
        blake3::hash(&fixture.new).to_hex().as_str()
    );
}

/// The worked example in man/diff-dd.5 is what the tool writes and what it restores: the
/// specification cannot drift from the implementation unnoticed.
#[test]
fn format_page_example_is_what_backup_writes() {
    let fixture = Fixture::new(b"ABCDEFGH".to_vec(), b"ABCxEFGH".to_vec());
    let (base, new) = (fixture.path("base.img"), fixture.path("new.img"));
    let written = fixture.path("tiny.diff");
    diff_dd()
        .env("SOURCE_DATE_EPOCH", "1764000000")
        .args(["-s", "4", "-b", "4"])
        .arg(&new)
        .arg(&base)
        .arg(&written)
        .assert()
        .success();

    let page = fs::read_to_string(repository().join("man/diff-dd.5")).unwrap();
    let example = page
        .split(".SH EXAMPLE")
        .nth(1)
        .and_then(|rest| rest.split(".SH ").next())
        .expect("man/diff-dd.5 has an EXAMPLE section");
    // Dump lines: a 4-digit hex offset, two spaces, up to 8 hex bytes, then the field name.
    let mut documented = Vec::new();
    for line in example.lines() {
        let Some((offset, rest)) = line.split_once("  ") else {
            continue;
        };
        if offset.len() != 4 || !offset.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        assert_eq!(
            usize::from_str_radix(offset, 16).unwrap(),
            documented.len(),
            "man/diff-dd.5: the dump line {line:?} is not at the offset it states"
        );
        let bytes = rest.split("  ").next().unwrap();
        for byte in bytes.split(' ') {
            documented.push(u8::from_str_radix(byte, 16).unwrap());
        }
    }
    assert!(
        documented == fs::read(&written).unwrap(),
        "man/diff-dd.5: the EXAMPLE dump differs from what backup writes (tool version bump?)"
    );

    diff_dd()
        .arg("restore")
        .arg(&written)
        .arg(&base)
        .assert()
        .success();
    assert_eq!(fs::read(&base).unwrap(), b"ABCxEFGH");
}
