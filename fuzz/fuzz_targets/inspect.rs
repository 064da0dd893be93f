//! The input is a diff file. `diff_dd::ops::inspect` and `diff_dd::render::write_listing`, the
//! code behind `diff-dd inspect`, list it as a table and as JSON, with the options inspect uses
//! (headers only, no target; v1 with a sector size from the first byte, as `-s` would give).
//!
//! Errors are expected, and are always `Error::InvalidDiff`. What must hold: no panic, no
//! single allocation over 1 MiB, the table and the JSON listing agree on whether the diff is
//! valid, and the JSON document is well-formed even when the diff is not: a summary with as
//! many extents as it counts, or an `error` field; nothing at all only when the diff was
//! refused before its first record (`ops::inspect` failed: its header cannot be read).

#![no_main]

mod common;

use std::cell::RefCell;
use std::io::{self, Write};

use diff_dd::device::OpenFile;
use diff_dd::error::{Error, Result};
use diff_dd::ops::{self, InspectOptions};
use diff_dd::render::{self, Style};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

thread_local! {
    /// The JSON listing, kept between runs so its capacity is reused.
    static JSON: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What `diff-dd inspect` does once the diff is open: `ops::inspect`, then the listing to
/// `out`. Returns whether `ops::inspect` opened the diff (so that something was written), and
/// the outcome.
fn list(
    diff: &OpenFile,
    options: &InspectOptions,
    json: bool,
    out: &mut dyn Write,
) -> (bool, Result<()>) {
    let result = match ops::inspect(diff, options) {
        Ok(mut listing) => {
            let style = if json {
                Style::Json
            } else {
                Style::VerboseText
            };
            (true, render::write_listing(&mut listing, style, out))
        }
        Err(error) => (false, Err(error)),
    };
    if let Err(error) = &result.1 {
        assert!(
            matches!(error, Error::InvalidDiff { .. }),
            "refused with an error other than InvalidDiff: {error:?}"
        );
    }
    result
}

fuzz_target!(|data: &[u8]| {
    let diff = common::diff_image(data);
    let options = InspectOptions {
        v1_sector_size: common::v1_sector_size(data),
    };
    let (_, table) = common::bounded("the table listing", || {
        list(&diff, &options, false, &mut io::sink())
    });
    let (_, json) = common::bounded("the JSON listing", || {
        list(&diff, &options, true, &mut io::sink())
    });
    assert_eq!(
        table.is_ok(),
        json.is_ok(),
        "table and JSON disagree: {table:?} vs {json:?}"
    );

    // The JSON listing again, kept this time (its buffer grows with the listing, so outside
    // the allocation bound), to check that it is well-formed.
    JSON.with_borrow_mut(|out| {
        out.clear();
        let (opened, result) = list(&diff, &options, true, out);
        assert_eq!(result.is_ok(), json.is_ok(), "two JSON listings disagree");
        if !opened {
            assert!(out.is_empty(), "output for a diff that could not be opened");
            return;
        }
        assert!(
            !out.is_empty(),
            "a diff opened for listing, listed as nothing"
        );
        let document: serde_json::Value = serde_json::from_slice(out).unwrap_or_else(|error| {
            panic!(
                "not well-formed JSON ({error}): {}",
                String::from_utf8_lossy(out)
            )
        });
        let extents = document["extents"].as_array().expect("an extents list");
        match result {
            Ok(()) => {
                let count = document["extent_count"].as_u64().expect("an extent_count");
                assert_eq!(
                    count,
                    extents.len() as u64,
                    "extent_count vs extents listed"
                );
                let changed: u64 = extents.iter().map(|e| e["length"].as_u64().unwrap()).sum();
                assert_eq!(document["changed_bytes"].as_u64(), Some(changed));
            }
            Err(_) => {
                assert!(
                    document["error"].is_string(),
                    "a refused diff without an error field"
                );
            }
        }
    });
});
