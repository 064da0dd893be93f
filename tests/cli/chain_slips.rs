//! Slips on command lines that name a list of files: a path left out makes the last diff
//! OUTFILE, standard output redirected onto an input,. Each is refused before anything is written, naming the likely slip, and every file
//! in the work directory is byte-identical afterwards.

use std::fs;
use std::process::Command;

use crate::slips::snapshot;
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
