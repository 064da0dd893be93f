//! Diffs through pipes: backup to standard output and from standard input, restore, verify and
//! inspect from standard input, as the pipelines in README run them (through a shell).

use std::fs;
use std::process::{Command, Output};

use crate::util::{Fixture, Random};

fn fixture() -> Fixture {
    let mut random = Random(51);
    let base = random.bytes(1 << 20);
    let mut new = base.clone();
    let text = b"a run of text that compresses. ";
    for (byte, source) in new[4096..65536].iter_mut().zip(text.iter().cycle()) {
        *byte = *source;
    }
    new[300_000..300_100].copy_from_slice(&random.bytes(100));
    new[500_000..600_000].fill(0);
    Fixture::new(base, new)
}

/// Runs `script` with sh in the work directory, `diff-dd` on its PATH's front, and the creation
/// time fixed so that diffs compare byte for byte.
fn sh(fixture: &Fixture, script: &str) -> Output {
    let binary = assert_cmd::cargo::cargo_bin("diff-dd");
    let directory = binary.parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        directory.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .args(["-c", script])
        .current_dir(fixture.dir())
        .env("PATH", path)
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .unwrap()
}

fn file_backup(fixture: &Fixture, options: &str, name: &str) {
    let output = sh(
        fixture,
        &format!("diff-dd {options} new.img base.img {name}"),
    );
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn the_readme_pipelines_work_compressed_and_raw() {
    let fixture = fixture();
    for options in ["", "--compress none"] {
        file_backup(&fixture, options, "file.diff");
        let file = fs::read(fixture.path("file.diff")).unwrap();
        // To another machine: a subshell stands in for ssh.
        let output = sh(
            &fixture,
            &format!("diff-dd {options} new.img base.img - | (cat > monday.diff)"),
        );
        assert!(output.status.success(), "{output:?}");
        assert!(
            fs::read(fixture.path("monday.diff")).unwrap() == file,
            "{options}: stdout differs"
        );
        // The current image from a pipe, and the base image from a pipe.
        for script in [
            format!("dd if=new.img bs=4M status=none | diff-dd {options} - base.img piped.diff"),
            format!("cat base.img | diff-dd {options} new.img - piped.diff"),
        ] {
            let output = sh(&fixture, &script);
            assert!(output.status.success(), "{script}: {output:?}");
            assert!(
                fs::read(fixture.path("piped.diff")).unwrap() == file,
                "{script}"
            );
        }
        // Back from the other machine, onto the base image.
        fixture.target("t.img");
        let output = sh(&fixture, "cat monday.diff | diff-dd restore - t.img");
        assert!(output.status.success(), "{output:?}");
        assert!(fs::read(fixture.path("t.img")).unwrap() == fixture.new);
        let output = sh(
            &fixture,
            "cat monday.diff | diff-dd -s 4K monday.diff t.img",
        );
        assert!(output.status.success(), "{output:?}");
    }
}

#[test]
fn verify_and_inspect_read_a_stream_once() {
    let fixture = fixture();
    file_backup(&fixture, "", "d.diff");
    let output = sh(&fixture, "cat d.diff | diff-dd verify -");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        text.contains("intact") && text.contains("a second read was impossible"),
        "{text}"
    );
    let output = sh(&fixture, "cat d.diff | diff-dd inspect --json -");
    assert!(output.status.success(), "{output:?}");
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["path"], "standard input");
    assert_eq!(listing["extents"].as_array().unwrap().len(), 3);
}

#[test]
fn a_stream_of_the_wrong_size_is_refused_and_nothing_is_left() {
    let fixture = fixture();
    fs::write(fixture.path("short.img"), &fixture.new[..1000]).unwrap();
    let mut long = fixture.new.clone();
    long.push(1);
    fs::write(fixture.path("long.img"), &long).unwrap();
    for (script, words) in [
        (
            "cat short.img | diff-dd - base.img out.diff",
            "ended before byte",
        ),
        (
            "cat long.img | diff-dd - base.img out.diff",
            "it holds more than",
        ),
    ] {
        let output = sh(&fixture, script);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{script}: {stderr}");
        assert!(
            stderr.contains("standard input") && stderr.contains(words),
            "{script}: {stderr}"
        );
        assert!(
            !fixture.path("out.diff").exists(),
            "{script}: an OUTFILE appeared"
        );
    }
}

#[test]
fn a_truncated_or_corrupt_stream_is_refused_with_nothing_written_or_left() {
    let fixture = fixture();
    file_backup(&fixture, "", "d.diff");
    let diff = fs::read(fixture.path("d.diff")).unwrap();
    fs::write(fixture.path("cut.diff"), &diff[..diff.len() / 2]).unwrap();
    let mut flipped = diff.clone();
    flipped[diff.len() / 3] ^= 4;
    fs::write(fixture.path("flipped.diff"), &flipped).unwrap();
    fs::create_dir(fixture.path("spool")).unwrap();
    for name in ["cut.diff", "flipped.diff"] {
        fixture.target("t.img");
        let output = sh(
            &fixture,
            &format!("cat {name} | diff-dd restore --spool spool - t.img"),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("invalid diff: standard input"),
            "{name}: {stderr}"
        );
        assert!(
            fs::read(fixture.path("t.img")).unwrap() == fixture.base,
            "{name}: target changed"
        );
        assert_eq!(
            fs::read_dir(fixture.path("spool")).unwrap().count(),
            0,
            "a spool file was left"
        );
    }
    // The cut stream is refused naming where it broke.
    let output = sh(&fixture, "cat cut.diff | diff-dd inspect -");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("truncated"),
        "{output:?}"
    );
}

#[test]
fn a_terminal_never_receives_a_diff() {
    // `script` gives the command a terminal for its standard output.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("script (util-linux) is not installed: not tried");
        return;
    }
    let fixture = fixture();
    let output = sh(
        &fixture,
        "script -qec 'diff-dd new.img base.img -' /dev/null",
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("it is a terminal"), "{text}");
    assert!(!output.status.success());
    // Nor is a terminal waited on as standard input: a forgotten pipe.
    for command in ["diff-dd inspect -", "diff-dd - base.img t.diff"] {
        let output = sh(
            &fixture,
            &format!("script -qec '{command}' /dev/null < /dev/null"),
        );
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("standard input: it is a terminal"),
            "{command}: {text}"
        );
    }
    assert!(!fixture.path("t.diff").exists());
}

/// A reader of standard output that stops early (`| head -1`) ends inspect, verify and
/// completions quietly, killed by SIGPIPE as cat is: the shell reports 141, README's exit
/// status, and nothing is said on stderr.
#[test]
fn a_reader_that_stops_early_ends_the_listing_quietly() {
    // Every other sector changed: 8192 extents, a listing far larger than a pipe holds, so
    // that writing it must meet the closed pipe.
    let base = vec![0; 8 << 20];
    let mut new = base.clone();
    for sector in new.chunks_mut(1024) {
        sector[..512].fill(0xff);
    }
    let fixture = Fixture::new(base, new);
    fixture.backup(&[], "d.diff");
    // diff-dd's status and stderr go to files: the pipeline's status is head's.
    let pipeline = |command: &str, reader: &str| {
        let output = sh(
            &fixture,
            &format!("{{ {command} 2>stderr; echo $? >status; }} | {reader}"),
        );
        assert!(output.status.success(), "{output:?}");
        let status = fs::read_to_string(fixture.path("status")).unwrap();
        let stderr = fs::read_to_string(fixture.path("stderr")).unwrap();
        assert_eq!(stderr, "", "{command} | {reader}");
        (String::from_utf8(output.stdout).unwrap(), status)
    };
    for command in ["diff-dd inspect d.diff", "diff-dd inspect -v d.diff"] {
        let (stdout, status) = pipeline(command, "head -1");
        assert_eq!(stdout, "diff:              d.diff\n", "{command}");
        assert_eq!(status, "141\n", "{command}");
    }
    // One JSON document is one line: head -c stops within it.
    let (stdout, status) = pipeline("diff-dd inspect --json d.diff", "head -c 9");
    assert_eq!(
        (stdout.as_str(), status.as_str()),
        ("{\"path\":\"", "141\n")
    );
    // A diff streamed to a reader that went away is no finished stream: an error, exit 1.
    let output = sh(
        &fixture,
        "{ diff-dd --compress none new.img base.img - 2>stderr; echo $? >status; } | head -c 9",
    );
    assert_eq!(output.stdout, b"diff-dd i");
    let status = fs::read_to_string(fixture.path("status")).unwrap();
    let stderr = fs::read_to_string(fixture.path("stderr")).unwrap();
    assert_eq!(status, "1\n", "{stderr}");
    assert!(
        stderr.starts_with("diff-dd: cannot write OUTFILE: standard output: ")
            && stderr.contains("Broken pipe"),
        "{stderr}"
    );
    // verify's report and the script fit in a pipe: they may be written whole before head
    // exits (0), or meet the closed pipe (141); quietly either way.
    for command in ["diff-dd verify -v d.diff", "diff-dd completions bash"] {
        let (stdout, status) = pipeline(command, "head -1");
        assert_eq!(stdout.lines().count(), 1, "{command}: {stdout}");
        assert!(status == "0\n" || status == "141\n", "{command}: {status}");
    }
}
