//! The format as man/diff-dd.5 states it, where a reader could go wrong: telling a damaged
//! native diff from a v1 diff, the torn-record exception, empty and extreme legacy diffs.

use std::fs;

use crate::util::{repository, Fixture, Random};

/// The text of the section of man/diff-dd.5 titled `title`, as a reader sees it: macros and
/// escapes gone, lines joined, so that a sentence can be looked for whole.
fn page_section(title: &str) -> String {
    let page = fs::read_to_string(repository().join("man/diff-dd.5")).unwrap();
    let start = page
        .find(&format!(".SH {title}\n"))
        .unwrap_or_else(|| panic!("man/diff-dd.5 has no section {title}"));
    let section = &page[start..];
    let end = section[1..]
        .find("\n.SH ")
        .map_or(section.len(), |end| end + 1);
    let mut text = Vec::new();
    for line in section[..end].lines().skip(1) {
        let line = match line.split_once(' ') {
            Some((".B" | ".I" | ".BR" | ".IR" | ".RB" | ".RI", rest)) => rest.replace('"', ""),
            _ if line.starts_with('.') => continue,
            _ => line.to_string(),
        };
        text.push(
            line.replace("\\-", "-")
                .replace("\\(ha", "^")
                .replace("\\(<=", "<=")
                .replace("\\fR", "")
                .replace("\\fI", ""),
        );
    }
    text.join(" ")
}

/// How a record of [`native_diff`] stores its data.
#[derive(Clone)]
enum StoredAs {
    Raw,
    Zero,
    /// These bytes, meant to be a zstd frame of the data.
    Zstd(Vec<u8>),
    /// Raw, with the base hash over blocks of this size (variant 4).
    RawOverBlocks(u64),
    /// Zero (variant 5) and compressed (variant 6, these bytes) over blocks of this size.
    ZeroOverBlocks(u64),
    ZstdOverBlocks(u64, Vec<u8>),
}

/// The base hash of a record over blocks, as man/diff-dd.5 (Records) defines it: BLAKE3 of the
/// blocks' values one after the other, each block's chaining value at its position in the
/// image, or for an image of one block its BLAKE3.
fn base_over_blocks(image: &[u8], offset: u64, length: u64, block_size: u64) -> blake3::Hash {
    use blake3::hazmat::HasherExt;
    let mut values = blake3::Hasher::new();
    let mut at = offset;
    while at < offset + length {
        let end = (at + block_size).min(offset + length);
        let block = &image[at as usize..end as usize];
        if image.len() as u64 <= block_size {
            values.update(blake3::hash(block).as_bytes());
        } else {
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(at);
            hasher.update(block);
            values.update(&hasher.finalize_non_root());
        }
        at = end;
    }
    values.finalize()
}

/// A native diff of new.img against base.img, built byte by byte as man/diff-dd.5 lays it
/// out (compressed records allowed), from `(offset, length, stored)` records: so that a
/// test can store what diff-dd would never write, with every hash right.
fn native_diff(fixture: &Fixture, sector_size: u64, records: &[(u64, u64, StoredAs)]) -> Vec<u8> {
    native_diff_made_by("test", fixture, sector_size, records)
}

/// [`native_diff`], with `tool_version` as the version of diff-dd its header says made it.
fn native_diff_made_by(
    tool_version: &str,
    fixture: &Fixture,
    sector_size: u64,
    records: &[(u64, u64, StoredAs)],
) -> Vec<u8> {
    let framed = |payload: Vec<u8>| {
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend(payload);
        frame
    };
    let mut diff = b"diff-dd image\x03".to_vec();
    let mut header = Vec::new();
    for field in [sector_size, fixture.new.len() as u64, 4 << 20, 0] {
        header.extend(field.to_le_bytes());
    }
    header.extend((tool_version.len() as u64).to_le_bytes());
    header.extend(tool_version.as_bytes());
    header.extend(1u32.to_le_bytes());
    diff.extend(framed(header));
    let mut changed_bytes = 0;
    for (offset, length, stored) in records {
        let range = *offset as usize..(offset + length) as usize;
        let mut record = Vec::new();
        let variant: u32 = match stored {
            StoredAs::Raw => 0,
            StoredAs::Zero => 2,
            StoredAs::Zstd(_) => 3,
            StoredAs::RawOverBlocks(_) => 4,
            StoredAs::ZeroOverBlocks(_) => 5,
            StoredAs::ZstdOverBlocks(..) => 6,
        };
        record.extend(variant.to_le_bytes());
        record.extend(offset.to_le_bytes());
        record.extend(length.to_le_bytes());
        if let StoredAs::Zstd(frame) | StoredAs::ZstdOverBlocks(_, frame) = stored {
            record.extend((frame.len() as u64).to_le_bytes());
        }
        if let StoredAs::RawOverBlocks(block_size)
        | StoredAs::ZeroOverBlocks(block_size)
        | StoredAs::ZstdOverBlocks(block_size, _) = stored
        {
            record.extend(block_size.to_le_bytes());
        }
        record.extend(blake3::hash(&fixture.new[range.clone()]).as_bytes());
        let base = match stored {
            StoredAs::RawOverBlocks(block_size)
            | StoredAs::ZeroOverBlocks(block_size)
            | StoredAs::ZstdOverBlocks(block_size, _) => {
                base_over_blocks(&fixture.base, *offset, *length, *block_size)
            }
            _ => blake3::hash(&fixture.base[range.clone()]),
        };
        record.extend(base.as_bytes());
        diff.extend(framed(record));
        match stored {
            StoredAs::Raw | StoredAs::RawOverBlocks(_) => diff.extend(&fixture.new[range]),
            StoredAs::Zero | StoredAs::ZeroOverBlocks(_) => {}
            StoredAs::Zstd(frame) | StoredAs::ZstdOverBlocks(_, frame) => diff.extend(frame),
        }
        changed_bytes += length;
    }
    let trailer_offset = diff.len() as u64;
    let mut trailer = 1u32.to_le_bytes().to_vec();
    trailer.extend((records.len() as u64).to_le_bytes());
    trailer.extend(changed_bytes.to_le_bytes());
    trailer.extend(blake3::hash(&fixture.base).as_bytes());
    trailer.extend(blake3::hash(&fixture.new).as_bytes());
    trailer.extend(blake3::hash(&diff).as_bytes());
    let trailer = framed(trailer);
    diff.extend(&trailer);
    diff.extend(trailer_offset.to_le_bytes());
    diff.extend(blake3::hash(&trailer).as_bytes());
    diff.extend(b"diff-dd\x03");
    diff
}

/// A native diff of one record of `changed` bytes (-s 1), which is `expected_size` bytes:
/// sizes a v1 reader would take (8 + 512, 8 + 4096).
fn native_diff_of_size(changed: usize, expected_size: usize) -> (Fixture, Vec<u8>) {
    let base = Random(31).bytes(8192);
    let mut new = base.clone();
    for byte in &mut new[100..100 + changed] {
        *byte = !*byte;
    }
    let fixture = Fixture::new(base, new);
    fixture.backup(&["-s", "1", "-b", "4K"], "d.diff");
    let diff = fs::read(fixture.path("d.diff")).unwrap();
    assert_eq!(
        diff.len(),
        expected_size,
        "the diff is not the size a v1 reader takes"
    );
    (fixture, diff)
}

#[test]
fn a_native_diff_with_a_damaged_signature_is_never_read_as_v1() {
    // 520 = 8 + 512 and 4104 = 8 + 4096: sizes of one v1 record at -s 512 and -s 4096.
    for (changed, size, sector) in [(197, 520, "512"), (3781, 4104, "4096")] {
        let (fixture, diff) = native_diff_of_size(changed, size);
        let target = fixture.target("t.img");
        for byte in 0..13 {
            for bit in 0..8 {
                let mut damaged = diff.clone();
                damaged[byte] ^= 1 << bit;
                fs::write(fixture.path("bad.diff"), &damaged).unwrap();
                let label = format!("{size}-byte diff, byte {byte} bit {bit}");
                for (arguments, code) in [
                    (vec!["verify", "-s", sector, "bad.diff"], 3),
                    (vec!["inspect", "-s", sector, "bad.diff"], 3),
                    (vec!["restore", "-s", sector, "bad.diff", "t.img"], 1),
                ] {
                    let output = fixture.command().args(&arguments).output().unwrap();
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    assert_eq!(
                        output.status.code(),
                        Some(code),
                        "{label}: {arguments:?}: {stderr}"
                    );
                    assert!(stderr.contains("signature is damaged"), "{label}: {stderr}");
                }
                assert!(
                    fs::read(&target).unwrap() == fixture.base,
                    "{label}: the target changed"
                );
            }
        }
    }
}

#[test]
fn the_footer_alone_marks_a_native_diff() {
    let (fixture, diff) = native_diff_of_size(197, 520);
    let mut no_signature = diff.clone();
    no_signature[..13].fill(0);
    // Without the end mark too: the footer's trailer offset still points at the trailer.
    let mut no_end_mark = no_signature.clone();
    let last = no_end_mark.len() - 1;
    no_end_mark[last] ^= 0xff;
    for (name, damaged, mark) in [
        ("no-signature.diff", no_signature, "end mark"),
        ("no-end-mark.diff", no_end_mark, "points at a trailer frame"),
    ] {
        fs::write(fixture.path(name), &damaged).unwrap();
        let output = fixture.command().args(["verify", name]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{name}: {stderr}");
        assert!(
            stderr.contains(mark) && stderr.contains("signature is damaged"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn new_data_after_a_torn_looking_record_blames_that_record() {
    let base = Random(32).bytes(64 << 10);
    let mut new = base.clone();
    for range in [100..200, 8192..16384, 40000..40100] {
        for byte in &mut new[range] {
            *byte = !*byte;
        }
    }
    let fixture = Fixture::new(base.clone(), new.clone());
    fixture.backup(&[], "d.diff");
    // Extent 0 restored, extent 1 new up to its first page boundary and base after (as a
    // killed restore tears it), extent 2 restored: impossible after a kill, since restore
    // writes in order.
    let mut target = base;
    target[0..512].copy_from_slice(&new[0..512]);
    target[8192..12288].copy_from_slice(&new[8192..12288]);
    target[39936..40448].copy_from_slice(&new[39936..40448]);
    fs::write(fixture.path("t.img"), &target).unwrap();
    let output = fixture
        .command()
        .args(["d.diff", "t.img"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("at byte 8192 (extent 1)")
            && stderr.contains("extent 2 after it already holds its new data")
            && stderr.contains("nothing was written"),
        "{stderr}"
    );
    assert!(fs::read(fixture.path("t.img")).unwrap() == target);
}

#[test]
fn an_empty_v2_diff_is_the_diff_of_identical_images() {
    let fixture = Fixture::new(Random(33).bytes(4096), Random(33).bytes(4096));
    fs::write(fixture.path("empty-v2.diff"), b"diff-dd image\x02").unwrap();
    let output = fixture
        .command()
        .args(["inspect", "--json", "empty-v2.diff"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (listing["format"].as_str(), listing["extent_count"].as_u64()),
        (Some("v2"), Some(0))
    );
    fixture.assert_restores("empty-v2.diff");
}

#[test]
fn a_legacy_record_may_end_at_2_63_minus_1_without_a_target() {
    let fixture = Fixture::new(vec![0; 512], vec![0; 512]);
    let bound = (1u64 << 63) - 1;
    // (format, diff of one record ending at `end`)
    let v1 = |end: u64| {
        let mut diff = (end - 512).to_le_bytes().to_vec();
        diff.extend([7u8; 512]);
        diff
    };
    let v2 = |end: u64| {
        let mut diff = b"diff-dd image\x02".to_vec();
        diff.extend((end - 10).to_be_bytes());
        diff.extend(10u32.to_be_bytes());
        diff.extend([7u8; 10]);
        diff
    };
    for (format, diff) in [("v1", &v1 as &dyn Fn(u64) -> Vec<u8>), ("v2", &v2)] {
        for (end, code) in [(bound, 0), (bound + 1, 3)] {
            fs::write(fixture.path("far.diff"), diff(end)).unwrap();
            let output = fixture
                .command()
                .args(["inspect", "far.diff"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(code),
                "{format}, end {end}: {stderr}"
            );
            if code != 0 {
                assert!(stderr.contains("beyond any device"), "{stderr}");
            }
        }
    }
    for section in [
        "VERSION 1 (ORIGINAL C TOOL)",
        "VERSION 2 (ORIGINAL C++ TOOL)",
    ] {
        let text = page_section(section);
        assert!(text.contains("at most 2^63-1"), "{section}: {text}");
        assert!(
            text.contains("ending past that is refused") && text.contains("exactly there"),
            "{section}: {text}"
        );
    }
}

#[test]
fn a_diff_dd_image_of_another_version_is_refused() {
    let fixture = Fixture::new(vec![0; 512], vec![0; 512]);
    for version in [0u8, 1, 4, 255] {
        let mut diff = b"diff-dd image".to_vec();
        diff.push(version);
        diff.extend([0u8; 100]);
        fs::write(fixture.path("other.diff"), &diff).unwrap();
        let output = fixture
            .command()
            .args(["verify", "other.diff"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        let expected =
            format!("a diff-dd image of version {version}, which this version cannot read");
        assert!(stderr.contains(&expected), "{stderr}");
    }
}

/// base.img and new.img of 8 KiB, new.img with a compressible run at 512..1536 and zeros at
/// 4096..4608.
fn compressible_pair() -> Fixture {
    let base = Random(34).bytes(8192);
    let mut new = base.clone();
    for (at, byte) in new[512..1536].iter_mut().enumerate() {
        *byte = b"restore only what was checked "[at % 30];
    }
    new[4096..4608].fill(0);
    Fixture::new(base, new)
}

/// `data` as one zstd frame at level 3, with or without its content size.
fn zstd_frame(data: &[u8], content_size: bool) -> Vec<u8> {
    let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
    compressor
        .set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(content_size))
        .unwrap();
    compressor.compress(data).unwrap()
}

#[test]
fn a_diff_built_from_the_page_alone_restores() {
    let fixture = compressible_pair();
    let run = &fixture.new[512..1536];
    let diff = native_diff(
        &fixture,
        512,
        &[
            (0, 512, StoredAs::Raw),
            (512, 1024, StoredAs::Zstd(zstd_frame(run, true))),
            (4096, 512, StoredAs::Zero),
        ],
    );
    let (output, after) = fixture.restore("page", &diff, &fixture.base);
    assert!(output.status.success(), "{output:?}");
    assert!(after == fixture.new, "restore did not rebuild new.img");
    // Variants 0, 2 and 3 are records, 1 the trailer; data_encoding 1 allows compression.
    let validity = page_section("VALIDITY");
    assert!(
        validity.contains("the variant is 0 (raw record), 1 (trailer), 2 (zero record), 3 (compressed record), or 4, 5 or 6 (the same over blocks), data_encoding is 0 or 1"),
        "{validity}"
    );
}

#[test]
fn a_record_over_blocks_built_from_the_page_alone_restores() {
    let base = Random(35).bytes(3 * 4096 + 100);
    let mut new = base.clone();
    new[5000] ^= 1;
    new[12_300] ^= 1;
    let fixture = Fixture::new(base, new);
    let diff = native_diff(
        &fixture,
        512,
        &[
            (4096, 4096, StoredAs::RawOverBlocks(4096)),
            (8192, 4196, StoredAs::RawOverBlocks(4096)),
        ],
    );
    let (output, after) = fixture.restore("blocks", &diff, &fixture.base);
    assert!(output.status.success(), "{output:?}");
    assert!(after == fixture.new, "restore did not rebuild new.img");
    // Variants 5 and 6: zeros, and one zstd frame, over blocks.
    let base = Random(37).bytes(4 * 4096);
    let mut new = base.clone();
    new[0..4096].fill(0);
    for (at, byte) in new[8192..16_384].iter_mut().enumerate() {
        *byte = b"over blocks "[at % 12];
    }
    let fixture = Fixture::new(base, new);
    let frame = zstd_frame(&fixture.new[8192..16_384], true);
    let diff = native_diff(
        &fixture,
        512,
        &[
            (0, 4096, StoredAs::ZeroOverBlocks(4096)),
            (8192, 8192, StoredAs::ZstdOverBlocks(8192, frame)),
        ],
    );
    let (output, after) = fixture.restore("zstd-blocks", &diff, &fixture.base);
    assert!(output.status.success(), "{output:?}");
    assert!(after == fixture.new, "restore did not rebuild new.img");
    // An image of one block: the value is the image's BLAKE3.
    let base = Random(36).bytes(3000);
    let mut new = base.clone();
    new[10] ^= 1;
    let fixture = Fixture::new(base, new);
    let diff = native_diff(&fixture, 512, &[(0, 3000, StoredAs::RawOverBlocks(4096))]);
    let (output, after) = fixture.restore("one", &diff, &fixture.base);
    assert!(output.status.success(), "{output:?}");
    assert!(after == fixture.new, "restore did not rebuild new.img");
}

#[test]
fn a_compressed_record_that_is_not_exactly_one_plain_zstd_frame_is_refused() {
    let fixture = compressible_pair();
    let run = &fixture.new[512..1536];
    let frame = zstd_frame(run, true);
    let half = zstd_frame(&run[..512], false);
    let mut skippable = 0x184D_2A50u32.to_le_bytes().to_vec();
    skippable.extend(4u32.to_le_bytes());
    skippable.extend(b"skip");
    skippable.extend(&frame);
    // A one-byte dictionary ID after the descriptor of a single-segment frame.
    assert_eq!(
        frame[4] & 0x23,
        0x20,
        "not a single-segment frame without dictionary"
    );
    let mut dictionary = frame[..5].to_vec();
    dictionary[4] |= 0x01;
    dictionary.push(7);
    dictionary.extend(&frame[5..]);
    // 2^24 bytes in the window descriptor of a frame without a content size.
    let mut large_window = zstd_frame(run, false);
    large_window[5] = 14 << 3;
    let empty = zstd_frame(&[], true);
    for (label, stored, reason) in [
        ("skippable", skippable, "skippable frame"),
        (
            "two-frames",
            [&half[..], &half].concat(),
            "follow its zstd frame",
        ),
        (
            "empty-frame-after",
            [&frame[..], &empty].concat(),
            "follow its zstd frame",
        ),
        ("dictionary", dictionary, "needs dictionary 7"),
        (
            "window",
            large_window,
            "window of 16777216 bytes, more than 8 MiB",
        ),
    ] {
        let diff = native_diff(&fixture, 512, &[(512, 1024, StoredAs::Zstd(stored))]);
        let (output, after) = fixture.restore(label, &diff, &fixture.base);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{label}: {stderr}");
        assert!(stderr.contains(reason), "{label}: {stderr}");
        assert!(after == fixture.base, "{label}: the target changed");
        fs::write(fixture.path("bad.diff"), &diff).unwrap();
        let output = fixture
            .command()
            .args(["verify", "bad.diff"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{label}: verify: {stderr}");
    }
    let validity = page_section("VALIDITY");
    assert!(
        validity.contains("A restore refused for any reason on this page exits with status 1"),
        "{validity}"
    );
}

#[test]
fn a_file_too_short_for_the_version_byte_is_a_diff_cut_short_or_v1() {
    let fixture = Fixture::new(vec![0; 4096], vec![0; 4096]);
    // "diff-dd i" at -s 1 has the size of one v1 record, at an offset of about 2^61.
    for length in [1, 9, 12, 13] {
        fs::write(fixture.path("short.diff"), &b"diff-dd image"[..length]).unwrap();
        for (arguments, code) in [
            (vec!["inspect", "-s", "1", "short.diff"], 3),
            (vec!["verify", "-s", "1", "short.diff"], 3),
            (vec!["restore", "-s", "1", "short.diff", "t.img"], 1),
        ] {
            let target = fixture.target("t.img");
            let output = fixture.command().args(&arguments).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(code),
                "{length} bytes: {arguments:?}: {stderr}"
            );
            assert!(
                stderr.contains(&format!("{length} bytes long")) && stderr.contains("cut short"),
                "{length} bytes: {stderr}"
            );
            assert!(
                fs::read(target).unwrap() == fixture.base,
                "the target changed"
            );
        }
    }
    // Anything else that short is a v1 diff, or none: 12 bytes are one record at -s 4.
    let mut v1 = 8u64.to_le_bytes().to_vec();
    v1.extend(b"data");
    fs::write(fixture.path("short.diff"), &v1).unwrap();
    let output = fixture
        .command()
        .args(["inspect", "--json", "-s", "4", "short.diff"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["format"].as_str(), Some("v1"));
    let detection = page_section("DETECTION");
    assert!(
        detection.contains("(the 13, or fewer) is a diff cut short, and is refused"),
        "{detection}"
    );
}

#[test]
fn the_footer_s_trailer_offset_is_compared_never_followed() {
    let (fixture, diff) = native_diff_of_size(197, 520);
    let footer = diff.len() - 48;
    let trailer = u64::from_le_bytes(diff[footer..][..8].try_into().unwrap());
    for offset in [0, trailer - 1, trailer + 1, diff.len() as u64, u64::MAX] {
        let mut damaged = diff.clone();
        damaged[footer..][..8].copy_from_slice(&offset.to_le_bytes());
        fs::write(fixture.path("bad.diff"), &damaged).unwrap();
        let output = fixture
            .command()
            .args(["verify", "bad.diff"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{offset}: {stderr}");
        assert!(
            stderr.contains("the footer does not point at the trailer"),
            "{offset}: {stderr}"
        );
        let (output, after) = fixture.restore("bad", &damaged, &fixture.base);
        assert_eq!(output.status.code(), Some(1), "{offset}: {output:?}");
        assert!(after == fixture.base, "{offset}: the target changed");
    }
    // Without signature and end mark, an offset out of range marks nothing: the 520 bytes
    // are then a v1 record at -s 512, as the page says a damaged diff can be.
    let mut unmarked = diff.clone();
    unmarked[..13].fill(0);
    let last = unmarked.len() - 1;
    unmarked[last] ^= 0xff;
    unmarked[footer..][..8].copy_from_slice(&u64::MAX.to_le_bytes());
    fs::write(fixture.path("unmarked.diff"), &unmarked).unwrap();
    let output = fixture
        .command()
        .args(["inspect", "--json", "unmarked.diff"])
        .output()
        .unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["format"].as_str(), Some("v1"), "{output:?}");
    let validity = page_section("VALIDITY");
    assert!(
        validity.contains("any other offset, before the trailer, after it or past the end of the file, is refused"),
        "{validity}"
    );
    let detection = page_section("DETECTION");
    assert!(
        detection.contains("points at no frame and marks nothing"),
        "{detection}"
    );
}

#[test]
fn a_v1_or_v2_diff_is_no_link_of_a_chain() {
    let fixture = Fixture::vectors();
    let native = crate::util::vector("native/v3-s512.diff");
    fs::copy(native, fixture.path("native.diff")).unwrap();
    for legacy in ["legacy/v1-s512.diff", "legacy/v2.diff"] {
        fs::copy(crate::util::vector(legacy), fixture.path("old.diff")).unwrap();
        let target = fixture.target("t.img");
        let attempts: [&[&str]; 4] = [
            &["restore", "native.diff", "old.diff", "t.img"],
            &["restore", "--base", "base.img", "old.diff", "out.img"],
            &["merge", "old.diff", "merged.diff"],
            &[
                "backup",
                "--on",
                "old.diff",
                "new.img",
                "base.img",
                "next.diff",
            ],
        ];
        for arguments in attempts {
            let output = fixture.command().args(arguments).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{arguments:?}: {stderr}");
            assert!(
                stderr.contains("only native diffs hold"),
                "{arguments:?}: {stderr}"
            );
            assert!(
                fs::read(&target).unwrap() == fixture.base,
                "the target changed"
            );
        }
        let names = ["base.img", "native.diff", "new.img", "old.diff", "t.img"];
        assert_eq!(fixture.names(), names, "{legacy}: a refusal left a file");
    }
    let chains = page_section("CHAINS");
    assert!(
        chains.contains("So every link is a version 3 diff: versions 1 and 2 hold no hashes, and a chain that holds one is refused"),
        "{chains}"
    );
}

/// Text in a diff is outside data: a tool version crafted to print a forged line, recolor the
/// terminal or reorder what follows reaches the terminal escaped, on one line.
#[test]
fn text_from_a_diff_reaches_the_terminal_escaped() {
    let fixture = Fixture::new(vec![0; 4096], vec![7; 4096]);
    let forged_hash = "0".repeat(64);
    let tool_version =
        format!("0.1.0\nimage blake3:      {forged_hash} (forged)\r\x1b[31m\u{202e}\u{9b}\x7f");
    let diff = native_diff_made_by(&tool_version, &fixture, 512, &[(0, 512, StoredAs::Raw)]);
    fs::write(fixture.path("crafted.diff"), diff).unwrap();
    for verbose in [false, true] {
        let mut command = fixture.command();
        command.arg("inspect").arg("crafted.diff");
        if verbose {
            command.arg("-v");
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let listing = String::from_utf8(output.stdout).unwrap();
        assert!(
            !listing
                .chars()
                .any(|character| character != '\n' && character.is_control()
                    || character == '\u{202e}'),
            "a raw control character in: {listing:?}"
        );
        assert!(
            !listing
                .lines()
                .any(|line| line.contains("(forged)") && !line.starts_with("tool version:")),
            "a forged line in: {listing}"
        );
        let escaped = format!(
            "tool version:      diff-dd 0.1.0\\nimage blake3:      {forged_hash} (forged)\\r\\u{{1b}}[31m\\u{{202e}}\\u{{9b}}\\u{{7f}}\n"
        );
        assert!(listing.contains(&escaped), "{listing}");
    }
    // JSON keeps the text as it is, escaped by JSON itself.
    let output = fixture
        .command()
        .args(["inspect", "--json", "crafted.diff"])
        .output()
        .unwrap();
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listing["tool_version"], tool_version.as_str());
}

/// A path is escaped in messages too: an error stays one line.
#[test]
fn a_path_with_control_characters_is_escaped_in_messages() {
    let fixture = Fixture::new(vec![0; 512], vec![0; 512]);
    let output = fixture
        .command()
        .args(["inspect", "no\nsuch\x1b[2J.diff"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("diff-dd: ") && stderr.contains("no\\nsuch\\u{1b}[2J.diff: "),
        "{stderr:?}"
    );
    assert_eq!(stderr.matches('\n').count(), 1, "{stderr:?}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}
