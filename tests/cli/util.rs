//! What the modules share: the binary under test, the one image generator (`Random`, from
//! tests/common, which tests/mutation.rs uses too) and the one fixture, a work directory
//! holding a base and a new image.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
pub use common::Random;

/// The binary under test.
pub fn diff_dd() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("diff-dd").unwrap()
}

/// The standard error of a command that must have been refused (exit code 1).
pub fn refused(assert: assert_cmd::assert::Assert) -> String {
    let assert = assert.failure().code(1);
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// The standard error of a command that failed after it had changed its target (exit code 6).
pub fn failed_after_writing(assert: assert_cmd::assert::Assert) -> String {
    let assert = assert.failure().code(6);
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// The repository's root.
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A checked-in vector: `path` under tests/vectors.
pub fn vector(path: &str) -> PathBuf {
    repository().join("tests/vectors").join(path)
}

/// `(offset, length)` of every extent in an `inspect --json` listing.
pub fn listed_extents(listing: &Value) -> Vec<(u64, u64)> {
    listing["extents"]
        .as_array()
        .expect("the listing has an extents array")
        .iter()
        .map(|extent| {
            (
                extent["offset"].as_u64().unwrap(),
                extent["length"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A work directory holding base.img and new.img, and the bytes of both.
pub struct Fixture {
    work: tempfile::TempDir,
    pub base: Vec<u8>,
    pub new: Vec<u8>,
}

impl Fixture {
    pub fn new(base: Vec<u8>, new: Vec<u8>) -> Fixture {
        let work = tempfile::tempdir().unwrap();
        fs::write(work.path().join("base.img"), &base).unwrap();
        fs::write(work.path().join("new.img"), &new).unwrap();
        Fixture { work, base, new }
    }

    /// tests/vectors/legacy/{base,new}.img, the pair every checked-in diff was made from.
    pub fn vectors() -> Fixture {
        Fixture::new(
            fs::read(vector("legacy/base.img")).unwrap(),
            fs::read(vector("legacy/new.img")).unwrap(),
        )
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// The binary under test, run in the work directory.
    pub fn command(&self) -> assert_cmd::Command {
        let mut command = diff_dd();
        command.current_dir(self.dir());
        command
    }

    /// Backs up new.img against base.img into `diff`, which must succeed silently.
    pub fn backup(&self, options: &[&str], diff: &str) {
        diff_dd()
            // A pinned creation time, so that diffs of the same images made a second apart
            // compare equal.
            .env("SOURCE_DATE_EPOCH", "0")
            .args(options)
            .arg(self.path("new.img"))
            .arg(self.path("base.img"))
            .arg(self.path(diff))
            .assert()
            .success()
            .stdout("")
            .stderr("");
    }

    /// Writes a fresh copy of base.img under `name`, a restore target, and returns its path.
    pub fn target(&self, name: &str) -> PathBuf {
        let target = self.path(name);
        fs::write(&target, &self.base).unwrap();
        target
    }

    /// Restores `diff` (a name in the work directory, or a path) onto a fresh copy of
    /// base.img and checks that it becomes new.img.
    pub fn assert_restores(&self, diff: impl AsRef<Path>) {
        self.assert_restores_to(diff, &self.new);
    }

    /// Restores `diff` onto a fresh copy of base.img and checks that it becomes `expected`.
    pub fn assert_restores_to(&self, diff: impl AsRef<Path>, expected: &[u8]) {
        let diff = self.work.path().join(diff);
        let target = self.target("target.img");
        diff_dd()
            .arg(&diff)
            .arg(&target)
            .assert()
            .success()
            .stdout("")
            .stderr("");
        assert!(
            fs::read(&target).unwrap() == expected,
            "{}: restore did not rebuild the new image",
            diff.display()
        );
    }

    /// Writes `diff` and `target` under names of their own, restores, and returns the outcome
    /// with the target's bytes afterwards.
    pub fn restore(&self, name: &str, diff: &[u8], target: &[u8]) -> (Output, Vec<u8>) {
        let diff_path = self.path(&format!("{name}.diff"));
        let target_path = self.path(&format!("{name}.img"));
        fs::write(&diff_path, diff).unwrap();
        fs::write(&target_path, target).unwrap();
        let output = diff_dd()
            .arg(&diff_path)
            .arg(&target_path)
            .output()
            .unwrap();
        let after = fs::read(&target_path).unwrap();
        fs::remove_file(&diff_path).unwrap();
        fs::remove_file(&target_path).unwrap();
        (output, after)
    }

    /// Restores `diff` onto the base image, which must be refused with the target unchanged.
    pub fn assert_refused(&self, name: &str, diff: &[u8], what: &str) {
        let (output, after) = self.restore(name, diff, &self.base);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{what}: not refused: {stderr}"
        );
        assert!(
            stderr.starts_with("diff-dd: ") && stderr.trim_end().lines().count() == 1,
            "{what}: {stderr}"
        );
        assert!(after == self.base, "{what}: the target changed");
    }

    /// The names in the work directory, sorted: a failed command must leave no stray file.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}
