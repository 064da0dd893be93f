//! Chains of diffs, driven through the binary: `backup --on` makes each diff against the image
//! the chain gives so far, `restore --base FULL DIFF...` writes that image in one pass into a
//! new file, an existing one or standard output, and every broken link is refused with
//! nothing left that looks valid.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::util::{diff_dd, failed_after_writing, refused, Random};

/// A full image and three days after it, each changing some of the day before (data and
/// runs of zeros, some over what the day before changed), the zeros of the full image kept
/// for sparseness; and the chain of diffs, each made with `--on` the ones before.
struct Week {
    work: tempfile::TempDir,
    days: Vec<Vec<u8>>,
}

const IMAGE_SIZE: usize = (3 << 20) + 1536; // three pieces of the 1 MiB buffer and a short one

impl Week {
    fn new(compress: &str) -> Week {
        let work = tempfile::tempdir().unwrap();
        let mut random = Random(1207);
        let mut full = random.bytes(IMAGE_SIZE);
        full[1 << 20..(2 << 20)].fill(0);
        let mut days = vec![full];
        for day in 1..=3u64 {
            let mut image = days[days.len() - 1].clone();
            for change in 0..30u64 {
                let offset = (random.next() % (IMAGE_SIZE as u64 - 70_000)) as usize;
                let length = 1 + (random.next() % 70_000) as usize;
                if change % 4 == 0 {
                    image[offset..offset + length].fill(0);
                } else {
                    image[offset..offset + length].copy_from_slice(&random.bytes(length));
                }
            }
            // The same bytes each day, so each diff overlaps the one before.
            image[100_000 + day as usize] ^= 0xff;
            days.push(image);
        }
        let week = Week { work, days };
        for (day, image) in week.days.iter().enumerate() {
            fs::write(week.path(&format!("day{day}.img")), image).unwrap();
        }
        for day in 1..=3 {
            let mut backup = diff_dd();
            backup
                .env("SOURCE_DATE_EPOCH", "0")
                .args(["-b", "1M", "backup"]);
            backup.args(["--compress", compress]);
            for earlier in 1..day {
                backup
                    .arg("--on")
                    .arg(week.path(&format!("d{earlier}.diff")));
            }
            backup
                .arg(week.path(&format!("day{day}.img")))
                .arg(week.path("day0.img"))
                .arg(week.path(&format!("d{day}.diff")))
                .assert()
                .success()
                .stderr("");
        }
        week
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn diffs(&self, days: &[u32]) -> Vec<PathBuf> {
        days.iter()
            .map(|day| self.path(&format!("d{day}.diff")))
            .collect()
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.work.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// diff-dd with `args`, in the work directory.
    fn run(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        diff_dd().current_dir(self.work.path()).args(args).assert()
    }

    /// `restore --base day0.img` of the diffs of `days` into `target`, with `options`.
    fn restore_one_pass(
        &self,
        options: &[&str],
        days: &[u32],
        target: &str,
    ) -> assert_cmd::assert::Assert {
        diff_dd()
            .current_dir(self.work.path())
            .args(["-b", "1M", "restore"])
            .args(options)
            .arg("--base")
            .arg(self.path("day0.img"))
            .args(self.diffs(days))
            .arg(target)
            .assert()
    }
}

#[test]
fn each_diff_of_a_chain_holds_only_what_changed_since_the_one_before() {
    let week = Week::new("4");
    // Applied one after the other in place, as a plain restore does, the chain gives each day.
    let target = week.path("target.img");
    fs::write(&target, &week.days[0]).unwrap();
    for day in 1..=3usize {
        diff_dd()
            .arg(week.path(&format!("d{day}.diff")))
            .arg(&target)
            .assert()
            .success();
        assert!(fs::read(&target).unwrap() == week.days[day], "day {day}");
    }
    // The last diff is smaller than a diff of the same day against the full image.
    diff_dd()
        .env("SOURCE_DATE_EPOCH", "0")
        .arg(week.path("day3.img"))
        .arg(week.path("day0.img"))
        .arg(week.path("direct.diff"))
        .assert()
        .success();
    let size = |name: &str| fs::metadata(week.path(name)).unwrap().len();
    assert!(size("d3.diff") < size("direct.diff"));
}

#[test]
fn one_pass_restore_writes_a_new_sparse_file_an_existing_one_and_standard_output() {
    for compress in ["4", "none"] {
        let week = Week::new(compress);
        for days in [&[1][..], &[1, 2], &[1, 2, 3]] {
            let expected = &week.days[days.len()];
            let name = format!("new-{}.img", days.len());
            week.restore_one_pass(&[], days, &name)
                .success()
                .stdout("")
                .stderr("");
            let written = fs::read(week.path(&name)).unwrap();
            assert!(&written == expected, "{compress}: {days:?} into a new file");
            // A MiB of zeros in every day was left as a hole.
            let allocated = fs::metadata(week.path(&name)).unwrap().blocks() * 512;
            assert!(
                allocated < IMAGE_SIZE as u64 - (512 << 10),
                "{compress}: not sparse: {allocated} bytes allocated"
            );

            // An existing file of the right size, whatever it held, is written in place when
            // --force says so (tests/cli/chain_slips.rs: and only then).
            fs::write(week.path("existing.img"), vec![0x5a; IMAGE_SIZE]).unwrap();
            week.restore_one_pass(&["--force"], days, "existing.img")
                .success();
            assert!(&fs::read(week.path("existing.img")).unwrap() == expected);

            let streamed = week.restore_one_pass(&[], days, "-").success();
            assert!(
                &streamed.get_output().stdout == expected,
                "{compress}: to stdout"
            );
        }
    }
}

#[test]
fn one_pass_restore_reads_full_from_standard_input() {
    let week = Week::new("4");
    let expected = &week.days[3];
    // --force: an existing target is written in place, as a new one appears.
    let from_stdin = |full: &[u8], target: &str| {
        diff_dd()
            .current_dir(week.work.path())
            .args(["-b", "1M", "restore", "--force", "--base", "-"])
            .args(week.diffs(&[1, 2, 3]))
            .arg(target)
            .write_stdin(full.to_vec())
            .assert()
    };
    from_stdin(&week.days[0], "new.img").success().stderr("");
    assert!(&fs::read(week.path("new.img")).unwrap() == expected);
    fs::write(week.path("existing.img"), vec![0x5a; IMAGE_SIZE]).unwrap();
    from_stdin(&week.days[0], "existing.img").success();
    assert!(&fs::read(week.path("existing.img")).unwrap() == expected);
    let streamed = from_stdin(&week.days[0], "-").success();
    assert!(&streamed.get_output().stdout == expected, "to stdout");

    let before = week.names();
    // Too short, too long, or not the chain's base: nothing appears under the new name.
    let short = &week.days[0][..IMAGE_SIZE - 512];
    let stderr = refused(from_stdin(short, "new2.img"));
    assert!(
        stderr.contains("standard input: it ended before byte")
            && stderr.contains("the size of the image the diffs were made of"),
        "{stderr}"
    );
    let mut long = week.days[0].clone();
    long.push(0);
    let stderr = refused(from_stdin(&long, "new2.img"));
    assert!(
        stderr.contains("standard input: it holds more than")
            && stderr.contains("nothing was left under its name"),
        "{stderr}"
    );
    let stderr = refused(from_stdin(&week.days[1], "new2.img"));
    assert!(
        stderr.contains("refusing FULL: standard input") && stderr.contains("nothing was left"),
        "{stderr}"
    );
    assert_eq!(week.names(), before, "something was left behind");

    // Written in place, a FULL that goes on past the image is still refused, and the
    // message says what the target holds; one cut short says it was written in part.
    let stderr = failed_after_writing(from_stdin(&long, "existing.img"));
    assert!(
        stderr.ends_with("; existing.img: written whole, and it holds the image the diffs give\n"),
        "{stderr}"
    );
    assert!(&fs::read(week.path("existing.img")).unwrap() == expected);
    for (target, state) in [
        (
            "existing.img",
            "existing.img: written in part: run the same restore again to finish",
        ),
        ("-", "standard output: what was written is incomplete"),
    ] {
        let stderr = failed_after_writing(from_stdin(short, target));
        assert!(
            stderr.contains("cannot read FULL: standard input: it ended before byte")
                && stderr.ends_with(&format!("; {state}\n")),
            "{target}: {stderr}"
        );
    }

    // FULL and a diff cannot both come from standard input.
    let usage = week
        .run(&["restore", "--base", "-", "-", "new2.img"])
        .failure()
        .code(2);
    let stderr = String::from_utf8_lossy(&usage.get_output().stderr).into_owned();
    assert!(stderr.contains("cannot both be '-'"), "{stderr}");
    assert_eq!(week.names(), before);
}

#[test]
fn a_broken_chain_is_refused_naming_both_diffs_with_nothing_written() {
    let week = Week::new("4");
    let before = week.names();
    // Out of order, a link missing, and a diff of another disk.
    for (days, named) in [
        (&[2, 1][..], ["d1.diff", "d2.diff"]),
        (&[1, 3], ["d3.diff", "d1.diff"]),
        (&[2], ["d2.diff", "day0.img"]),
    ] {
        let stderr = refused(week.restore_one_pass(&[], days, "new.img"));
        for name in named {
            assert!(stderr.contains(name), "{days:?}: {stderr}");
        }
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert_eq!(week.names(), before, "{days:?}: something was left behind");
    }

    // FULL that is not the chain's base: nothing appears under the new name.
    let stderr = refused(week.run(&["restore", "--base", "day1.img", "d1.diff", "new.img"]));
    assert!(
        stderr.contains("refusing FULL: day1.img") && stderr.contains("nothing was left"),
        "{stderr}"
    );
    assert_eq!(week.names(), before);

    // Into an existing file (given --force), the same mistake is reported as having written it.
    fs::write(week.path("existing.img"), vec![0u8; IMAGE_SIZE]).unwrap();
    let stderr = failed_after_writing(week.run(&[
        "restore",
        "--force",
        "--base",
        "day1.img",
        "d1.diff",
        "existing.img",
    ]));
    assert!(
        stderr.ends_with("; existing.img: written whole, and it does not hold the image\n"),
        "{stderr}"
    );

    // An existing target of another size is refused before anything is written.
    fs::write(week.path("small.img"), vec![7u8; 4096]).unwrap();
    week.restore_one_pass(&["--force"], &[1], "small.img")
        .failure()
        .code(1);
    assert_eq!(fs::read(week.path("small.img")).unwrap(), vec![7u8; 4096]);
}

#[test]
fn backup_on_a_chain_refuses_a_reffile_or_chain_that_does_not_link() {
    let week = Week::new("4");
    let before = week.names();
    let backup = |on: &[u32], reffile: &str| {
        let mut command = diff_dd();
        command.current_dir(week.work.path()).arg("backup");
        for day in on {
            command.arg("--on").arg(format!("d{day}.diff"));
        }
        command.args(["day3.img", reffile, "new.diff"]).assert()
    };
    // REFFILE is not the full image the chain starts from.
    let stderr = refused(backup(&[1, 2], "day1.img"));
    assert!(stderr.contains("refusing REFFILE: day1.img"), "{stderr}");
    // A link missing.
    let stderr = refused(backup(&[2], "day0.img"));
    assert!(stderr.contains("refusing REFFILE"), "{stderr}");
    let stderr = refused(backup(&[1, 3], "day0.img"));
    assert!(
        stderr.contains("refusing the chain: d3.diff") && stderr.contains("d1.diff"),
        "{stderr}"
    );
    assert_eq!(
        week.names(),
        before,
        "a refused backup left something behind"
    );
    // --on is for native diffs, and not a stream.
    diff_dd()
        .current_dir(week.work.path())
        .args(["backup", "--format", "v1", "--on", "d1.diff"])
        .args(["day2.img", "day0.img", "new.diff"])
        .assert()
        .failure()
        .code(2);
    diff_dd()
        .current_dir(week.work.path())
        .args(["backup", "--on", "-", "day2.img", "day0.img", "new.diff"])
        .assert()
        .failure()
        .code(2);
}

#[test]
fn inspect_shows_where_a_diff_sits_in_a_chain() {
    let week = Week::new("4");
    let listing = |day: u32| {
        let output = diff_dd()
            .args(["inspect", "--json"])
            .arg(week.path(&format!("d{day}.diff")))
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    for day in 2..=3 {
        assert_eq!(
            listing(day)["base_blake3"],
            listing(day - 1)["image_blake3"],
            "d{day}.diff does not continue d{}.diff",
            day - 1
        );
    }
    let image = listing(1)["image_blake3"].as_str().unwrap().to_string();
    let text = diff_dd()
        .arg("inspect")
        .arg(week.path("d2.diff"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let link = text
        .lines()
        .find(|line| line.starts_with("chain link:"))
        .unwrap_or_else(|| panic!("no chain link line: {text}"));
    assert!(link.contains(&format!("{}... ->", &image[..16])), "{link}");
}

#[test]
fn a_chain_restored_in_place_reruns_and_refuses_the_wrong_target() {
    let week = Week::new("4");
    let restore = |target: &str| {
        diff_dd()
            .current_dir(week.work.path())
            .args(["-v", "restore", "d1.diff", "d2.diff", "d3.diff", target])
            .assert()
    };
    fs::write(week.path("t.img"), &week.days[0]).unwrap();
    restore("t.img").success();
    assert!(fs::read(week.path("t.img")).unwrap() == week.days[3]);
    let rerun = restore("t.img").success();
    let stderr = String::from_utf8_lossy(&rerun.get_output().stderr).into_owned();
    assert!(stderr.contains(" 0 written"), "{stderr}");

    // What a killed restore leaves: any of the chain's segments written, one torn. Here the
    // first half of the image is the last day's already, with a page-aligned cut.
    let mut killed = week.days[0].clone();
    let cut = IMAGE_SIZE / 2 / 4096 * 4096;
    killed[..cut].copy_from_slice(&week.days[3][..cut]);
    fs::write(week.path("k.img"), &killed).unwrap();
    restore("k.img").success();
    assert!(fs::read(week.path("k.img")).unwrap() == week.days[3]);

    // A target that differs from the full image where the chain does not write is refused,
    // with nothing written.
    let mut wrong = week.days[0].clone();
    // A sector no day changed, so no record covers it.
    let sector = |day: usize, at: usize| &week.days[day][at * 512..(at + 1) * 512];
    let untouched = (0..IMAGE_SIZE / 512)
        .rev()
        .find(|&at| (1..=3).all(|day| sector(day, at) == sector(0, at)))
        .unwrap()
        * 512;
    wrong[untouched] ^= 1;
    fs::write(week.path("w.img"), &wrong).unwrap();
    let stderr = refused(restore("w.img"));
    assert!(
        stderr.contains("wrong target: w.img") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    assert!(fs::read(week.path("w.img")).unwrap() == wrong);

    // Out of order: refused before the target is read.
    let stderr = refused(week.run(&["restore", "d2.diff", "d1.diff", "t.img"]));
    assert!(stderr.contains("refusing the chain: d1.diff"), "{stderr}");
}

#[test]
fn a_merged_chain_restores_and_verifies_like_the_chain() {
    let week = Week::new("4");
    let merge = |options: &[&str], days: &[u32], out: &str| {
        diff_dd()
            .current_dir(week.work.path())
            .env("SOURCE_DATE_EPOCH", "0")
            .arg("merge")
            .args(options)
            .args(week.diffs(days))
            .arg(out)
            .assert()
    };
    // These days overlap: the diffs alone do not hold the base bytes of every segment.
    let stderr = refused(merge(&[], &[1, 2, 3], "week.diff"));
    assert!(stderr.contains("--base FULL"), "{stderr}");
    assert!(!week.path("week.diff").exists());

    merge(&["--base", "day0.img"], &[1, 2, 3], "week.diff")
        .success()
        .stderr("");
    // Restored in place onto the full image like any diff: its base hashes are right.
    fs::write(week.path("t.img"), &week.days[0]).unwrap();
    diff_dd()
        .arg(week.path("week.diff"))
        .arg(week.path("t.img"))
        .assert()
        .success();
    assert!(fs::read(week.path("t.img")).unwrap() == week.days[3]);
    for (target, state) in [("day0.img", "base"), ("day3.img", "restored")] {
        diff_dd()
            .current_dir(week.work.path())
            .args(["verify", "--expect", state, "week.diff", target])
            .assert()
            .success();
    }
    // The chain's hashes: the first diff's base, the last diff's image.
    let listing = |name: &str| {
        let output = diff_dd()
            .args(["inspect", "--json"])
            .arg(week.path(name))
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    assert_eq!(
        listing("week.diff")["base_blake3"],
        listing("d1.diff")["base_blake3"]
    );
    assert_eq!(
        listing("week.diff")["image_blake3"],
        listing("d3.diff")["image_blake3"]
    );
    // A merge of one diff, which needs no FULL, holds what it does.
    merge(&[], &[1], "one.diff").success();
    fs::write(week.path("t.img"), &week.days[0]).unwrap();
    diff_dd()
        .arg(week.path("one.diff"))
        .arg(week.path("t.img"))
        .assert()
        .success();
    assert!(fs::read(week.path("t.img")).unwrap() == week.days[1]);
}

#[test]
fn a_chain_of_diffs_that_do_not_overlap_merges_without_the_full_image() {
    let work = tempfile::tempdir().unwrap();
    let path = |name: &str| work.path().join(name);
    let mut random = Random(77);
    let mut days = vec![random.bytes(1 << 20)];
    for (day, offset) in [(1, 4096usize), (2, 300_000), (3, 700_000)] {
        let mut image = days[days.len() - 1].clone();
        image[offset..offset + 50_000].copy_from_slice(&random.bytes(50_000));
        fs::write(path(&format!("day{day}.img")), &image).unwrap();
        days.push(image);
    }
    fs::write(path("day0.img"), &days[0]).unwrap();
    for day in 1..=3 {
        let mut backup = diff_dd();
        backup.current_dir(work.path()).arg("backup");
        for earlier in 1..day {
            backup.arg("--on").arg(format!("d{earlier}.diff"));
        }
        backup
            .args([
                format!("day{day}.img"),
                "day0.img".into(),
                format!("d{day}.diff"),
            ])
            .assert()
            .success();
    }
    diff_dd()
        .current_dir(work.path())
        .args(["merge", "d1.diff", "d2.diff", "d3.diff", "all.diff"])
        .assert()
        .success();
    fs::write(path("t.img"), &days[0]).unwrap();
    diff_dd()
        .current_dir(work.path())
        .args(["restore", "all.diff", "t.img"])
        .assert()
        .success();
    assert!(fs::read(path("t.img")).unwrap() == days[3]);
    // An OUTFILE that is not a diff is not replaced.
    fs::write(path("notes.txt"), b"keep me").unwrap();
    diff_dd()
        .current_dir(work.path())
        .args(["merge", "d1.diff", "d2.diff", "notes.txt"])
        .assert()
        .failure()
        .code(1);
    assert_eq!(fs::read(path("notes.txt")).unwrap(), b"keep me");
}

#[test]
fn a_diff_as_one_pass_target_and_a_wrong_full_for_merge_are_refused() {
    let week = Week::new("4");
    // OUTFILE left out: the last diff would be the target.
    let before = fs::read(week.path("d2.diff")).unwrap();
    let stderr = refused(week.run(&["restore", "--base", "day0.img", "d1.diff", "d2.diff"]));
    assert!(stderr.contains("it is a diff"), "{stderr}");
    assert_eq!(fs::read(week.path("d2.diff")).unwrap(), before);

    // A FULL of the right size that is not the chain's base.
    let stderr = refused(week.run(&[
        "merge", "--base", "day2.img", "d1.diff", "d2.diff", "m.diff",
    ]));
    assert!(stderr.contains("refusing FULL: day2.img"), "{stderr}");
    assert!(!week.path("m.diff").exists());
}

#[test]
fn a_damaged_diff_on_a_target_of_the_wrong_size_is_reported_as_damaged() {
    let week = Week::new("none");
    let mut diff = fs::read(week.path("d1.diff")).unwrap();
    let middle = diff.len() / 2;
    diff[middle] ^= 0x10;
    fs::write(week.path("bad.diff"), &diff).unwrap();
    fs::write(week.path("small.img"), vec![0u8; 8192]).unwrap();
    let stderr = refused(week.run(&["restore", "bad.diff", "small.img"]));
    assert!(stderr.contains("invalid diff: bad.diff"), "{stderr}");
}
