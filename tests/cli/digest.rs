//! Digests: `digest IMAGE [DIFF...] OUTFILE` and `verify --digest DIGEST TARGET`, through
//! files and pipes, and every refusal leaving every file as it was.

use std::fs;

use crate::util::{diff_dd, refused, Fixture, Random};

/// Output that must hold a text, the message or report a test expects.
trait Says {
    fn says(&self, text: &str);
}

impl Says for Vec<u8> {
    fn says(&self, text: &str) {
        let output = String::from_utf8_lossy(self);
        assert!(output.contains(text), "{text:?} not in {output}");
    }
}

/// An image whose size is not a multiple of any block size, and a new one that differs from
/// it in a few places.
fn fixture() -> Fixture {
    let mut random = Random(20);
    let base = random.bytes(300_001);
    let mut new = base.clone();
    new[5000..9000].copy_from_slice(&random.bytes(4000));
    new[200_000..200_512].fill(0);
    Fixture::new(base, new)
}

/// The image hash a digest's trailer holds: the trailer frame is a u32 length, the block
/// count (u64) and then the image's BLAKE3.
fn image_blake3_of(digest: &[u8]) -> [u8; 32] {
    let footer = &digest[digest.len() - 48..];
    let trailer = u64::from_le_bytes(footer[..8].try_into().unwrap()) as usize;
    digest[trailer + 12..trailer + 44].try_into().unwrap()
}

#[test]
fn a_digest_says_whether_a_target_holds_its_image() {
    let fixture = fixture();
    for block_size in ["4K", "16K", "1M"] {
        fixture
            .command()
            .args([
                "digest",
                "--block-size",
                block_size,
                "base.img",
                "base.digest",
            ])
            .assert()
            .success()
            .stdout("")
            .stderr("");
        let digest = fs::read(fixture.path("base.digest")).unwrap();
        assert_eq!(
            image_blake3_of(&digest),
            *blake3::hash(&fixture.base).as_bytes()
        );
        fixture
            .command()
            .args(["verify", "--digest", "base.digest", "base.img"])
            .assert()
            .success()
            .get_output()
            .stdout
            .says("holds_image");
    }

    // One byte changed: exit 4, naming its block.
    let mut changed = fixture.base.clone();
    changed[100_000] ^= 1;
    fs::write(fixture.path("changed.img"), &changed).unwrap();
    let output = fixture
        .command()
        .args(["verify", "--json", "--digest", "base.digest", "changed.img"])
        .assert()
        .code(4)
        .get_output()
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["target"]["state"], "differs");
    assert_eq!(report["target"]["differing_blocks"], 1);
    // base.digest has 1M blocks now: the one block of this image.
    assert_eq!(report["target"]["first_differing_offsets"][0], 0);
    fixture
        .command()
        .args(["digest", "base.img", "base.digest"])
        .assert()
        .success();
    let stdout = fixture
        .command()
        .args(["verify", "--digest", "base.digest", "changed.img"])
        .assert()
        .code(4)
        .get_output()
        .stdout
        .clone();
    assert!(
        String::from_utf8_lossy(&stdout)
            .contains("1 of 19 blocks of 16384 bytes differ from the digest's, at bytes 98304"),
        "{}",
        String::from_utf8_lossy(&stdout)
    );
}

#[test]
fn the_digest_of_an_image_with_a_chain_is_the_digest_of_the_restored_image() {
    let fixture = fixture();
    fixture.backup(&[], "1.diff");
    let mut newer = fixture.new.clone();
    newer[250_000..260_000].fill(7);
    fs::write(fixture.path("newer.img"), &newer).unwrap();
    diff_dd()
        .current_dir(fixture.dir())
        .env("SOURCE_DATE_EPOCH", "0")
        .args([
            "backup",
            "--on",
            "1.diff",
            "newer.img",
            "base.img",
            "2.diff",
        ])
        .assert()
        .success();
    for (image, diffs, digest) in [
        ("base.img", &["1.diff", "2.diff"][..], "chain.digest"),
        ("newer.img", &[][..], "newer.digest"),
    ] {
        fixture
            .command()
            .env("SOURCE_DATE_EPOCH", "0")
            .args(["digest", image])
            .args(diffs)
            .arg(digest)
            .assert()
            .success();
    }
    let chain = fs::read(fixture.path("chain.digest")).unwrap();
    assert!(chain == fs::read(fixture.path("newer.digest")).unwrap());
    assert_eq!(image_blake3_of(&chain), *blake3::hash(&newer).as_bytes());

    // IMAGE that is not the chain's base: refused, nothing written.
    let stderr = refused(
        fixture
            .command()
            .args(["digest", "new.img", "1.diff", "wrong.digest"])
            .assert(),
    );
    assert!(
        stderr.contains("not the full image the chain starts from"),
        "{stderr}"
    );
    assert!(!fixture.path("wrong.digest").exists());
}

/// A target of another size differs whole; a damaged digest or one that cannot be opened is
/// still reported in one JSON document, with the exit code it ends with.
#[test]
fn verify_reports_targets_of_another_size_and_digests_it_cannot_use() {
    let fixture = fixture();
    fixture
        .command()
        .args(["digest", "base.img", "base.digest"])
        .assert()
        .success();
    fs::write(fixture.path("short.img"), &fixture.base[..5000]).unwrap();
    let stdout = fixture
        .command()
        .args(["verify", "--json", "--digest", "base.digest", "short.img"])
        .assert()
        .code(4)
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["target"]["state"], "differs");
    assert_eq!(report["target"]["size"], 5000);
    assert_eq!(report["exit_code"], 4);
    for (digest, code) in [("missing.digest", 1), ("base.img", 3)] {
        let stdout = fixture
            .command()
            .args(["verify", "--json", "--digest", digest, "base.img"])
            .assert()
            .code(code)
            .get_output()
            .stdout
            .clone();
        let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
        assert_eq!(report["digest"]["path"], digest);
        assert_eq!(report["exit_code"], code);
        assert!(report["error"].is_string());
    }
}

#[test]
fn a_digest_goes_through_a_pipe() {
    let fixture = fixture();
    let digest = fixture
        .command()
        .env("SOURCE_DATE_EPOCH", "0")
        .args(["digest", "base.img", "-"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    fixture
        .command()
        .env("SOURCE_DATE_EPOCH", "0")
        .args(["digest", "base.img", "file.digest"])
        .assert()
        .success();
    assert!(digest == fs::read(fixture.path("file.digest")).unwrap());
    fixture
        .command()
        .args(["verify", "--digest", "-", "base.img"])
        .write_stdin(digest.clone())
        .assert()
        .success();
    fixture
        .command()
        .args(["verify", "--digest", "-", "new.img"])
        .write_stdin(digest.clone())
        .assert()
        .code(4);
    fixture
        .command()
        .args(["verify", "--digest", "-", "base.img"])
        .write_stdin(&digest[..digest.len() - 1])
        .assert()
        .code(3)
        .get_output()
        .stderr
        .says("invalid digest");
}

#[test]
fn every_damaged_or_truncated_digest_is_refused() {
    let mut random = Random(21);
    let image = random.bytes(20_000);
    let fixture = Fixture::new(image.clone(), image);
    fixture
        .command()
        .args(["digest", "--block-size", "4K", "base.img", "good.digest"])
        .assert()
        .success();
    let good = fs::read(fixture.path("good.digest")).unwrap();
    for at in 0..good.len() {
        let mut damaged = good.clone();
        damaged[at] ^= 0x04;
        fs::write(fixture.path("bad.digest"), &damaged).unwrap();
        fixture
            .command()
            .args(["verify", "--digest", "bad.digest", "base.img"])
            .assert()
            .code(3)
            .get_output()
            .stderr
            .says("invalid digest");
    }
    for length in [0, 10, 15, good.len() / 2, good.len() - 48, good.len() - 1] {
        fs::write(fixture.path("short.digest"), &good[..length]).unwrap();
        fixture
            .command()
            .args(["verify", "--digest", "short.digest", "base.img"])
            .assert()
            .code(3);
    }
    assert!(fs::read(fixture.path("base.img")).unwrap() == fixture.base);
}

#[test]
fn digests_and_diffs_are_not_taken_for_each_other() {
    let fixture = fixture();
    fixture.backup(&[], "1.diff");
    fixture
        .command()
        .args(["digest", "base.img", "base.digest"])
        .assert()
        .success();
    let digest = fs::read(fixture.path("base.digest")).unwrap();
    // A diff given as DIGEST.
    fixture
        .command()
        .args(["verify", "--digest", "1.diff", "base.img"])
        .assert()
        .code(3)
        .get_output()
        .stderr
        .says("it seems to be a diff-dd diff");
    // A digest given as a diff.
    let target = fixture.target("target.img");
    let stderr = refused(
        fixture
            .command()
            .args(["restore", "base.digest"])
            .arg(&target)
            .assert(),
    );
    assert!(stderr.contains("it is a diff-dd digest"), "{stderr}");
    fixture
        .command()
        .args(["inspect", "base.digest"])
        .assert()
        .code(3)
        .get_output()
        .stderr
        .says("it is a diff-dd digest");
    assert!(fs::read(&target).unwrap() == fixture.base);
    assert!(fs::read(fixture.path("base.digest")).unwrap() == digest);
}

#[test]
fn outfile_refusals_leave_every_file_as_it_was() {
    let fixture = fixture();
    fixture.backup(&[], "1.diff");
    let diff = fs::read(fixture.path("1.diff")).unwrap();
    // OUTFILE is IMAGE, or a diff of the chain.
    for outfile in ["base.img", "1.diff"] {
        let stderr = refused(
            fixture
                .command()
                .args(["digest", "base.img", "1.diff", outfile])
                .assert(),
        );
        assert!(stderr.contains("it is the same file as"), "{stderr}");
    }
    // An existing OUTFILE that is not a digest: refused without --force.
    let stderr = refused(
        fixture
            .command()
            .args(["digest", "new.img", "1.diff"])
            .assert(),
    );
    assert!(stderr.contains("it exists and is not a digest"), "{stderr}");
    assert!(fs::read(fixture.path("base.img")).unwrap() == fixture.base);
    assert!(fs::read(fixture.path("new.img")).unwrap() == fixture.new);
    assert!(fs::read(fixture.path("1.diff")).unwrap() == diff);
    // An earlier digest is replaced; --force replaces anything.
    fixture
        .command()
        .args(["digest", "base.img", "d"])
        .assert()
        .success();
    fixture
        .command()
        .args(["digest", "new.img", "d"])
        .assert()
        .success();
    fs::write(fixture.path("text"), "notes\n").unwrap();
    fixture
        .command()
        .args(["digest", "--force", "new.img", "text"])
        .assert()
        .success();
    assert!(fs::read(fixture.path("d")).unwrap() == fs::read(fixture.path("text")).unwrap());
    // Block sizes that are not powers of two from 4K to 4M: a usage error.
    for block_size in ["2K", "5K", "8M"] {
        fixture
            .command()
            .args(["digest", "--block-size", block_size, "base.img", "e"])
            .assert()
            .code(2);
    }
}

/// The read buffer never changes a digest: an image of several pieces has its blocks hashed
/// as the engine's slices, one of a single piece apart from the engine; both give the same
/// bytes, with and without a chain laid over the image.
#[test]
fn the_digest_does_not_depend_on_the_buffer_size() {
    let fixture = fixture();
    fixture.backup(&[], "1.diff");
    for block_size in ["4K", "16K", "64K"] {
        for diffs in [&[][..], &["1.diff"][..]] {
            let mut digests = Vec::new();
            for buffer_size in ["4K", "16K", "64K", "128K", "4M"] {
                let digest = fixture
                    .command()
                    .env("SOURCE_DATE_EPOCH", "0")
                    .args(["digest", "-b", buffer_size, "--block-size", block_size])
                    .arg("base.img")
                    .args(diffs)
                    .arg("-")
                    .assert()
                    .success()
                    .get_output()
                    .stdout
                    .clone();
                let image = match diffs.is_empty() {
                    true => &fixture.base,
                    false => &fixture.new,
                };
                assert_eq!(image_blake3_of(&digest), *blake3::hash(image).as_bytes());
                digests.push(digest);
            }
            assert!(
                digests.windows(2).all(|pair| pair[0] == pair[1]),
                "block size {block_size}, diffs {diffs:?}"
            );
        }
    }
}
