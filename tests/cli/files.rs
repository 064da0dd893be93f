//! inspect --files: real ext2 and ext4 images made with mkfs -d and changed with debugfs -w
//! (e2fsprogs, which .ci/run installs), diffs and chains of them, and the audit compared with
//! the truth known from how they were made: every file changed is listed, none that was not.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::util::{diff_dd, refused, Random};

/// A work directory with a tree of files to make images from.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let work = Work {
            dir: tempfile::tempdir().unwrap(),
        };
        let tree = work.path("tree");
        fs::create_dir_all(tree.join("sub/deep")).unwrap();
        let mut random = Random(21);
        fs::write(tree.join("a.txt"), b"the first file\n").unwrap();
        // Longer than 12 blocks of 1 KiB: an ext2 map needs an indirect block for it.
        fs::write(tree.join("big.bin"), random.bytes(300_000)).unwrap();
        fs::write(tree.join("sub/c.conf"), b"key = value\n").unwrap();
        fs::write(tree.join("sub/deep/d.log"), random.bytes(20_000)).unwrap();
        fs::write(tree.join("payload"), random.bytes(40_000)).unwrap();
        work
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes `name` with `mkfs` (`mkfs.ext4`, `mkfs.ext2`) from the tree.
    fn mkfs(&self, mkfs: &str, options: &[&str], name: &str, size: &str) {
        let status = Command::new(mkfs)
            .args(["-q", "-F"])
            .args(options)
            .arg("-d")
            .arg(self.path("tree"))
            .arg(self.path(name))
            .arg(size)
            .status()
            .unwrap();
        assert!(status.success(), "{mkfs} failed");
    }

    /// Copies image `from` to `to` and runs debugfs -w `commands` on the copy.
    fn change(&self, from: &str, to: &str, commands: &[&str]) {
        fs::copy(self.path(from), self.path(to)).unwrap();
        let script = self.path("debugfs.cmd");
        fs::write(&script, commands.join("\n") + "\n").unwrap();
        let output = Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(self.path(to))
            .output()
            .unwrap();
        assert!(output.status.success(), "debugfs failed");
    }

    /// What `debugfs -R request` prints about `image`.
    fn debugfs(&self, image: &str, request: &str) -> String {
        let output = Command::new("debugfs")
            .arg("-R")
            .arg(request)
            .arg(self.path(image))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The first physical block of `path` in `image`.
    fn first_block(&self, image: &str, path: &str) -> u64 {
        self.debugfs(image, &format!("bmap {path} 0"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Writes `bytes` at byte `offset` of `image`, behind the filesystem's back.
    fn poke(&self, image: &str, offset: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = fs::OpenOptions::new()
            .write(true)
            .open(self.path(image))
            .unwrap();
        file.write_all_at(bytes, offset).unwrap();
    }

    fn backup(&self, new: &str, base: &str, diff: &str) {
        diff_dd()
            .arg(self.path(new))
            .arg(self.path(base))
            .arg(self.path(diff))
            .assert()
            .success();
    }

    /// `inspect --files --json FULL DIFF...`, which must succeed.
    fn audit(&self, full: &str, diffs: &[&str]) -> Value {
        let output = diff_dd()
            .current_dir(self.dir.path())
            .args(["inspect", "--json", "--files", full])
            .args(diffs)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

/// The files of an audit: path (or `<inode N>`) -> (status, data bytes, inode changed).
fn files(audit: &Value) -> BTreeMap<String, (String, u64, bool)> {
    audit["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| {
            let path = match file["path"].as_str() {
                Some(path) => path.to_string(),
                None => format!("<inode {}>", file["inode"]),
            };
            let entry = (
                file["status"].as_str().unwrap().to_string(),
                file["data_bytes"].as_u64().unwrap(),
                file["inode_changed"].as_bool().unwrap(),
            );
            (format!("{path} {}", entry.0), entry)
        })
        .collect()
}

fn names(audit: &Value) -> Vec<String> {
    files(audit).into_keys().collect()
}

fn metadata(audit: &Value, kind: &str) -> u64 {
    audit["metadata"][kind].as_u64().unwrap()
}

#[test]
fn ext4_files_added_deleted_and_modified_are_named() {
    let work = Work::new();
    work.mkfs("mkfs.ext4", &["-b", "4096"], "base.img", "16M");
    work.change(
        "base.img",
        "new.img",
        &[
            "mkdir /fresh",
            "write /etc/services /fresh/services",
            "rm /a.txt",
            "sif /sub/c.conf mode 0100600",
        ],
    );
    // 100 bytes of big.bin's 3rd block changed in place: data, and nothing else.
    let block = work.first_block("new.img", "/big.bin");
    work.poke("new.img", (block + 2) * 4096 + 10, &[0x5a; 100]);
    work.backup("new.img", "base.img", "d.diff");

    let audit = work.audit("base.img", &["d.diff"]);
    assert_eq!(audit["filesystem"]["kind"], "ext4");
    assert_eq!(audit["filesystem"]["block_size"], 4096);
    assert_eq!(
        names(&audit),
        [
            "/ modified",
            "/a.txt deleted",
            "/big.bin modified",
            "/fresh added",
            "/fresh/services added",
            "/sub/c.conf modified",
        ]
    );
    let files = files(&audit);
    // Whole sectors: the 100 bytes lie in one.
    assert_eq!(files["/big.bin modified"], ("modified".into(), 512, false));
    assert_eq!(files["/sub/c.conf modified"], ("modified".into(), 0, true));
    assert!(files["/fresh/services added"].1 > 0 && files["/fresh/services added"].2);
    assert!(files["/a.txt deleted"].2);
    assert!(metadata(&audit, "inode_tables") > 0);
    assert!(metadata(&audit, "inode_bitmaps") > 0);
    assert!(metadata(&audit, "block_bitmaps") > 0);
    // debugfs writes around the journal; nothing was free in both images and changed.
    assert_eq!(metadata(&audit, "journal"), 0);
    assert_eq!(audit["unowned_bytes"], 0);

    // The text says the same, a line per file.
    let output = diff_dd()
        .current_dir(work.dir.path())
        .args(["inspect", "--files", "base.img", "d.diff"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("filesystem:     ext4, 4096 blocks of 4096 bytes"),
        "{text}"
    );
    for line in ["deleted", "/a.txt", "/fresh/services", "inode tables"] {
        assert!(text.contains(line), "{line} not in {text}");
    }
    assert!(
        !text.contains("/payload") && !text.contains("d.log"),
        "{text}"
    );
}

#[test]
fn ext2_indirect_blocks_and_1k_blocks() {
    let work = Work::new();
    work.mkfs("mkfs.ext2", &["-b", "1024"], "base.img", "8M");
    work.change(
        "base.img",
        "new.img",
        &["write /usr/bin/env /sub/deep/env", "rm /payload"],
    );
    // A block of big.bin past the 12 direct ones, reached through its indirect block.
    let block: u64 = work
        .debugfs("new.img", "bmap /big.bin 100")
        .trim()
        .parse()
        .unwrap();
    work.poke("new.img", block * 1024 + 600, &[1, 2, 3]);
    work.backup("new.img", "base.img", "d.diff");

    let audit = work.audit("base.img", &["d.diff"]);
    assert_eq!(audit["filesystem"]["kind"], "ext2");
    assert_eq!(
        names(&audit),
        [
            "/ modified",
            "/big.bin modified",
            "/payload deleted",
            "/sub/deep modified",
            "/sub/deep/env added",
        ]
    );
    assert_eq!(files(&audit)["/big.bin modified"].1, 512);
    // env is longer than 12 KiB: its map has an indirect block, written with it.
    let env = &audit["files"].as_array().unwrap()[4];
    assert_eq!(env["path"], "/sub/deep/env");
    assert!(env["map_bytes"].as_u64().unwrap() > 0);
    assert!(metadata(&audit, "indirect_blocks") > 0);
}

#[test]
fn a_chain_is_audited_as_one_change_and_full_must_be_its_base() {
    let work = Work::new();
    work.mkfs("mkfs.ext4", &["-b", "1024"], "base.img", "8M");
    work.change("base.img", "mid.img", &["write /etc/hostname /x"]);
    work.change("mid.img", "new.img", &["rm /sub/deep/d.log"]);
    work.backup("mid.img", "base.img", "1.diff");
    work.backup("new.img", "mid.img", "2.diff");

    let audit = work.audit("base.img", &["1.diff", "2.diff"]);
    assert_eq!(
        names(&audit),
        [
            "/ modified",
            "/sub/deep modified",
            "/sub/deep/d.log deleted",
            "/x added"
        ]
    );
    assert_eq!(audit["diffs"].as_array().unwrap().len(), 2);

    // FULL must be the image the chain starts from, and the diffs in order.
    let stderr = refused(
        diff_dd()
            .current_dir(work.dir.path())
            .args(["inspect", "--files", "mid.img", "1.diff", "2.diff"])
            .assert(),
    );
    assert!(stderr.contains("refusing FULL: mid.img"), "{stderr}");
    let stderr = refused(
        diff_dd()
            .current_dir(work.dir.path())
            .args(["inspect", "--files", "base.img", "2.diff", "1.diff"])
            .assert(),
    );
    assert!(stderr.contains("refusing the chain"), "{stderr}");
    // Plain inspect lists one diff.
    diff_dd()
        .current_dir(work.dir.path())
        .args(["inspect", "1.diff", "2.diff"])
        .assert()
        .failure()
        .code(2);
}

#[test]
fn data_written_and_deleted_again_is_free_space() {
    let work = Work::new();
    work.mkfs("mkfs.ext4", &["-b", "4096"], "base.img", "16M");
    work.change(
        "base.img",
        "new.img",
        &["write /usr/bin/env /gone", "rm /gone"],
    );
    work.backup("new.img", "base.img", "d.diff");
    let audit = work.audit("base.img", &["d.diff"]);
    // Only the root directory, whose block held the name for a while.
    assert_eq!(names(&audit), ["/ modified"]);
    let env = fs::metadata("/usr/bin/env").unwrap().len();
    let free = audit["free_bytes"].as_u64().unwrap();
    // Sectors of env that hold zeros, as the free blocks did, are not in the diff.
    assert!(
        free >= env / 2 && free < env + 8192,
        "{free} free bytes for {env}"
    );
    let text = diff_dd()
        .current_dir(work.dir.path())
        .args(["inspect", "--files", "base.img", "d.diff"])
        .output()
        .unwrap()
        .stdout;
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("in blocks free in both images (left by data written and deleted)"),
        "{text}"
    );
}

#[test]
fn an_image_without_ext4_is_named_and_listed_plainly() {
    let work = Work::new();
    // An MBR disk image: a partition table at the start.
    let mut base = Random(3).bytes(1 << 20);
    base[510] = 0x55;
    base[511] = 0xaa;
    let mut new = base.clone();
    new[70_000..70_100].fill(7);
    fs::write(work.path("base.img"), &base).unwrap();
    fs::write(work.path("new.img"), &new).unwrap();
    work.backup("new.img", "base.img", "d.diff");
    let output = diff_dd()
        .current_dir(work.dir.path())
        .args(["inspect", "--files", "base.img", "d.diff"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no ext2/3/4 filesystem") && stderr.contains("an MBR partition table"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("extents:           1"), "{stdout}");
    let audit = work.audit("base.img", &["d.diff"]);
    // One document on one line, as every other --json output, the listings inside it too.
    let json = diff_dd()
        .current_dir(work.dir.path())
        .args(["inspect", "--json", "--files", "base.img", "d.diff"])
        .output()
        .unwrap()
        .stdout;
    let json = String::from_utf8(json).unwrap();
    assert!(
        json.ends_with("]}\n") && json.matches('\n').count() == 1,
        "{json}"
    );
    assert!(audit["filesystem"].is_null());
    assert!(audit["found"].as_str().unwrap().contains("MBR"));
    assert_eq!(audit["listings"][0]["extent_count"], 1);
}

/// Where inode `number`'s record is in `image`, from debugfs.
fn inode_offset(work: &Work, image: &str, number: u32, block_size: u64) -> u64 {
    let text = work.debugfs(image, &format!("imap <{number}>"));
    let block: u64 = text
        .split("located at block ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    let offset = text.split("offset 0x").nth(1).unwrap().trim();
    block * block_size + u64::from_str_radix(offset, 16).unwrap()
}

#[test]
fn a_damaged_filesystem_is_an_error_that_names_the_damage() {
    let work = Work::new();
    work.mkfs("mkfs.ext4", &["-b", "1024"], "base.img", "8M");
    let audit_fails = |new: &str, expected: &str| {
        fs::remove_file(work.path("d.diff")).ok();
        work.backup(new, "base.img", "d.diff");
        let stderr = refused(
            diff_dd()
                .current_dir(work.dir.path())
                .args(["inspect", "--files", "base.img", "d.diff"])
                .assert(),
        );
        assert!(
            stderr.contains("cannot audit the filesystem of the image the chain gives")
                && stderr.contains(expected),
            "{expected} not in {stderr}"
        );
    };
    // s_blocks_per_group far beyond what a bitmap block holds.
    fs::copy(work.path("base.img"), work.path("new.img")).unwrap();
    work.poke("new.img", 1024 + 0x20, &1_000_000u32.to_le_bytes());
    audit_fails("new.img", "1000000 blocks per group do not fit");
    // A filesystem bigger than the image.
    fs::copy(work.path("base.img"), work.path("new.img")).unwrap();
    work.poke("new.img", 1024 + 0x4, &u32::MAX.to_le_bytes());
    audit_fails("new.img", "is the image cut short?");
    // big.bin's extent tree root overwritten.
    fs::copy(work.path("base.img"), work.path("new.img")).unwrap();
    let number: u32 = work
        .debugfs("new.img", "stat /big.bin")
        .split("Inode: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let record = inode_offset(&work, "new.img", number, 1024);
    work.poke("new.img", record + 0x28, &[0xff; 12]);
    audit_fails(
        "new.img",
        &format!("inode {number}'s extent tree: a node without the extent magic"),
    );
    // A directory block whose entry runs past its end.
    fs::copy(work.path("base.img"), work.path("new.img")).unwrap();
    work.change("new.img", "new2.img", &["write /etc/hostname /sub/new"]);
    let block = work.first_block("new2.img", "/sub");
    work.poke("new2.img", block * 1024 + 4, &4000u16.to_le_bytes());
    audit_fails("new2.img", &format!("directory block {block}"));
}

/// Block maps that point at the same blocks over and over (an indirect block full of
/// pointers to itself, reached from the single, double and triple indirect pointers; two
/// files sharing blocks) are refused at once: without a bound on the whole walk they took
/// gigabytes of memory or hours.
#[test]
fn cross_linked_and_self_pointing_block_maps_are_refused_at_once() {
    let work = Work::new();
    work.mkfs("mkfs.ext2", &["-b", "4096"], "base.img", "8M");
    let audit_fails = |new: &str, expected: &str| {
        fs::remove_file(work.path("d.diff")).ok();
        work.backup(new, "base.img", "d.diff");
        let started = std::time::Instant::now();
        let stderr = refused(
            diff_dd()
                .current_dir(work.dir.path())
                .args(["inspect", "--files", "base.img", "d.diff"])
                .assert(),
        );
        assert!(stderr.contains(expected), "{expected} not in {stderr}");
        // Not a timed test of speed: a guard that the walk stopped rather than ran on.
        assert!(
            started.elapsed().as_secs() < 60,
            "the audit ran on for {:?}",
            started.elapsed()
        );
    };
    // Block 1000 holds 1024 pointers to itself; a.txt's indirect pointers all lead to it.
    fs::copy(work.path("base.img"), work.path("looped.img")).unwrap();
    work.poke(
        "looped.img",
        1000 * 4096,
        &1000u32.to_le_bytes().repeat(1024),
    );
    work.change(
        "looped.img",
        "looped2.img",
        &[
            "sif /a.txt block[IND] 1000",
            "sif /a.txt block[DIND] 1000",
            "sif /a.txt block[TIND] 1000",
        ],
    );
    audit_fails("looped2.img", "mapped more than once");
    // Two files mapping the same blocks: sub/c.conf's first block is also a.txt's.
    let shared = work.first_block("base.img", "/sub/c.conf");
    work.change(
        "base.img",
        "shared.img",
        &[
            &format!("sif /a.txt block[0] {shared}"),
            "write /etc/hostname /changed",
        ],
    );
    let mut new = fs::read(work.path("shared.img")).unwrap();
    for byte in &mut new[(shared * 4096) as usize..][..4096] {
        *byte ^= 0x55;
    }
    fs::write(work.path("shared2.img"), new).unwrap();
    audit_fails("shared2.img", "mapped more than once (cross-linked blocks)");
}

#[test]
fn full_cannot_be_standard_input() {
    let output = diff_dd()
        .args(["inspect", "--files", "-", "d.diff"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("FULL '-'"));
}

/// An ext4 image (4 KiB blocks) of eight small files, `/n1` to `/n8`, a data block each: a
/// file that shares its 16 KiB block of a digest with others (found with debugfs, as mkfs
/// places them), and those others.
fn small_files(work: &Work, name: &str) -> (String, Vec<String>) {
    let tree = work.path("small");
    fs::create_dir_all(&tree).unwrap();
    for n in 1..=8 {
        fs::write(tree.join(format!("n{n}")), format!("small file {n}\n")).unwrap();
    }
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096", "-d"])
        .arg(&tree)
        .arg(work.path(name))
        .arg("8M")
        .status()
        .unwrap();
    assert!(status.success(), "mkfs.ext4 failed");
    let mut regions: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for n in 1..=8 {
        let path = format!("/n{n}");
        let region = work.first_block(name, &path) / 4;
        regions.entry(region).or_default().push(path);
    }
    let mut shared = regions
        .into_values()
        .find(|paths| paths.len() > 1)
        .expect("no two small files share a 16 KiB block");
    let changed = shared.remove(0);
    (changed, shared)
}
/// debugfs commands that overwrite the first 10 bytes of `path`'s first block in place: its
/// data changes, nothing else does.
fn scribble(path: &str, pattern: &str) -> String {
    format!("zap_block -f {path} -o 0 -l 10 -p {pattern} 0")
}

#[test]
fn a_diff_from_a_digest_names_only_the_files_whose_bytes_changed() {
    let work = Work::new();
    let (changed, neighbours) = small_files(&work, "base.img");
    work.change("base.img", "new.img", &[&scribble(&changed, "0x41")]);
    let run = |args: &[&str]| {
        diff_dd()
            .current_dir(work.dir.path())
            .args(args)
            .assert()
            .success();
    };
    run(&["digest", "base.img", "base.dg"]);
    run(&["backup", "--digest", "base.dg", "new.img", "d.diff"]);

    let audit = work.audit("base.img", &["d.diff"]);
    // The record is the whole 16 KiB block, with the neighbours' blocks in it; one sector
    // of it differs, in the changed file.
    assert_eq!(audit["changed_bytes"], 16384);
    assert_eq!(audit["differing_bytes"], 512);
    assert_eq!(audit["sector_size"], 512);
    let entry = format!("{changed} modified");
    assert_eq!(names(&audit), std::slice::from_ref(&entry));
    assert_eq!(files(&audit)[&entry], ("modified".into(), 512, false));

    let output = diff_dd()
        .current_dir(work.dir.path())
        .args(["inspect", "--files", "base.img", "d.diff"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("changed bytes:  16384 (16.0 KiB) in the diffs' extents")
            && text.contains(
                "differing:      512 (512 B) of them, in sectors of 512 bytes that differ from FULL"
            ),
        "{text}"
    );
    assert!(text.contains(&changed), "{text}");
    for neighbour in &neighbours {
        assert!(!text.contains(neighbour.as_str()), "{neighbour} in {text}");
    }
}

#[test]
fn a_chain_that_sets_bytes_back_names_only_what_still_differs() {
    let work = Work::new();
    let (changed, neighbours) = small_files(&work, "day0.img");
    let other = &neighbours[0];
    work.change("day0.img", "day1.img", &[&scribble(&changed, "0x41")]);
    // Day 2: the changed file as on day 0 again, another one changed.
    work.change("day0.img", "day2.img", &[&scribble(other, "0x42")]);
    work.backup("day1.img", "day0.img", "d1.diff");
    diff_dd()
        .current_dir(work.dir.path())
        .args([
            "backup", "--on", "d1.diff", "day2.img", "day0.img", "d2.diff",
        ])
        .assert()
        .success();

    let day1 = work.audit("day0.img", &["d1.diff"]);
    assert_eq!(names(&day1), [format!("{changed} modified")]);
    let audit = work.audit("day0.img", &["d1.diff", "d2.diff"]);
    assert_eq!(names(&audit), [format!("{other} modified")]);
    // d2 holds the first file's sector set back, and the other's: both covered, one differs.
    assert_eq!(audit["changed_bytes"], 1024);
    assert_eq!(audit["differing_bytes"], 512);
}

/// The entry of `path` in an audit's files.
fn entry<'a>(audit: &'a Value, path: &str) -> &'a Value {
    audit["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {audit}"))
}

/// `inspect --files FULL DIFF` as text, which must succeed.
fn audit_text(work: &Work, full: &str, diff: &str) -> String {
    let output = diff_dd()
        .current_dir(work.dir.path())
        .args(["inspect", "--files", full, diff])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_renamed_file_is_modified_and_says_where_it_was() {
    let work = Work::new();
    work.mkfs("mkfs.ext4", &["-b", "1024"], "base.img", "8M");
    // As a kernel rename leaves it: the same inode under another name, its ctime changed.
    work.change(
        "base.img",
        "new.img",
        &[
            "ln /sub/deep/d.log /g2",
            "unlink /sub/deep/d.log",
            "sif /g2 ctime 20250101",
        ],
    );
    work.backup("new.img", "base.img", "d.diff");
    let audit = work.audit("base.img", &["d.diff"]);
    assert_eq!(
        names(&audit),
        ["/ modified", "/g2 modified", "/sub/deep modified"]
    );
    let moved = entry(&audit, "/g2");
    assert_eq!(moved["base_path"], "/sub/deep/d.log");
    assert_eq!(moved["inode_changed"], true);
    // Where the path did not change, there is no base_path.
    assert!(entry(&audit, "/sub/deep").get("base_path").is_none());
    let text = audit_text(&work, "base.img", "d.diff");
    assert!(
        text.contains("/g2  (moved from /sub/deep/d.log)\n"),
        "{text}"
    );
}

#[test]
fn a_moved_directory_says_where_it_was_though_its_record_did_not_change() {
    let work = Work::new();
    work.mkfs("mkfs.ext4", &["-b", "1024"], "base.img", "8M");
    // Moved by its entries alone (debugfs leaves the record and `..` as they were), then
    // a file written into it: its data changes, its record does not.
    work.change(
        "base.img",
        "new.img",
        &[
            "ln /sub/deep /deeper",
            "unlink /sub/deep",
            "write /etc/hostname /deeper/new",
        ],
    );
    work.backup("new.img", "base.img", "d.diff");
    let audit = work.audit("base.img", &["d.diff"]);
    assert_eq!(
        names(&audit),
        [
            "/ modified",
            "/deeper modified",
            "/deeper/new added",
            "/sub modified"
        ]
    );
    let moved = entry(&audit, "/deeper");
    assert_eq!(moved["base_path"], "/sub/deep");
    assert_eq!(moved["inode_changed"], false);
    assert!(moved["data_bytes"].as_u64().unwrap() > 0);
    let text = audit_text(&work, "base.img", "d.diff");
    assert!(text.contains("/deeper  (moved from /sub/deep)\n"), "{text}");
}

#[test]
fn an_inode_reused_by_another_file_is_the_old_deleted_and_the_new_added() {
    let work = Work::new();
    work.mkfs("mkfs.ext4", &["-b", "1024"], "base.img", "8M");
    // debugfs takes the lowest free inode, a.txt's, and gives it generation 0 as mkfs did;
    // the creation time tells the two files apart. Both tools write the current second, so
    // the new file's is set apart: in the same second they could not be told apart.
    work.change(
        "base.img",
        "new.img",
        &[
            "rm /a.txt",
            "write /etc/hostname /r",
            "sif /r crtime 20200101",
        ],
    );
    work.backup("new.img", "base.img", "d.diff");
    let audit = work.audit("base.img", &["d.diff"]);
    assert_eq!(names(&audit), ["/ modified", "/a.txt deleted", "/r added"]);
    let (deleted, added) = (entry(&audit, "/a.txt"), entry(&audit, "/r"));
    assert_eq!(deleted["inode"], added["inode"], "the inode was not reused");
    assert!(deleted.get("base_path").is_none() && added.get("base_path").is_none());
}
