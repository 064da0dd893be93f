//! `backup --digest DIGEST [--digest-out NEXT] INFILE OUTFILE`: a diff made from a digest of the
//! base instead of the base itself restores, verifies, merges and chains like any diff, through
//! files and pipes; and every refusal leaves every file as it was.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::util::{diff_dd, listed_extents, refused, Fixture, Random};

/// An image whose size is a multiple of no block size, and a new one changed in a few places:
/// inside one block, across a block boundary, zeros, and the short last block.
fn fixture() -> Fixture {
    let mut random = Random(21);
    let base = random.bytes(300_001);
    let mut new = base.clone();
    new[5000..9000].copy_from_slice(&random.bytes(4000));
    new[16_000..17_000].copy_from_slice(&random.bytes(1000));
    new[200_000..200_512].fill(0);
    new[299_990..].copy_from_slice(&random.bytes(11));
    Fixture::new(base, new)
}

/// Runs diff-dd in `dir` with a pinned creation time; it must succeed silently.
fn run(dir: &Path, args: &[&str]) {
    diff_dd()
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "0")
        .args(args)
        .assert()
        .success()
        .stdout("")
        .stderr("");
}

fn inspect_json(dir: &Path, diff: &str) -> Value {
    let output = diff_dd()
        .current_dir(dir)
        .args(["inspect", "--json", diff])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Restores `diffs` in place onto a copy of `base` and returns what the target holds.
fn restored_in_place(dir: &Path, base: &[u8], diffs: &[&str]) -> Vec<u8> {
    fs::write(dir.join("target.img"), base).unwrap();
    let mut args = vec!["restore"];
    args.extend(diffs);
    args.push("target.img");
    run(dir, &args);
    fs::read(dir.join("target.img")).unwrap()
}

#[test]
fn a_diff_from_a_digest_restores_every_way_and_its_next_digest_is_the_new_image_s() {
    let fixture = fixture();
    let dir = fixture.dir();
    for (sector_size, block_size) in [("512", "4K"), ("512", "16K"), ("4096", "16K")] {
        for compress in ["none", "3"] {
            let case = format!("-s {sector_size}, blocks of {block_size}, --compress {compress}");
            run(
                dir,
                &["digest", "--block-size", block_size, "base.img", "base.dg"],
            );
            run(
                dir,
                &[
                    "backup",
                    "-s",
                    sector_size,
                    "--compress",
                    compress,
                    "--digest",
                    "base.dg",
                    "--digest-out",
                    "next.dg",
                    "new.img",
                    "d.diff",
                ],
            );
            // The digest written in the same pass is the digest of the new image.
            run(
                dir,
                &["digest", "--block-size", block_size, "new.img", "new.dg"],
            );
            assert!(
                fs::read(dir.join("next.dg")).unwrap() == fs::read(dir.join("new.dg")).unwrap(),
                "{case}: NEXT is not the digest of INFILE"
            );

            let listing = inspect_json(dir, "d.diff");
            assert_eq!(listing["base_blake3"], hex(&fixture.base), "{case}");
            assert_eq!(listing["image_blake3"], hex(&fixture.new), "{case}");
            let block_bytes = if block_size == "4K" { 4096 } else { 16384 };
            for extent in listing["extents"].as_array().unwrap() {
                assert_eq!(extent["base_block_size"], block_bytes, "{case}: {extent}");
                let (offset, length) = (
                    extent["offset"].as_u64().unwrap(),
                    extent["length"].as_u64().unwrap(),
                );
                assert_eq!(offset % block_bytes, 0, "{case}: {extent}");
                assert!(
                    length % block_bytes == 0 || offset + length == 300_001,
                    "{case}: {extent}"
                );
            }

            assert!(
                restored_in_place(dir, &fixture.base, &["d.diff"]) == fixture.new,
                "{case}: restore in place"
            );
            // Run again on the restored target: every record is found restored already.
            run(dir, &["restore", "d.diff", "target.img"]);
            assert!(fs::read(dir.join("target.img")).unwrap() == fixture.new);
            let _ = fs::remove_file(dir.join("out.img"));
            run(dir, &["restore", "--base", "base.img", "d.diff", "out.img"]);
            assert!(
                fs::read(dir.join("out.img")).unwrap() == fixture.new,
                "{case}: restore --base"
            );
            let verified = diff_dd()
                .current_dir(dir)
                .args(["verify", "d.diff", "target.img"])
                .output()
                .unwrap();
            assert!(verified.status.success(), "{case}: {verified:?}");
            assert!(String::from_utf8_lossy(&verified.stdout).contains("restored"));
        }
    }
}

#[test]
fn a_diff_from_a_digest_holds_every_changed_sector_in_whole_blocks() {
    let fixture = fixture();
    let dir = fixture.dir();
    run(dir, &["backup", "new.img", "base.img", "plain.diff"]);
    // With blocks of one sector, the records are the plain backup's, extent for extent; only
    // how their base hash is taken differs (man/diff-dd.5, Records).
    run(
        dir,
        &["digest", "--block-size", "4K", "base.img", "base.dg"],
    );
    run(
        dir,
        &[
            "-s",
            "4096",
            "backup",
            "new.img",
            "base.img",
            "plain4k.diff",
        ],
    );
    run(
        dir,
        &[
            "-s", "4096", "backup", "--digest", "base.dg", "new.img", "d4k.diff",
        ],
    );
    assert_eq!(
        listed_extents(&inspect_json(dir, "d4k.diff")),
        listed_extents(&inspect_json(dir, "plain4k.diff"))
    );
    // With larger blocks, every changed sector lies in a record; and -b, a read buffer,
    // changes nothing.
    run(dir, &["digest", "base.img", "base16k.dg"]);
    run(
        dir,
        &["backup", "--digest", "base16k.dg", "new.img", "d.diff"],
    );
    for buffer in ["16K", "64K", "1M"] {
        run(
            dir,
            &[
                "-b",
                buffer,
                "backup",
                "--digest",
                "base16k.dg",
                "new.img",
                "b.diff",
            ],
        );
        assert!(
            fs::read(dir.join("b.diff")).unwrap() == fs::read(dir.join("d.diff")).unwrap(),
            "-b {buffer} changed the diff"
        );
    }
    let blocks = listed_extents(&inspect_json(dir, "d.diff"));
    for (offset, length) in listed_extents(&inspect_json(dir, "plain.diff")) {
        assert!(
            blocks
                .iter()
                .any(|&(start, size)| start <= offset && offset + length <= start + size),
            "sectors at {offset} (+{length}) in no record of {blocks:?}"
        );
    }
}

#[test]
fn chains_mix_diffs_from_images_and_from_digests() {
    // Four days of an image; each day changes other places, so that merge needs no FULL
    // where the diffs hold whole records.
    let mut random = Random(22);
    let size = 200_000;
    let day0 = random.bytes(size);
    let mut days = vec![day0];
    for (day, at) in [(1usize, 20_000usize), (2, 70_000), (3, 150_000)] {
        let mut image = days[day - 1].clone();
        image[at..at + 9000].copy_from_slice(&random.bytes(9000));
        image[at + 30_000] ^= 0xff;
        days.push(image);
    }
    let fixture = Fixture::new(days[0].clone(), days[1].clone());
    let dir = fixture.dir();
    for (day, image) in days.iter().enumerate() {
        fs::write(dir.join(format!("day{day}.img")), image).unwrap();
    }
    // mon from the full image, tue from a digest of the chain made through pipes, as a
    // backup server and the machine with the disk would, wed from the full image again.
    run(dir, &["backup", "day1.img", "day0.img", "mon.diff"]);
    let digest = diff_dd()
        .current_dir(dir)
        .args(["digest", "day0.img", "mon.diff", "-"])
        .output()
        .unwrap();
    assert!(digest.status.success(), "{digest:?}");
    let tue = diff_dd()
        .current_dir(dir)
        .args(["backup", "--digest", "-", "day2.img", "-"])
        .write_stdin(digest.stdout)
        .output()
        .unwrap();
    assert!(tue.status.success(), "{tue:?}");
    fs::write(dir.join("tue.diff"), &tue.stdout).unwrap();
    run(
        dir,
        &[
            "backup", "--on", "mon.diff", "--on", "tue.diff", "day3.img", "day0.img", "wed.diff",
        ],
    );
    let chain = ["mon.diff", "tue.diff", "wed.diff"];

    assert!(
        restored_in_place(dir, &days[0], &chain) == days[3],
        "chain in place"
    );
    let mut one_pass = vec!["restore", "--base", "day0.img"];
    one_pass.extend(chain);
    one_pass.push("out.img");
    run(dir, &one_pass);
    assert!(
        fs::read(dir.join("out.img")).unwrap() == days[3],
        "one pass"
    );
    let mut verify = vec!["verify"];
    verify.extend(chain);
    verify.push("target.img");
    let verified = diff_dd().current_dir(dir).args(&verify).output().unwrap();
    assert!(verified.status.success(), "{verified:?}");

    // merge, with FULL and without: the merged diff restores the last day.
    let mut merge = vec!["merge", "--base", "day0.img"];
    merge.extend(chain);
    merge.push("merged.diff");
    run(dir, &merge);
    assert!(
        restored_in_place(dir, &days[0], &["merged.diff"]) == days[3],
        "merge --base"
    );
    let mut merge = vec!["merge"];
    merge.extend(chain);
    merge.push("merged-alone.diff");
    run(dir, &merge);
    assert!(
        restored_in_place(dir, &days[0], &["merged-alone.diff"]) == days[3],
        "merge without FULL"
    );
    // Without FULL, tue's records keep their base hash over blocks.
    let merged = inspect_json(dir, "merged-alone.diff");
    let over_blocks = merged["extents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|extent| extent["base_block_size"].is_u64())
        .count();
    let tue_records = listed_extents(&inspect_json(dir, "tue.diff")).len();
    assert_eq!(over_blocks, tue_records);

    // A digest diff continued by a digest diff: the chain's NEXT digests carry on.
    run(dir, &["digest", "day0.img", "d0.dg"]);
    run(
        dir,
        &[
            "backup",
            "--digest",
            "d0.dg",
            "--digest-out",
            "d1.dg",
            "day1.img",
            "a.diff",
        ],
    );
    run(
        dir,
        &[
            "backup",
            "--digest",
            "d1.dg",
            "--digest-out",
            "d2.dg",
            "day2.img",
            "b.diff",
        ],
    );
    assert!(restored_in_place(dir, &days[0], &["a.diff", "b.diff"]) == days[2]);
    run(dir, &["merge", "a.diff", "b.diff", "ab.diff"]);
    assert!(restored_in_place(dir, &days[0], &["ab.diff"]) == days[2]);
}

/// A file's bytes, or a symbolic link's target (which may not exist).
fn contents(path: &Path) -> Vec<u8> {
    match fs::read_link(path) {
        Ok(target) => target.to_string_lossy().as_bytes().to_vec(),
        Err(_) => fs::read(path).unwrap(),
    }
}

/// Every name in the work directory with its bytes (a link's target for a link).
fn snapshot(fixture: &Fixture) -> Vec<(String, Vec<u8>)> {
    fixture
        .names()
        .into_iter()
        .map(|name| {
            let bytes = contents(&fixture.path(&name));
            (name, bytes)
        })
        .collect()
}

/// Runs a backup that must be refused with exit `code`, leaving the work directory's files as
/// they were; returns its message.
fn assert_refused(fixture: &Fixture, args: &[&str], stdin: Option<Vec<u8>>, code: i32) -> String {
    let before = snapshot(fixture);
    let mut command = fixture.command();
    command.args(args);
    if let Some(stdin) = stdin {
        command.write_stdin(stdin);
    }
    let assert = command.assert().code(code);
    let message = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    let after = snapshot(fixture);
    assert!(before == after, "{args:?}: files changed: {message}");
    message
}

#[test]
fn damaged_foreign_and_unfitting_digests_are_refused_with_nothing_written() {
    let fixture = fixture();
    let dir = fixture.dir();
    run(dir, &["digest", "base.img", "base.dg"]);
    let digest = fs::read(dir.join("base.dg")).unwrap();
    let backup = [
        "backup",
        "--digest",
        "bad.dg",
        "--digest-out",
        "next.dg",
        "new.img",
        "d.diff",
    ];

    // Flipped bytes in every part (signature, header, values, trailer, footer) and
    // truncations: in a file and through a pipe.
    for at in [
        3,
        20,
        200,
        digest.len() / 2,
        digest.len() - 60,
        digest.len() - 5,
    ] {
        let mut damaged = digest.clone();
        damaged[at] ^= 0x04;
        fs::write(dir.join("bad.dg"), &damaged).unwrap();
        let message = assert_refused(&fixture, &backup, None, 1);
        assert!(message.contains("bad.dg"), "{message}");
        fs::remove_file(dir.join("bad.dg")).unwrap();
        let message = assert_refused(
            &fixture,
            &["backup", "--digest", "-", "new.img", "-"],
            Some(damaged),
            1,
        );
        assert!(message.contains("digest"), "{message}");
    }
    for length in [0, 10, 100, digest.len() / 2, digest.len() - 1] {
        let message = assert_refused(
            &fixture,
            &["backup", "--digest", "-", "new.img", "d.diff"],
            Some(digest[..length].to_vec()),
            1,
        );
        assert!(
            ["truncated", "damaged", "empty"]
                .iter()
                .any(|said| message.contains(said)),
            "{message}"
        );
    }

    // A digest of another size.
    fs::write(dir.join("short.img"), &fixture.base[..100_000]).unwrap();
    run(dir, &["digest", "short.img", "short.dg"]);
    let message = assert_refused(
        &fixture,
        &["backup", "--digest", "short.dg", "new.img", "d.diff"],
        None,
        1,
    );
    assert!(message.contains("describes an image of"), "{message}");

    // Blocks that are not whole sectors.
    run(dir, &["digest", "--block-size", "4K", "base.img", "b4k.dg"]);
    let message = assert_refused(
        &fixture,
        &[
            "-s", "8192", "backup", "--digest", "b4k.dg", "new.img", "d.diff",
        ],
        None,
        1,
    );
    assert!(message.contains("not whole sectors"), "{message}");

    // A diff, an image and nothing given as the digest.
    run(dir, &["backup", "new.img", "base.img", "plain.diff"]);
    for (not_a_digest, seems) in [("plain.diff", "a diff-dd diff"), ("base.img", "")] {
        let message = assert_refused(
            &fixture,
            &["backup", "--digest", not_a_digest, "new.img", "d.diff"],
            None,
            1,
        );
        assert!(
            message.contains("does not start with the signature"),
            "{message}"
        );
        assert!(message.contains(seems), "{message}");
    }

    // OUTFILE or NEXT the same file as INFILE or DIGEST, or as each other.
    for args in [
        &["backup", "--digest", "base.dg", "new.img", "new.img"][..],
        &["backup", "--digest", "base.dg", "new.img", "base.dg"],
        &[
            "backup",
            "--digest",
            "base.dg",
            "--digest-out",
            "base.dg",
            "new.img",
            "d.diff",
        ],
        &[
            "backup",
            "--digest",
            "base.dg",
            "--digest-out",
            "new.img",
            "new.img",
            "d.diff",
        ],
    ] {
        let message = assert_refused(&fixture, args, None, 1);
        assert!(
            message.contains("same file") || message.contains("not a digest"),
            "{args:?}: {message}"
        );
    }
    // The same file under other spellings, and NEXT where standard output goes when OUTFILE
    // is '-': refused before anything is written (the later commit would replace the diff).
    std::os::unix::fs::symlink("x.diff", dir.join("link")).unwrap();
    let absolute = dir.join("x.diff").to_string_lossy().into_owned();
    for next in ["x.diff", "./x.diff", absolute.as_str(), "link"] {
        let message = assert_refused(
            &fixture,
            &[
                "backup",
                "--digest",
                "base.dg",
                "--digest-out",
                next,
                "new.img",
                "x.diff",
            ],
            None,
            1,
        );
        assert!(
            message.contains("refusing to write NEXT") && message.contains("same file as OUTFILE"),
            "{next}: {message}"
        );
    }
    fs::remove_file(dir.join("link")).unwrap();
    let output = std::process::Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(format!(
            "{} backup --digest base.dg --digest-out out.bin new.img - > out.bin",
            assert_cmd::cargo::cargo_bin("diff-dd").display()
        ))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("same file as OUTFILE standard output")
    );
    assert_eq!(fs::metadata(dir.join("out.bin")).unwrap().len(), 0);
    fs::remove_file(dir.join("out.bin")).unwrap();
    // Errors about NEXT name NEXT.
    fs::write(dir.join("victim.img"), &fixture.base).unwrap();
    let message = assert_refused(
        &fixture,
        &[
            "backup",
            "--digest",
            "base.dg",
            "--digest-out",
            "victim.img",
            "new.img",
            "d.diff",
        ],
        None,
        1,
    );
    assert!(
        message.contains("refusing to replace NEXT: victim.img: it exists and is not a digest"),
        "{message}"
    );
    let message = assert_refused(
        &fixture,
        &[
            "backup",
            "--digest",
            "base.dg",
            "--digest-out",
            "/dev/full",
            "new.img",
            "d.diff",
        ],
        None,
        1,
    );
    assert!(message.contains("NEXT: /dev/full"), "{message}");
    // Usage: INFILE and DIGEST both standard input; REFFILE with --digest; --on with it.
    for args in [
        &["backup", "--digest", "-", "-", "d.diff"][..],
        &[
            "backup", "--digest", "base.dg", "new.img", "base.img", "d.diff",
        ],
        &[
            "backup",
            "--digest",
            "base.dg",
            "--on",
            "plain.diff",
            "new.img",
            "d.diff",
        ],
        &[
            "backup",
            "--digest-out",
            "n.dg",
            "new.img",
            "base.img",
            "d.diff",
        ],
        &[
            "backup", "--format", "v1", "--digest", "base.dg", "new.img", "d.diff",
        ],
    ] {
        assert_refused(&fixture, args, None, 2);
    }
}

#[test]
fn a_diff_from_the_digest_of_another_image_cannot_restore_onto_the_wrong_target() {
    let fixture = fixture();
    let dir = fixture.dir();
    // The digest of an image of the same size that is not the base.
    let mut other = fixture.base.clone();
    other[6000] ^= 1;
    other[250_000] ^= 1;
    fs::write(dir.join("other.img"), &other).unwrap();
    run(dir, &["digest", "other.img", "other.dg"]);
    run(
        dir,
        &["backup", "--digest", "other.dg", "new.img", "d.diff"],
    );
    fs::write(dir.join("target.img"), &fixture.base).unwrap();
    let message = refused(
        diff_dd()
            .current_dir(dir)
            .args(["restore", "d.diff", "target.img"])
            .assert()
            .code(1),
    );
    assert!(message.contains("neither the base data"), "{message}");
    assert!(fs::read(dir.join("target.img")).unwrap() == fixture.base);
    // The same with FULL: the one-pass restore refuses FULL by its hash.
    let message = refused(
        diff_dd()
            .current_dir(dir)
            .args(["restore", "--base", "base.img", "d.diff", "out.img"])
            .assert()
            .code(1),
    );
    assert!(message.contains("base.img"), "{message}");
    assert!(!dir.join("out.img").exists());
}

#[test]
fn an_image_of_one_block_and_a_wrong_full_for_merge() {
    // One block: its value is the image's BLAKE3.
    let mut random = Random(23);
    let base = random.bytes(5000);
    let mut new = base.clone();
    new[100] ^= 1;
    let fixture = Fixture::new(base, new);
    let dir = fixture.dir();
    run(dir, &["digest", "base.img", "base.dg"]);
    run(
        dir,
        &[
            "backup",
            "--digest",
            "base.dg",
            "--digest-out",
            "next.dg",
            "new.img",
            "d.diff",
        ],
    );
    assert!(restored_in_place(dir, &fixture.base, &["d.diff"]) == fixture.new);
    run(dir, &["merge", "d.diff", "m.diff"]);
    assert!(restored_in_place(dir, &fixture.base, &["m.diff"]) == fixture.new);
    let verified = diff_dd()
        .current_dir(dir)
        .args(["verify", "--digest", "next.dg", "new.img"])
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
    // merge --base with a FULL that is not the base: refused at the record over blocks.
    let mut wrong = fixture.base.clone();
    wrong[4000] ^= 1;
    fs::write(dir.join("wrong.img"), &wrong).unwrap();
    let message = refused(
        diff_dd()
            .current_dir(dir)
            .args(["merge", "--base", "wrong.img", "d.diff", "w.diff"])
            .assert(),
    );
    assert!(message.contains("refusing FULL: wrong.img"), "{message}");
    assert!(!dir.join("w.diff").exists());
}
