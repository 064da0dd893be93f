//! verify and restore agree: verify says "partly restored; run restore again" exactly when
//! restore would take the target and finish it into the image the diff was made from, and
//! `neither`, with the reason, whenever restore would refuse the target or would not give
//! that image.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::util::{listed_extents, Fixture, Random};

/// 1 MiB images differing in eight places, each a run of whole pages and a few odd bytes
/// (so records begin off a page boundary too); the diff of the two is d.diff.
fn fixture() -> Fixture {
    let mut random = Random(1919);
    let base = random.bytes(1 << 20);
    let mut new = base.clone();
    for place in 0..8 {
        let at = place * (128 << 10) + 1000;
        let changed = random.bytes(10_000);
        new[at..at + changed.len()].copy_from_slice(&changed);
    }
    let fixture = Fixture::new(base, new);
    fixture.backup(&[], "d.diff");
    fixture
}

/// `(offset, length)` of every extent of d.diff.
fn extents(fixture: &Fixture) -> Vec<(u64, u64)> {
    let output = fixture
        .command()
        .args(["inspect", "--json", "d.diff"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let listing: Value = serde_json::from_slice(&output.stdout).unwrap();
    let extents = listed_extents(&listing);
    assert_eq!(extents.len(), 8, "{listing}");
    extents
}

/// The base image with the new image's bytes in `ranges` copied over it.
fn with_new_data(fixture: &Fixture, ranges: &[(u64, u64)]) -> Vec<u8> {
    let mut image = fixture.base.clone();
    for &(offset, length) in ranges {
        let range = offset as usize..(offset + length) as usize;
        image[range.clone()].copy_from_slice(&fixture.new[range]);
    }
    image
}

/// Runs `verify [--json] d.diff t.img`: the exit code, standard output and standard error.
fn verify(fixture: &Fixture, json: bool) -> (Option<i32>, String, String) {
    let mut command = fixture.command();
    command.arg("verify");
    if json {
        command.arg("--json");
    }
    let output = command.args(["d.diff", "t.img"]).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The `target.state` of `verify --json d.diff t.img`.
fn json_state(fixture: &Fixture) -> Value {
    let (_, stdout, _) = verify(fixture, true);
    let document: Value = serde_json::from_str(&stdout).unwrap();
    document["target"]["state"].clone()
}

fn restore(fixture: &Fixture) -> std::process::Output {
    fixture
        .command()
        .args(["restore", "d.diff", "t.img"])
        .output()
        .unwrap()
}

fn write_target(fixture: &Fixture, bytes: &[u8]) -> std::path::PathBuf {
    let target = fixture.path("t.img");
    fs::write(&target, bytes).unwrap();
    target
}

fn assert_unchanged(target: &Path, bytes: &[u8]) {
    assert!(fs::read(target).unwrap() == bytes, "the target changed");
}

#[test]
fn a_byte_changed_outside_every_extent_is_neither_and_no_rerun_is_advised() {
    // Part of the new image written over the base (as `dd count=..` of the new image would),
    // and one byte changed where no extent is: restore would take it, checking the extents
    // only, and leave an image that is not the one the diff was made from.
    let fixture = fixture();
    let extents = extents(&fixture);
    let mut target = with_new_data(&fixture, &extents[..3]);
    let outside = (extents[6].0 + extents[6].1 + 5000) as usize;
    assert!(outside < extents[7].0 as usize);
    target[outside] ^= 0x58;
    let path = write_target(&fixture, &target);

    let (code, stdout, stderr) = verify(&fixture, false);
    assert_eq!(code, Some(4), "{stdout}{stderr}");
    assert!(stdout.contains("t.img: neither: "), "{stdout}");
    assert!(
        stderr.contains("outside the diff's extents it differs"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("restore again") && !stderr.contains("restore again"),
        "{stdout}{stderr}"
    );
    assert_eq!(json_state(&fixture), "neither");
    assert_unchanged(&path, &target);
}

#[test]
fn a_partly_restored_target_is_finished_by_the_restore_verify_advises() {
    // A restore killed in the middle: the first half of the extents hold their new data, the
    // next one is torn at a page boundary (new data before it, base data after), the rest
    // hold base data.
    let fixture = fixture();
    let extents = extents(&fixture);
    let (torn_offset, torn_length) = extents[4];
    let page_end = (torn_offset / 4096 + 1) * 4096;
    assert!(page_end < torn_offset + torn_length);
    let mut written = extents[..4].to_vec();
    written.push((torn_offset, page_end - torn_offset));
    let target = with_new_data(&fixture, &written);
    let path = write_target(&fixture, &target);

    let (code, stdout, stderr) = verify(&fixture, false);
    assert_eq!(code, Some(4), "{stdout}{stderr}");
    let advice = "partly restored: 4 of 8 extents hold new data, 3 base data, 1 torn mid-write; run restore again to finish";
    assert!(stdout.contains(advice), "{stdout}");
    assert!(stderr.contains(advice), "{stderr}");
    // What decides it: the diff laid over the target gives the image the diff was made from.
    let (_, stdout, _) = verify(&fixture, true);
    let document: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(document["target"]["state"], "partly_restored");
    let image_hash = blake3::hash(&fixture.new).to_hex().to_string();
    assert_eq!(document["target"]["laid_over_blake3"], image_hash.as_str());
    assert_unchanged(&path, &target);

    let output = restore(&fixture);
    assert!(output.status.success(), "{output:?}");
    assert!(fs::read(&path).unwrap() == fixture.new);
    let (code, stdout, _) = verify(&fixture, false);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("t.img: restored"), "{stdout}");
    assert_eq!(json_state(&fixture), "restored");
}

#[test]
fn an_extent_changed_where_restore_refuses_is_neither_and_restore_refuses() {
    // A restored image changed since inside an extent (mounted and written, say): not torn
    // the way a killed restore tears, so restore refuses it, and verify must not advise it.
    let fixture = fixture();
    let extents = extents(&fixture);
    for (what, extent, at) in [
        // New data after it: no restore tore this one.
        ("the first byte of extent 2", 2, 0),
        // The last extent, its first page not new data: no restore tore this one either.
        ("the first byte of the last extent", 7, 0),
    ] {
        let mut target = fixture.new.clone();
        let (offset, _) = extents[extent];
        target[(offset + at) as usize] ^= 0x01;
        let path = write_target(&fixture, &target);

        let (code, stdout, stderr) = verify(&fixture, false);
        assert_eq!(code, Some(4), "{what}: {stdout}{stderr}");
        assert!(stdout.contains("t.img: neither: "), "{what}: {stdout}");
        assert!(
            stderr.contains("restore would refuse it")
                && stderr.contains(&format!("(extent {extent})")),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("restore again"), "{what}: {stderr}");
        assert_eq!(json_state(&fixture), "neither", "{what}");

        let output = restore(&fixture);
        assert_eq!(output.status.code(), Some(1), "{what}: {output:?}");
        let refusal = String::from_utf8_lossy(&output.stderr);
        assert!(
            refusal.contains("wrong target") && refusal.contains(&format!("(extent {extent})")),
            "{what}: {refusal}"
        );
        assert_unchanged(&path, &target);
    }
}

#[test]
fn json_names_the_state_verify_and_restore_agree_on() {
    let fixture = fixture();
    let extents = extents(&fixture);
    let mut changed_since = fixture.new.clone();
    changed_since[extents[0].0 as usize] ^= 0x01;
    let mut outside = with_new_data(&fixture, &extents[..2]);
    outside[(extents[7].0 + extents[7].1 + 100) as usize] ^= 0x01;
    for (target, state, code) in [
        (fixture.base.clone(), "base", 0),
        (fixture.new.clone(), "restored", 0),
        (
            with_new_data(&fixture, &extents[2..5]),
            "partly_restored",
            4,
        ),
        (changed_since, "neither", 4),
        (outside, "neither", 4),
    ] {
        write_target(&fixture, &target);
        let (exit, stdout, _) = verify(&fixture, true);
        let document: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(document["target"]["state"], state, "{document}");
        assert_eq!(exit, Some(code), "{document}");
        assert_eq!(document["exit_code"], code, "{document}");
        let error = document["error"].as_str().unwrap_or_default();
        assert_eq!(
            error.contains("run restore again"),
            state == "partly_restored",
            "{document}"
        );
    }
}

/// The fixture with a second day: day2.img, the new image changed again in places of its own
/// and over two of the first diff's extents, and e.diff, its diff made with --on d.diff.
fn chain_fixture() -> Fixture {
    let fixture = fixture();
    let mut random = Random(2020);
    let mut day2 = fixture.new.clone();
    for at in [5000, 300_000, 700_000, 900_000] {
        let changed = random.bytes(6000);
        day2[at..at + changed.len()].copy_from_slice(&changed);
    }
    fs::write(fixture.path("day2.img"), &day2).unwrap();
    fixture
        .command()
        .env("SOURCE_DATE_EPOCH", "0")
        .args(["backup", "--on", "d.diff", "day2.img", "base.img", "e.diff"])
        .assert()
        .success();
    fixture
}

/// Runs `verify ARGUMENTS`: the exit code and the report, one JSON document.
fn verify_json(fixture: &Fixture, arguments: &[&str]) -> (Option<i32>, Value) {
    let output = fixture
        .command()
        .args(["verify", "--json"])
        .args(arguments)
        .output()
        .unwrap();
    let document = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not one JSON document ({error}): {output:?}"));
    (output.status.code(), document)
}

#[test]
fn a_chain_is_verified_against_a_target_as_its_restore_in_place_decides() {
    let fixture = chain_fixture();
    let day2 = fs::read(fixture.path("day2.img")).unwrap();
    let chain = ["d.diff", "e.diff", "t.img"];
    // A restore of the chain killed halfway: the first half of the final image written.
    let mut half = fixture.base.clone();
    half[..1 << 19].copy_from_slice(&day2[..1 << 19]);
    for (target, state, code) in [
        (&fixture.base, "base", 0),
        (&day2, "restored", 0),
        // The first diff restored: the chain laid over it gives the last image.
        (&fixture.new, "partly_restored", 4),
        (&half, "partly_restored", 4),
    ] {
        write_target(&fixture, target);
        let (exit, document) = verify_json(&fixture, &chain);
        assert_eq!(document["target"]["state"], state, "{document}");
        assert_eq!(exit, Some(code), "{document}");
        assert_eq!(document["diffs"].as_array().map(Vec::len), Some(2));
        assert!(document.get("diff").is_none(), "{document}");
        let image_hash = blake3::hash(&day2).to_hex().to_string();
        assert_eq!(document["chain"]["image_blake3"], image_hash.as_str());
        assert_eq!(document["target"]["laid_over_blake3"], image_hash.as_str());
    }
    // Partly restored: verify says to run the restore again, which finishes it.
    let output = fixture
        .command()
        .arg("verify")
        .args(chain)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("chain: 2 diffs")
            && stdout.contains("t.img: partly restored: ")
            && stdout.contains("run restore again with the same diffs to finish"),
        "{stdout}"
    );
    fixture
        .command()
        .arg("restore")
        .args(chain)
        .assert()
        .success();
    assert!(fs::read(fixture.path("t.img")).unwrap() == day2);
    fixture
        .command()
        .args(["verify", "--expect", "restored"])
        .args(chain)
        .assert()
        .success();
}

#[test]
fn a_target_the_chain_restore_refuses_is_neither() {
    // Half restored, and one byte changed where neither diff writes: laid over it, the chain
    // does not give the last image, so its restore refuses it, and verify must not advise it.
    let fixture = chain_fixture();
    let day2 = fs::read(fixture.path("day2.img")).unwrap();
    let mut target = fixture.base.clone();
    target[..1 << 19].copy_from_slice(&day2[..1 << 19]);
    target[1_040_000] ^= 0x20;
    let path = write_target(&fixture, &target);
    let output = fixture
        .command()
        .args(["verify", "d.diff", "e.diff", "t.img"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert!(
        stderr.contains("restore would refuse it") && !stderr.contains("restore again"),
        "{stderr}"
    );
    let (_, document) = verify_json(&fixture, &["d.diff", "e.diff", "t.img"]);
    assert_eq!(document["target"]["state"], "neither");
    let output = fixture
        .command()
        .args(["restore", "d.diff", "e.diff", "t.img"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_unchanged(&path, &target);
}

#[test]
fn a_chain_alone_is_checked_with_no_target() {
    let fixture = chain_fixture();
    let (exit, document) = verify_json(&fixture, &["--no-target", "d.diff", "e.diff"]);
    assert_eq!(exit, Some(0), "{document}");
    assert!(document["target"].is_null(), "{document}");
    assert_eq!(document["diffs"][1]["path"], "e.diff");
    assert_eq!(document["diffs"][1]["reads_agree"], true);
    assert!(document["chain"].is_object(), "{document}");

    // Out of order: the link is refused, naming both diffs.
    let output = fixture
        .command()
        .args(["verify", "--no-target", "e.diff", "d.diff"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing the chain") && stderr.contains("e.diff"),
        "{stderr}"
    );

    // Of two paths the second is TARGET, as it always was; a diff there is pointed out.
    let output = fixture
        .command()
        .args(["verify", "d.diff", "e.diff"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("give --no-target"), "{stderr}");

    // --expect needs a target.
    fixture
        .command()
        .args([
            "verify",
            "--no-target",
            "--expect",
            "base",
            "d.diff",
            "e.diff",
        ])
        .assert()
        .code(2);
}

/// A path reaches verify's report escaped, as every other text output: a target named with a
/// terminal escape prints it as `\u{1b}`, never raw.
#[test]
fn verify_prints_paths_escaped() {
    let fixture = crate::util::Fixture::new(vec![1; 8192], vec![2; 8192]);
    fixture.backup(&[], "d.diff");
    let name = "t\u{1b}[31mX.img";
    std::fs::write(fixture.path(name), &fixture.base).unwrap();
    let output = fixture
        .command()
        .args(["verify", "d.diff", name])
        .output()
        .unwrap();
    assert!(output.status.success());
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(!report.contains('\u{1b}'), "{report}");
    assert!(report.contains("t\\u{1b}[31mX.img"), "{report}");
}
