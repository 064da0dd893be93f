//! Compressed records and zero extents, driven through the binary: every setting round-trips,
//! a compressed and a raw diff agree on every hash, zeros take no space, and bad settings are
//! usage errors.

use std::fs;

use serde_json::Value;

use crate::util::{Fixture, Random};

/// Random base; the new image has a run of text (compressible), a run of zeros over random
/// data (a zero extent) and a few random bytes (not compressible).
fn fixture() -> Fixture {
    let mut random = Random(41);
    let base = random.bytes(256 << 10);
    let mut new = base.clone();
    let text = b"compressible text, again and again. ";
    for (byte, source) in new[8192..40960].iter_mut().zip(text.iter().cycle()) {
        *byte = *source;
    }
    new[65536..98304].fill(0);
    new[200_000..200_300].copy_from_slice(&random.bytes(300));
    Fixture::new(base, new)
}

fn inspect(fixture: &Fixture, diff: &str) -> Value {
    let output = fixture
        .command()
        .args(["inspect", "--json", diff])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every hash of a listing: the images', and each extent's offset, length and hashes.
fn hashes(listing: &Value) -> Vec<Value> {
    let mut all = vec![
        listing["base_blake3"].clone(),
        listing["image_blake3"].clone(),
    ];
    for extent in listing["extents"].as_array().unwrap() {
        for field in ["offset", "length", "new_blake3", "base_blake3"] {
            all.push(extent[field].clone());
        }
    }
    all
}

#[test]
fn every_setting_round_trips_and_agrees_on_every_hash() {
    let fixture = fixture();
    let settings: [&[&str]; 4] = [
        &[],
        &["--compress", "none"],
        &["--compress", "1"],
        &["--compress", "19"],
    ];
    let mut listings = Vec::new();
    for (number, options) in settings.iter().enumerate() {
        let name = format!("d{number}.diff");
        fixture.backup(options, &name);
        fixture.assert_restores(&name);
        fixture.command().args(["verify", &name]).assert().success();
        listings.push(inspect(&fixture, &name));
    }
    let raw = &listings[1];
    assert_eq!(raw["data_encoding"], "raw");
    for listing in &listings {
        assert!(hashes(listing) == hashes(raw), "a setting changed a hash");
        let extents = listing["extents"].as_array().unwrap();
        let zero = extents
            .iter()
            .find(|extent| extent["offset"] == 65536)
            .unwrap();
        assert_eq!(
            (zero["zero"].as_bool(), zero["stored_bytes"].as_u64()),
            (Some(true), Some(0))
        );
    }
    // Compressed: the text takes less room; the random bytes are stored raw.
    for listing in [&listings[0], &listings[2], &listings[3]] {
        assert_eq!(listing["data_encoding"], "zstd");
        let extents = listing["extents"].as_array().unwrap();
        let text = extents
            .iter()
            .find(|extent| extent["offset"] == 8192)
            .unwrap();
        assert!(
            text["stored_bytes"].as_u64().unwrap() < 32768 / 10,
            "{text}"
        );
        let noise = extents
            .iter()
            .find(|extent| extent["offset"] == 199_680)
            .unwrap();
        assert_eq!(noise["stored_bytes"], noise["length"]);
    }
    let (zstd, raw) = (
        fs::metadata(fixture.path("d0.diff")).unwrap().len(),
        fs::metadata(fixture.path("d1.diff")).unwrap().len(),
    );
    assert!(zstd < raw / 4, "compressed {zstd} bytes, raw {raw}");
}

#[test]
fn zeros_are_written_over_whatever_the_target_held() {
    let fixture = fixture();
    fixture.backup(&["--compress", "none"], "z.diff");
    // The target is the base image, whose bytes under the zero extent are random.
    assert!(fixture.base[65536..98304].iter().any(|&byte| byte != 0));
    fixture.assert_restores("z.diff");
}

#[test]
fn backup_verbose_prints_the_ratio() {
    let fixture = fixture();
    let output = fixture
        .command()
        .args(["-v", "new.img", "base.img", "v.diff"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("stored in") && stderr.contains('%'),
        "{stderr}"
    );
}

#[test]
fn bad_compression_settings_are_usage_errors() {
    let fixture = fixture();
    for arguments in [
        &["--compress", "0", "new.img", "base.img", "x.diff"][..],
        &["--compress", "20", "new.img", "base.img", "x.diff"],
        &["--compress", "fast", "new.img", "base.img", "x.diff"],
        &[
            "--compress",
            "3",
            "--format",
            "v1",
            "new.img",
            "base.img",
            "x.diff",
        ],
        &["--compress", "3", "x.diff", "base.img"],
    ] {
        let output = fixture.command().args(arguments).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(
            stderr.contains("--compress") || stderr.contains("compress"),
            "{stderr}"
        );
        assert!(!fixture.path("x.diff").exists());
    }
}
