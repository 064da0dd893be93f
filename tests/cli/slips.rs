//! Ordinary slips on the command line cost an error message, never data: each is refused
//! with its exit code and a message naming what is wrong, and every file involved is
//! byte-identical afterwards. (Block devices: .ci/fault-campaign.sh, scenario 5.)

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::util::{Fixture, Random};

/// The fixture: 64 KiB images differing in a few places.
fn fixture() -> Fixture {
    let mut random = Random(99);
    let base = random.bytes(64 << 10);
    let mut new = base.clone();
    new[1000..1100].fill(7);
    new[40_000] ^= 1;
    Fixture::new(base, new)
}

/// Every file in the work directory, with its bytes, so that a refusal can be shown to have
/// changed nothing and created nothing.
pub fn snapshot(fixture: &Fixture) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(fixture.dir())
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let bytes = fs::read(entry.path()).unwrap_or_default();
            (entry.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// Runs diff-dd in the work directory and asserts the exit code, that stderr holds every
/// one of `words`, and that no file changed or appeared.
pub fn assert_refused(fixture: &Fixture, arguments: &[&str], code: i32, words: &[&str]) {
    let before = snapshot(fixture);
    let output = fixture.command().args(arguments).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{arguments:?}: {stderr}");
    for word in words {
        assert!(
            stderr.contains(word),
            "{arguments:?}: no {word:?} in {stderr}"
        );
    }
    assert!(output.stdout.is_empty(), "{arguments:?}: stdout");
    assert!(snapshot(fixture) == before, "{arguments:?}: a file changed");
}

#[test]
fn dash_is_never_a_file() {
    // `-` is standard input or output where a stream serves (tests/cli/streams.rs), and
    // refused where it cannot; never a file named -.
    let fixture = fixture();
    fixture.backup(&[], "a.diff");
    assert_refused(
        &fixture,
        &["restore", "a.diff", "-"],
        2,
        &["OUTFILE", "would mean standard output", "./-"],
    );
    assert_refused(
        &fixture,
        &["a.diff", "-"],
        2,
        &["OUTFILE", "would mean standard output"],
    );
    assert_refused(
        &fixture,
        &["verify", "a.diff", "-"],
        2,
        &[
            "TARGET",
            "would mean standard input",
            "reads the target twice",
        ],
    );
    assert_refused(
        &fixture,
        &["-", "-", "b.diff"],
        2,
        &["INFILE and REFFILE cannot both be '-'"],
    );
    // Backup to - writes standard output, never a file named -.
    let backup = |outfile: &str| {
        let mut command = fixture.command();
        command
            .env("SOURCE_DATE_EPOCH", "0")
            .args(["new.img", "base.img", outfile]);
        command.output().unwrap()
    };
    let streamed = backup("-");
    assert!(streamed.status.success(), "{streamed:?}");
    assert!(backup("file.diff").status.success());
    assert!(streamed.stdout == fs::read(fixture.path("file.diff")).unwrap());
    assert!(!fixture.path("-").exists());

    // ./- is a file named -.
    fixture
        .command()
        .args(["new.img", "base.img", "./-"])
        .assert()
        .success();
    fixture
        .command()
        .args(["inspect", "./-"])
        .assert()
        .success();
}

#[test]
fn an_outfile_that_is_not_a_diff_is_replaced_only_with_force() {
    let fixture = fixture();
    let victims: [(&str, Vec<u8>, &str); 3] = [
        ("notes.txt", b"do not lose me\n".to_vec(), "text"),
        ("disk.img", fixture.base.clone(), "not a diff"),
        (
            "v9.diff",
            b"diff-dd image\x09 from the future".to_vec(),
            "version",
        ),
    ];
    for (name, bytes, seems) in &victims {
        fs::write(fixture.path(name), bytes).unwrap();
        assert_refused(
            &fixture,
            &["new.img", "base.img", name],
            1,
            &[
                "refusing to replace OUTFILE",
                name,
                "not a diff",
                seems,
                "--force",
            ],
        );
        assert_refused(
            &fixture,
            &["backup", "new.img", "base.img", name],
            1,
            &["--force"],
        );
    }
    fixture
        .command()
        .args(["--force", "new.img", "base.img", "notes.txt"])
        .assert()
        .success();
    fixture.assert_restores("notes.txt");
    fixture
        .command()
        .args(["backup", "--force", "new.img", "base.img", "disk.img"])
        .assert()
        .success();
    fixture.assert_restores("disk.img");
}

#[test]
fn an_earlier_diff_of_any_format_is_replaced_without_force() {
    let fixture = fixture();
    for format in ["native", "v1"] {
        for name in ["nightly.diff", "empty.diff"] {
            fs::write(fixture.path("empty.diff"), b"").unwrap();
            fixture.backup(&["--format", format], "nightly.diff");
            fixture.backup(&[], name);
            fixture.assert_restores(name);
        }
    }
    fs::copy(
        crate::util::vector("legacy/v2.diff"),
        fixture.path("old-v2.diff"),
    )
    .unwrap();
    fixture.backup(&[], "old-v2.diff");
    fixture.assert_restores("old-v2.diff");
}

#[test]
fn a_symlink_outfile_is_followed_and_stays_a_link() {
    let fixture = fixture();
    fs::create_dir(fixture.path("archive")).unwrap();
    fixture.backup(&[], "archive/monday.diff");
    let old = fs::read(fixture.path("archive/monday.diff")).unwrap();
    symlink("archive/monday.diff", fixture.path("latest.diff")).unwrap();
    let mut changed = fixture.new.clone();
    changed[5] ^= 0xff;
    fs::write(fixture.path("new.img"), &changed).unwrap();
    fixture.backup(&[], "latest.diff");

    let link = fs::symlink_metadata(fixture.path("latest.diff")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");
    let replaced = fs::read(fixture.path("archive/monday.diff")).unwrap();
    assert!(
        replaced != old,
        "the file the link points to was not replaced"
    );
    let names: Vec<_> = fs::read_dir(fixture.path("archive")).unwrap().collect();
    assert_eq!(names.len(), 1, "a temporary file was left beside the diff");

    // A link to a file that does not exist yet creates it.
    symlink("archive/tuesday.diff", fixture.path("dangling.diff")).unwrap();
    fixture.backup(&[], "dangling.diff");
    assert!(fixture.path("archive/tuesday.diff").is_file());
    assert!(fs::read(fixture.path("archive/tuesday.diff")).unwrap() == replaced);
}

#[test]
fn a_read_only_target_is_refused_before_anything_is_read() {
    let fixture = fixture();
    fixture.backup(&[], "a.diff");
    let target = fixture.target("target.img");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o444)).unwrap();
    assert_refused(
        &fixture,
        &["a.diff", "target.img"],
        1,
        &["target.img", "read-only", "nothing was written"],
    );
    assert_refused(
        &fixture,
        &["restore", "a.diff", "target.img"],
        1,
        &["read-only"],
    );
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    fixture.assert_restores("a.diff");
    assert!(Path::new(&target).exists());
}

#[test]
fn options_work_before_the_subcommand_as_after_it() {
    let fixture = fixture();
    fixture
        .command()
        .env("SOURCE_DATE_EPOCH", "0") // the same header: only the order differs
        .args([
            "-s",
            "4K",
            "-b",
            "8K",
            "backup",
            "new.img",
            "base.img",
            "before.diff",
        ])
        .assert()
        .success();
    fixture
        .command()
        .env("SOURCE_DATE_EPOCH", "0")
        .args([
            "backup",
            "-s",
            "4K",
            "-b",
            "8K",
            "new.img",
            "base.img",
            "after.diff",
        ])
        .assert()
        .success();
    let before = fs::read(fixture.path("before.diff")).unwrap();
    assert!(before == fs::read(fixture.path("after.diff")).unwrap());

    // Once read as a backup with INFILE 'restore' (and, had sizes matched, OUTFILE replaced).
    let target = fixture.target("t.img");
    let output = fixture
        .command()
        .args(["-v", "restore", "before.diff", "t.img"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("diff-dd: restore: "));
    assert!(fs::read(&target).unwrap() == fixture.new);

    // Once read as a restore onto the diff.
    let output = fixture
        .command()
        .args(["-q", "inspect", "before.diff"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(fs::read(fixture.path("before.diff")).unwrap() == before);
}

#[test]
fn quiet_verbose_and_json_mean_the_same_in_every_command() {
    let fixture = fixture();
    fixture.backup(&[], "a.diff");
    let target = fixture.target("t.img");

    // -v: the hashes, in verify and inspect alike.
    let output = fixture
        .command()
        .args(["verify", "-v", "a.diff", "t.img"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let base_hash = blake3::hash(&fixture.base).to_hex().to_string();
    assert!(
        text.contains(&format!("base image blake3 {base_hash}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("target: blake3 {base_hash}")),
        "{text}"
    );
    let output = fixture
        .command()
        .args(["-v", "inspect", "a.diff"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("new blake3") && text.contains("base blake3"),
        "{text}"
    );

    // -q: nothing but errors, the exit status still telling.
    for arguments in [
        &["inspect", "-q", "a.diff"][..],
        &["verify", "-q", "a.diff", "t.img"],
    ] {
        fixture
            .command()
            .args(arguments)
            .assert()
            .success()
            .stdout("")
            .stderr("");
    }
    fs::write(
        fixture.path("cut.diff"),
        &fs::read(fixture.path("a.diff")).unwrap()[..300],
    )
    .unwrap();
    fixture
        .command()
        .args(["inspect", "-q", "cut.diff"])
        .assert()
        .code(3)
        .stdout("");

    // --json: one document on one line, in both; also when the diff cannot be opened.
    for command in ["inspect", "verify"] {
        let output = fixture
            .command()
            .args([command, "--json", "a.diff"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{command}: {output:?}");
        assert_eq!(
            output.stdout.iter().filter(|&&byte| byte == b'\n').count(),
            1,
            "{command}"
        );
        let output = fixture
            .command()
            .args([command, "--json", "missing.diff"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{command}");
        let document: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
                panic!("{command}: not one JSON document ({error}): {output:?}")
            });
        let error = document["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("missing.diff") && error.contains("No such file"),
            "{command}: {document}"
        );
    }
    assert!(fs::read(&target).unwrap() == fixture.base);
}

#[test]
fn verify_says_what_to_do_after_an_interrupted_restore() {
    let fixture = fixture();
    fixture.backup(&[], "a.diff");
    // The first extent restored, the second not: as a restore killed between the two.
    let mut partly = fixture.base.clone();
    partly[1000..1100].copy_from_slice(&fixture.new[1000..1100]);
    fs::write(fixture.path("t.img"), &partly).unwrap();
    let output = fixture
        .command()
        .args(["verify", "a.diff", "t.img"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let expected =
        "partly restored: 1 of 2 extents hold new data, 1 base data; run restore again to finish";
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(expected),
        "{output:?}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(expected),
        "{output:?}"
    );
    let output = fixture
        .command()
        .args(["verify", "--json", "a.diff", "t.img"])
        .output()
        .unwrap();
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["target"]["state"], "partly_restored");
    assert!(
        document["error"].as_str().unwrap().contains(expected),
        "{document}"
    );
    assert!(fs::read(fixture.path("t.img")).unwrap() == partly);

    fixture
        .command()
        .args(["a.diff", "t.img"])
        .assert()
        .success();
    fixture
        .command()
        .args(["verify", "--expect", "restored", "a.diff", "t.img"])
        .assert()
        .success();
}

#[test]
fn sizes_in_messages_come_with_human_units() {
    let fixture = fixture();
    fs::write(fixture.path("short.img"), vec![0; 4096]).unwrap();
    let output = fixture
        .command()
        .args(["new.img", "short.img", "a.diff"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("65536 bytes (64.0 KiB)") && stderr.contains("4096 bytes (4.0 KiB)"),
        "{stderr}"
    );
    assert!(
        stderr.starts_with("diff-dd: cannot compare INFILE with REFFILE: new.img: "),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_a_diff_is_called_so_first() {
    let fixture = fixture();
    fixture.target("t.img");
    fs::write(fixture.path("notes.txt"), "monday: ok\n").unwrap();
    assert_refused(
        &fixture,
        &["restore", "base.img", "t.img"],
        1,
        &[
            "invalid diff: base.img: it is not a diff-dd diff",
            "no v2 or v3 signature",
        ],
    );
    assert_refused(
        &fixture,
        &["inspect", "notes.txt"],
        3,
        &["not a diff-dd diff", "text"],
    );
    // A v1 diff read with the wrong -s: the sizes that fit are named.
    let v1 = crate::util::vector("legacy/v1-s4096.diff");
    let v1 = v1.to_str().unwrap();
    assert_refused(
        &fixture,
        &["inspect", v1],
        3,
        &["it is a valid v1 diff with -s 4096"],
    );
    fixture
        .command()
        .args(["inspect", "-s", "4096", v1])
        .assert()
        .success();
}

/// A usage error inside a command is followed by that command's usage, whether clap or
/// diff-dd's own checks caught it; the original synopsis keeps the top-level usage.
#[test]
fn a_usage_error_shows_the_usage_of_its_command() {
    let fixture = fixture();
    let cases: [(&[&str], &str); 6] = [
        (&["restore"], "Usage: diff-dd restore "),
        (&["restore", "-", "-"], "Usage: diff-dd restore "),
        (
            &["restore", "-s", "3", "d.diff", "t.img"],
            "Usage: diff-dd restore ",
        ),
        (&["-v", "verify", "d.diff", "-"], "Usage: diff-dd verify "),
        (
            &["backup", "--format", "v1", "--compress", "3", "a", "b", "c"],
            "Usage: diff-dd backup ",
        ),
        (
            &["-s", "3", "d.diff", "t.img"],
            "Usage: diff-dd [OPTIONS] INFILE REFFILE OUTFILE",
        ),
    ];
    for (arguments, usage) in cases {
        let output = fixture.command().args(arguments).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{arguments:?}: {stderr}");
        assert!(stderr.contains(usage), "{arguments:?}: {stderr}");
        assert_eq!(
            stderr.matches("Usage: ").count(),
            1,
            "{arguments:?}: {stderr}"
        );
    }
    assert_eq!(fixture.names(), ["base.img", "new.img"]);
}
