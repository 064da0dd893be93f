//! Slips on command lines that name a list of files: a path left out makes the last diff
//! OUTFILE, standard output redirected onto an input, an existing file where a restore would
//! write. Each is refused before anything is written, naming the likely slip, and every file
//! in the work directory is byte-identical afterwards. (Loop devices: tests/cli/loop_devices.rs.)

use std::fs;
use std::process::Command;

use crate::slips::{assert_refused, snapshot};
use crate::util::{Fixture, Random};

/// A work directory with base.img, three days after it (day1.img to day3.img, each changing
/// some of the day before) and their chain mon.diff, tue.diff, wed.diff (each --on the ones
/// before).
fn week() -> Fixture {
    let mut random = Random(1919);
    let base = random.bytes(256 << 10);
    let mut days = vec![base.clone()];
    for (day, offset) in [(1, 1000usize), (2, 70_000), (3, 150_000)] {
        let mut image = days[day - 1].clone();
        image[offset..offset + 5000].copy_from_slice(&random.bytes(5000));
        image[100 + day] ^= 0xff; // overlapping: merge needs FULL there
        days.push(image);
    }
    let fixture = Fixture::new(base, days[3].clone());
    let diffs = ["mon.diff", "tue.diff", "wed.diff"];
    for (day, image) in days.iter().enumerate().skip(1) {
        fs::write(fixture.path(&format!("day{day}.img")), image).unwrap();
        let mut backup = fixture.command();
        backup.arg("backup");
        for earlier in &diffs[..day - 1] {
            backup.args(["--on", earlier]);
        }
        let day_image = format!("day{day}.img");
        backup
            .args([day_image.as_str(), "base.img", diffs[day - 1]])
            .assert()
            .success();
    }
    fixture
}

/// Runs `script` with sh in the work directory, `$DIFF_DD` the binary, and asserts that it
/// was refused (exit 1) with every one of `words` on stderr and every file as it was.
fn assert_refused_in_shell(fixture: &Fixture, script: &str, words: &[&str]) {
    let before = snapshot(fixture);
    let output = Command::new("sh")
        .args(["-c", script])
        .env("DIFF_DD", assert_cmd::cargo::cargo_bin("diff-dd"))
        .current_dir(fixture.dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{script}: {stderr}");
    for word in words {
        assert!(stderr.contains(word), "{script}: no {word:?} in {stderr}");
    }
    assert!(snapshot(fixture) == before, "{script}: a file changed");
}

#[test]
fn the_last_diff_is_never_taken_for_a_left_out_outfile() {
    let fixture = week();
    // merge with OUTFILE left out: wed.diff, a diff of another image, is not replaced.
    assert_refused(
        &fixture,
        &[
            "merge", "--base", "base.img", "mon.diff", "tue.diff", "wed.diff",
        ],
        1,
        &[
            "refusing to replace OUTFILE: wed.diff",
            "a diff of other images",
            "OUTFILE is left out",
            "--force",
        ],
    );
    // One of the chain's own diffs as OUTFILE, by name or through a hard link.
    fs::hard_link(fixture.path("tue.diff"), fixture.path("tue-link.diff")).unwrap();
    for outfile in ["tue.diff", "tue-link.diff"] {
        assert_refused(
            &fixture,
            &[
                "merge", "--base", "base.img", "mon.diff", "tue.diff", outfile,
            ],
            1,
            &[
                "it is the same file as diff tue.diff",
                "nothing was written",
            ],
        );
    }
    // backup --on with OUTFILE one of the --on diffs.
    assert_refused(
        &fixture,
        &[
            "backup", "--on", "mon.diff", "--on", "tue.diff", "day3.img", "base.img", "tue.diff",
        ],
        1,
        &["refusing to write OUTFILE: tue.diff", "same file as diff"],
    );
    // Every form of restore, with the target left out: the last diff would be the target.
    for arguments in [
        &["restore", "mon.diff", "tue.diff", "wed.diff"][..],
        &["restore", "mon.diff", "tue.diff"],
        &["mon.diff", "tue.diff"],
        &["restore", "--base", "base.img", "mon.diff", "tue.diff"],
        &[
            "restore", "--force", "--base", "base.img", "mon.diff", "tue.diff",
        ],
    ] {
        assert_refused(
            &fixture,
            arguments,
            1,
            &[
                "refusing to write target",
                "it is a diff",
                "was OUTFILE left out?",
                "nothing was written",
            ],
        );
    }

    // An existing merge of another chain is not replaced either; a rerun of the same merge
    // replaces its own result, and --force anything.
    let merge = |days: &[&str], outfile: &str, force: bool| {
        let mut command = fixture.command();
        command.args(["merge", "--base", "base.img"]);
        if force {
            command.arg("--force");
        }
        command.args(days).arg(outfile).assert()
    };
    merge(&["mon.diff", "tue.diff"], "week.diff", false).success();
    assert_refused(
        &fixture,
        &[
            "merge",
            "--base",
            "base.img",
            "mon.diff",
            "tue.diff",
            "wed.diff",
            "week.diff",
        ],
        1,
        &["week.diff", "a diff of other images", "--force"],
    );
    merge(&["mon.diff", "tue.diff"], "week.diff", false).success();
    merge(&["mon.diff", "tue.diff", "wed.diff"], "week.diff", true).success();
    merge(&["mon.diff", "tue.diff", "wed.diff"], "week.diff", false).success();
    // The merged diff holds the week.
    let target = fixture.target("t.img");
    fixture
        .command()
        .args(["restore", "week.diff", "t.img"])
        .assert()
        .success();
    assert!(fs::read(target).unwrap() == fixture.new);
}

#[test]
fn one_pass_restore_overwrites_an_existing_file_only_with_force() {
    let fixture = week();
    let day1 = fs::read(fixture.path("day1.img")).unwrap();
    let one_pass = |force: bool, target: &str| {
        let mut command = fixture.command();
        command.arg("restore");
        if force {
            command.arg("--force");
        }
        command
            .args(["--base", "base.img", "mon.diff", target])
            .assert()
    };
    // An image of the right size, and one an interrupted run left written in part.
    let mut partly = day1.clone();
    partly[100_000..].copy_from_slice(&fixture.base[100_000..]);
    partly[1000..1500].copy_from_slice(&fixture.base[1000..1500]);
    fs::write(fixture.path("partly.img"), &partly).unwrap();
    for (target, words) in [
        ("base.img", &["same file as FULL"][..]),
        ("day2.img", &["refusing to overwrite target: day2.img"]),
        ("partly.img", &["interrupted"]),
    ] {
        let mut words = words.to_vec();
        if target != "base.img" {
            words.extend(["it exists and does not hold the image", "give --force"]);
        }
        assert_refused(
            &fixture,
            &["restore", "--base", "base.img", "mon.diff", target],
            1,
            &words,
        );
    }
    // --force finishes the interrupted run; then a rerun without it finds the image there
    // and succeeds with nothing to write.
    one_pass(true, "partly.img").success().stderr("");
    assert!(fs::read(fixture.path("partly.img")).unwrap() == day1);
    let before = snapshot(&fixture);
    one_pass(false, "partly.img").success().stderr("");
    assert!(snapshot(&fixture) == before);
    // A new file needs no --force, and neither does a rerun into it.
    one_pass(false, "fresh.img").success().stderr("");
    one_pass(false, "fresh.img").success().stderr("");
    assert!(fs::read(fixture.path("fresh.img")).unwrap() == day1);
    // --force belongs to one-pass restore alone.
    assert_refused(
        &fixture,
        &["restore", "--force", "mon.diff", "day1.img"],
        2,
        &["--base"],
    );
}

#[test]
fn standard_output_that_is_an_input_is_refused_before_anything_is_written() {
    let fixture = week();
    for (script, words) in [
        (
            r#""$DIFF_DD" new.img base.img - >> base.img"#,
            "same file as REFFILE base.img",
        ),
        (
            r#""$DIFF_DD" new.img base.img - 1<> base.img"#,
            "same file as REFFILE base.img",
        ),
        (
            r#""$DIFF_DD" backup new.img base.img - >> new.img"#,
            "same file as INFILE new.img",
        ),
        (
            r#""$DIFF_DD" backup --on mon.diff day2.img base.img - >> mon.diff"#,
            "same file as diff mon.diff",
        ),
        (
            r#""$DIFF_DD" restore --base base.img mon.diff - 1<> base.img"#,
            "same file as FULL base.img",
        ),
        (
            r#""$DIFF_DD" restore --base base.img mon.diff tue.diff - >> tue.diff"#,
            "same file as diff tue.diff",
        ),
    ] {
        assert_refused_in_shell(
            &fixture,
            script,
            &["refusing to write OUTFILE: standard output", words],
        );
    }
    // Standard output redirected to another file is written as ever.
    let output = Command::new("sh")
        .args([
            "-c",
            r#""$DIFF_DD" restore --base base.img mon.diff - > out.img"#,
        ])
        .env("DIFF_DD", assert_cmd::cargo::cargo_bin("diff-dd"))
        .current_dir(fixture.dir())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        fs::read(fixture.path("out.img")).unwrap() == fs::read(fixture.path("day1.img")).unwrap()
    );
}
