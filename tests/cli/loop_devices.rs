//! A file behind a loop device is no idle file: whatever uses the device (a mounted
//! filesystem) would see its blocks change underneath it. A file that backs a loop device is
//! never written (restore's target, one-pass restore's, standard output, OUTFILE), and not
//! read as an image while the device is mounted read-write, unless --force; every file is
//! byte-identical after each refusal. Needs root and losetup, as .ci/run has.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::slips::{assert_refused, snapshot};
use crate::util::Fixture;

/// A loop device over a file, mounted on a directory once `mount` has run; unmounted and
/// detached when dropped, whatever the test did.
struct LoopDevice {
    device: String,
    mount_point: Option<PathBuf>,
}

impl LoopDevice {
    /// `losetup --find --show file`, or None (said on stderr) where loop devices cannot be
    /// made: not root. `.ci/run` runs as root, so there it always runs.
    fn attach(file: &Path) -> Option<LoopDevice> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("loop_devices: skipped: loop devices need root");
            return None;
        }
        let output = match Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
        {
            Ok(output) => output,
            // As root, losetup is part of util-linux, which every Debian has: its absence is
            // a broken machine, not a reason to pass.
            Err(error) => panic!("cannot run losetup as root: {error}"),
        };
        assert!(output.status.success(), "losetup: {output:?}");
        let device = String::from_utf8(output.stdout).unwrap().trim().to_string();
        Some(LoopDevice {
            device,
            mount_point: None,
        })
    }

    fn mount(&mut self, mount_point: &Path, options: &str) {
        run(
            "mount",
            &["-o", options, &self.device, mount_point.to_str().unwrap()],
        );
        self.mount_point = Some(mount_point.to_path_buf());
    }

    fn remount(&self, options: &str) {
        let point = self.mount_point.as_ref().expect("mounted");
        run(
            "mount",
            &["-o", &format!("remount,{options}"), point.to_str().unwrap()],
        );
    }

    fn unmount(&mut self) {
        if let Some(point) = self.mount_point.take() {
            run("umount", &[point.to_str().unwrap()]);
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Some(point) = self.mount_point.take() {
            let _ = Command::new("umount").arg(point).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

fn run(program: &str, arguments: &[&str]) {
    let output = Command::new(program).args(arguments).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {arguments:?}: {output:?}"
    );
}

#[test]
fn a_file_behind_a_loop_device_is_neither_written_nor_read_while_mounted_read_write() {
    // An ext4 filesystem with nothing left for the kernel to do after mounting (no journal,
    // inode tables written whole), so that the image changes only when something writes it.
    let fixture = Fixture::new(Vec::new(), Vec::new());
    let image = fixture.path("back.img");
    fs::write(&image, vec![0u8; 8 << 20]).unwrap();
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-O",
            "^has_journal",
            "-E",
            "lazy_itable_init=0",
            image.to_str().unwrap(),
        ],
    );
    let mut changed = fs::read(&image).unwrap();
    fs::write(fixture.path("base.img"), &changed).unwrap();
    changed[6 << 20] ^= 0xff; // a block no filesystem structure lives in
    fs::write(fixture.path("new.img"), &changed).unwrap();
    fixture.backup(&[], "b.diff");
    fs::create_dir(fixture.path("mnt")).unwrap();
    let Some(mut loop_device) = LoopDevice::attach(&image) else {
        return;
    };
    let device = loop_device.device.clone();
    loop_device.mount(&fixture.path("mnt"), "ro");

    // Mounted read-only: the file is still not written, whatever would write it.
    let in_use = [
        "it backs loop device",
        device.as_str(),
        "(mounted on ",
        "nothing was written",
    ];
    for (arguments, what) in [
        (&["b.diff", "back.img"][..], "target: back.img"),
        (&["restore", "b.diff", "back.img"], "target: back.img"),
        (
            &["restore", "--base", "base.img", "b.diff", "back.img"],
            "target: back.img",
        ),
        (
            &[
                "restore", "--force", "--base", "base.img", "b.diff", "back.img",
            ],
            "target: back.img",
        ),
        (
            &["backup", "--force", "new.img", "base.img", "back.img"],
            "OUTFILE: back.img",
        ),
        (
            &["merge", "--force", "b.diff", "back.img"],
            "OUTFILE: back.img",
        ),
    ] {
        let what = format!("refusing to write {what}");
        let mut words = in_use.to_vec();
        words.push(&what);
        assert_refused(&fixture, arguments, 1, &words);
    }
    let before = snapshot(&fixture);
    let output = Command::new("sh")
        .args([
            "-c",
            r#""$DIFF_DD" restore --base base.img b.diff - 1<> back.img"#,
        ])
        .env("DIFF_DD", assert_cmd::cargo::cargo_bin("diff-dd"))
        .current_dir(fixture.dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to write OUTFILE: standard output: it backs loop device"),
        "{stderr}"
    );
    assert!(
        snapshot(&fixture) == before,
        "standard output: a file changed"
    );
    // Read while mounted read-only, it is an image like any other.
    fixture
        .command()
        .args(["back.img", "base.img", "ro.diff"])
        .assert()
        .success();

    // Mounted read-write: not read either, unless --force. (The kernel may write the image
    // now, so it is left out of the comparison; diff-dd only reads it.)
    loop_device.remount("rw");
    let others = |fixture: &Fixture| {
        let mut files = snapshot(fixture);
        files.retain(|(name, _)| name != "back.img");
        files
    };
    let read_write = format!("it backs loop device {device}, mounted read-write on ");
    for (arguments, role) in [
        (&["back.img", "base.img", "rw.diff"][..], "INFILE"),
        (&["backup", "new.img", "back.img", "rw.diff"], "REFFILE"),
        (
            &["restore", "--base", "back.img", "b.diff", "out.img"],
            "FULL",
        ),
        (&["merge", "--base", "back.img", "b.diff", "m.diff"], "FULL"),
    ] {
        let before = others(&fixture);
        let output = fixture.command().args(arguments).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{arguments:?}: {stderr}");
        for word in [
            &format!("refusing to read {role}: back.img"),
            read_write.as_str(),
            "give --force",
        ] {
            assert!(
                stderr.contains(word),
                "{arguments:?}: no {word:?} in {stderr}"
            );
        }
        assert!(others(&fixture) == before, "{arguments:?}: a file changed");
    }
    fixture
        .command()
        .args(["backup", "--force", "back.img", "base.img", "rw.diff"])
        .assert()
        .success();

    // Attached but not mounted: still not written, since the device may be in use.
    loop_device.unmount();
    assert_refused(
        &fixture,
        &["b.diff", "back.img"],
        1,
        &[
            &format!("it backs loop device {device}, which may be in use; detach it first"),
            "nothing was written",
        ],
    );
    drop(loop_device);
    // Detached, it is a file like any other.
    fixture
        .command()
        .args([
            "restore", "--base", "base.img", "--force", "b.diff", "back.img",
        ])
        .assert()
        .success();
    assert!(fs::read(&image).unwrap() == changed);
}
