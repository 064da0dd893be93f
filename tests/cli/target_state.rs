//! Errors after a restore began writing its target: each must end with what the target holds
//! now, in the one wording, and exit 6 (exit 1 while nothing was written); where the wording
//! says that running the same restore again finishes the target, it must. The faults are
//! injected with strace (.ci/run installs it) into the restore's system calls: a failed write
//! to the target, a failed read of the diff's private copy, a target changed by someone else
//! while the restore held still.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{diff_dd, Random};

const IMAGE: usize = 16 << 20;
const EXTENTS: usize = 48;
/// Large records, so that the diff takes many more reads (64 KiB each) than the target does
/// (one per record): see `a_failed_read_of_the_diff_while_writing`.
const EXTENT: usize = 128 << 10;

const WRITTEN_IN_PART: &str = "; t.img: written in part: run the same restore again to finish";

/// A work directory: base.img; day1.img, 48 extents of it changed, and d1.diff between them;
/// day2.img, half of each of those extents changed again, and d2.diff made on d1.diff.
struct Work {
    dir: tempfile::TempDir,
    base: Vec<u8>,
    day1: Vec<u8>,
    day2: Vec<u8>,
}

impl Work {
    fn new() -> Work {
        let mut random = Random(0x7a59_e75a_7e00_0018);
        let base = random.bytes(IMAGE);
        let (mut day1, mut day2) = (base.clone(), base.clone());
        for extent in 0..EXTENTS {
            let at = extent_offset(extent);
            day1[at..at + EXTENT].copy_from_slice(&random.bytes(EXTENT));
            day2[at..at + EXTENT].copy_from_slice(&day1[at..at + EXTENT]);
            let again = at + EXTENT / 2;
            day2[again..again + EXTENT].copy_from_slice(&random.bytes(EXTENT));
        }
        let work = Work {
            dir: tempfile::tempdir().unwrap(),
            base,
            day1,
            day2,
        };
        for (name, bytes) in [
            ("base.img", &work.base),
            ("day1.img", &work.day1),
            ("day2.img", &work.day2),
        ] {
            fs::write(work.path(name), bytes).unwrap();
        }
        let backup = |args: &[&str]| {
            work.run(&[&["backup", "--compress", "none"], args].concat())
                .success();
        };
        backup(&["day1.img", "base.img", "d1.diff"]);
        backup(&["--on", "d1.diff", "day2.img", "base.img", "d2.diff"]);
        work
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap()
    }

    /// t.img, holding the base image again.
    fn fresh_target(&self) {
        fs::write(self.path("t.img"), &self.base).unwrap();
    }

    fn run(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        diff_dd().current_dir(self.dir.path()).args(args).assert()
    }

    /// diff-dd with `args` under strace with `strace_options`, its standard output to
    /// `stdout`. Returns the exit code and standard error, without strace's own lines.
    fn faulted(&self, strace_options: &[&str], args: &[&str], stdout: Stdio) -> (i32, String) {
        let output = self
            .strace(strace_options, args)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let code = output.status.code().expect("diff-dd was killed");
        (code, without_strace(&output.stderr))
    }

    fn strace(&self, strace_options: &[&str], args: &[&str]) -> Command {
        let strace_found = Command::new("strace").arg("-V").output().is_ok();
        assert!(strace_found, "strace is needed (.ci/run installs it)");
        let mut command = Command::new("strace");
        command
            .current_dir(self.dir.path())
            .args(["-f", "-o", "/dev/null"])
            .args(strace_options)
            .arg(assert_cmd::cargo::cargo_bin("diff-dd"))
            .args(args);
        command
    }
}

fn extent_offset(extent: usize) -> usize {
    extent * (IMAGE / EXTENTS) / 4096 * 4096
}

fn without_strace(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|line| !line.starts_with("strace: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The three writers of a target in place, with the image each leaves: a single diff, a chain
/// in place, and one pass (in buffers of 256 KiB, so that it writes many times).
fn writers(work: &Work) -> [(&'static str, &'static [&'static str], &[u8]); 3] {
    [
        ("restore", &["restore", "d1.diff", "t.img"], &work.day1),
        (
            "chain in place",
            &["restore", "d1.diff", "d2.diff", "t.img"],
            &work.day2,
        ),
        (
            "one pass in place",
            &[
                "restore", "-b", "256K", "--base", "base.img", "--force", "d1.diff", "d2.diff",
                "t.img",
            ],
            &work.day2,
        ),
    ]
}

#[test]
fn a_failed_write_leaves_a_target_written_in_part_that_a_rerun_finishes() {
    let work = Work::new();
    for errno in ["ENOSPC", "EIO"] {
        for (writer, args, expected) in writers(&work) {
            let case = format!("{writer}, {errno} on its third write");
            work.fresh_target();
            let inject = format!("inject=pwrite64:error={errno}:when=3");
            let faults = ["-P", "t.img", "-e", "trace=pwrite64", "-e", &inject];
            let (code, stderr) = work.faulted(&faults, args, Stdio::null());
            assert_eq!(code, 6, "{case}: {stderr}");
            assert!(
                stderr.starts_with("diff-dd: cannot write target: t.img: at byte ")
                    && stderr.ends_with(WRITTEN_IN_PART),
                "{case}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{case}: {stderr}");
            let held = work.read("t.img");
            assert!(
                held != work.base && held != expected,
                "{case}: not written in part"
            );
            work.run(args).success();
            assert!(
                work.read("t.img") == expected,
                "{case}: the rerun did not finish it"
            );
        }
    }
}

#[test]
fn a_first_write_that_fails_leaves_the_target_untouched_and_exits_1() {
    let work = Work::new();
    for (writer, args, _) in writers(&work) {
        work.fresh_target();
        let faults = [
            "-P",
            "t.img",
            "-e",
            "trace=pwrite64",
            "-e",
            "inject=pwrite64:error=ENOSPC:when=1",
        ];
        let (code, stderr) = work.faulted(&faults, args, Stdio::null());
        assert_eq!(code, 1, "{writer}: {stderr}");
        assert!(
            stderr.ends_with("; t.img: nothing was written"),
            "{writer}: {stderr}"
        );
        assert!(work.read("t.img") == work.base, "{writer}: written");
    }
}

#[test]
fn a_target_changed_while_restore_writes_it_is_reported_written_in_part() {
    let work = Work::new();
    work.fresh_target();
    // The restore is held for a second after its first write; meanwhile the last extent
    // changes, which the writing run finds when it comes to it.
    let child = work
        .strace(
            &[
                "-P",
                "t.img",
                "-e",
                "trace=pwrite64",
                "-e",
                "inject=pwrite64:delay_exit=1000000:when=1",
            ],
            &["restore", "d1.diff", "t.img"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while work.read("t.img") == work.base {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the restore never wrote"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = extent_offset(EXTENTS - 1);
    let target = fs::OpenOptions::new()
        .write(true)
        .open(work.path("t.img"))
        .unwrap();
    target.write_all_at(&[0xa5; 4096], last as u64).unwrap();
    drop(target);
    let output = child.wait_with_output().unwrap();
    let stderr = without_strace(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.starts_with(&format!("diff-dd: wrong target: t.img: at byte {last} "))
            && stderr
                .ends_with("; t.img: written in part: write the full image back and restore again"),
        "{stderr}"
    );
    // As it says, a rerun does not finish it; the full image written back, one does.
    let rerun = work.run(&["restore", "d1.diff", "t.img"]).failure().code(1);
    let stderr = String::from_utf8_lossy(&rerun.get_output().stderr).into_owned();
    assert!(stderr.contains("nothing was written"), "{stderr}");
    work.fresh_target();
    work.run(&["restore", "d1.diff", "t.img"]).success();
    assert!(work.read("t.img") == work.day1);
}

/// The number, among all pread64 calls of restore's main thread (which reads the diff), of
/// its read of the diff's private copy in the writing run at three quarters of the diff: by
/// then records were written (the main thread reads at most three runs of records, 1 MiB
/// each, ahead of writing; the diff holds 6 MiB). Taken from a run traced with `-ff`, which
/// puts each thread's calls, whole, in a file of its own.
fn read_while_writing(work: &Work, trace_set: &str) -> usize {
    fs::create_dir(work.path("trace")).unwrap();
    work.fresh_target();
    let status = Command::new("strace")
        .current_dir(work.dir.path())
        .args(["-ff", "-o", "trace/t", "-e", trace_set])
        .arg(assert_cmd::cargo::cargo_bin("diff-dd"))
        .args(["restore", "d1.diff", "t.img"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let header_read = ", 14, 0)";
    let main_thread = fs::read_dir(work.path("trace"))
        .unwrap()
        .map(|entry| fs::read_to_string(entry.unwrap().path()).unwrap())
        .find(|trace| trace.contains(header_read))
        .expect("no thread read the diff's header");
    let preads: Vec<&str> = main_thread
        .lines()
        .filter(|line| line.starts_with("pread64("))
        .collect();
    let offset = |line: &str| -> u64 {
        let arguments = &line[..line.rfind(')').unwrap()];
        arguments.rsplit(", ").next().unwrap().parse().unwrap()
    };
    let writing_run = preads
        .iter()
        .rposition(|line| line.contains(header_read))
        .unwrap();
    let diff_size = fs::metadata(work.path("d1.diff")).unwrap().len();
    let at = (writing_run..preads.len())
        .find(|&index| offset(preads[index]) >= diff_size * 3 / 4)
        .expect("the writing run never read that far");
    at + 1
}

#[test]
fn a_failed_read_of_the_diff_while_writing_leaves_a_target_written_in_part() {
    let work = Work::new();
    let trace_set = "trace=pread64";
    let nth = read_while_writing(&work, trace_set);
    work.fresh_target();
    let inject = format!("inject=pread64:error=EIO:when={nth}");
    let args = ["restore", "d1.diff", "t.img"];
    let (code, stderr) = work.faulted(&["-e", trace_set, "-e", &inject], &args, Stdio::null());
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.starts_with("diff-dd: cannot read diff: ")
            && stderr.contains("Input/output error")
            && stderr.ends_with(WRITTEN_IN_PART),
        "{stderr}"
    );
    let held = work.read("t.img");
    assert!(
        held != work.base && held != work.day1,
        "not written in part"
    );
    work.run(&args).success();
    assert!(
        work.read("t.img") == work.day1,
        "the rerun did not finish it"
    );
}

#[test]
fn a_failed_write_to_standard_output_says_what_went_out_is_incomplete() {
    let work = Work::new();
    let out = fs::File::create(work.path("out.img")).unwrap();
    let faults = [
        "-P",
        "out.img",
        "-e",
        "trace=write",
        "-e",
        "inject=write:error=EIO:when=3",
    ];
    let args = [
        "restore", "-b", "256K", "--base", "base.img", "d1.diff", "d2.diff", "-",
    ];
    let (code, stderr) = work.faulted(&faults, &args, Stdio::from(out));
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.starts_with("diff-dd: cannot write target: standard output: at byte ")
            && stderr.ends_with("; standard output: what was written is incomplete"),
        "{stderr}"
    );
    assert_eq!(work.read("out.img").len(), 2 * (256 << 10));
}
