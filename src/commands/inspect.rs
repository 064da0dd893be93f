//! inspect: list a diff on stdout as it is read, a table or one JSON document (with --json
//! also when the diff cannot be opened). -q lists nothing: the exit status says whether the
//! whole diff could be listed. With --files, the audit of a chain by file
//! ([`ops::inspect_files`]).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use diff_dd::cli::Printing;
use diff_dd::device::{self, OpenFile};
use diff_dd::error::{Error, Result, Role};
use diff_dd::ops::inspect_files::Audit;
use diff_dd::ops::{self, InspectOptions};
use diff_dd::render;

use super::progress::Bars;

pub fn run(
    difffile: &Path,
    spool: &Path,
    options: &InspectOptions,
    printing: Printing,
) -> Result<()> {
    let mut out: Box<dyn Write> = if printing.quiet && !printing.json {
        Box::new(io::sink())
    } else {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()))
    };
    // Before the listing begins, a failure is all there is to say; with --json, as a document.
    let unlisted = |error: Error, out: &mut dyn Write| {
        if printing.json {
            render::write_listing_failure(difffile, &error, out)?;
            out.flush().map_err(super::output_failed("the listing"))?;
        }
        Err(error)
    };
    let diff = match super::open_diff(difffile, spool) {
        Ok(diff) => diff,
        Err(error) => return unlisted(error, &mut out),
    };
    let mut listing = match ops::inspect(&diff, options) {
        Ok(listing) => listing,
        Err(error) => return unlisted(error, &mut out),
    };
    let listed = render::write_listing(&mut listing, printing.style(), &mut out);
    let flushed = out.flush().map_err(super::output_failed("the listing"));
    listed.and(flushed)
}

/// inspect --files: audit the chain `difffiles` over `full` by file and print it; an image
/// without an ext2/3/4 filesystem is named on stderr (also with -q) and the diffs are listed
/// as plain inspect lists them, with exit status 0.
pub fn run_files(
    full: &Path,
    difffiles: &[PathBuf],
    spool: &Path,
    printing: Printing,
) -> Result<()> {
    let mut out: Box<dyn Write> = if printing.quiet && !printing.json {
        Box::new(io::sink())
    } else {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()))
    };
    let opened = difffiles
        .iter()
        .map(|path| super::open_diff(path, spool))
        .collect::<Result<Vec<OpenFile>>>()
        .and_then(|diffs| Ok((diffs, device::open_input(full, Role::Full)?)));
    let audited = opened.and_then(|(diffs, full_file)| {
        let bars = Bars::new(!printing.quiet && !printing.json);
        let refs: Vec<&OpenFile> = diffs.iter().collect();
        let report = ops::inspect_files(&full_file, &refs, &bars)?;
        Ok((diffs, report))
    });
    // Before the audit is written, a failure is all there is to say; with --json, as a
    // document.
    let unwritten = |error: Error, out: &mut dyn Write| {
        if printing.json {
            render::write_files_failure(full, difffiles, &error, out)?;
            out.flush().map_err(super::output_failed("the audit"))?;
        }
        Err(error)
    };
    let (diffs, report) = match audited {
        Ok(audited) => audited,
        Err(error) => return unwritten(error, &mut out),
    };
    let written = match &report.audit {
        Audit::Ext(_) => render::write_files(&report, printing.style(), &mut out),
        Audit::NoFilesystem(what) => {
            eprintln!(
                "diff-dd: inspect --files: {}: no ext2/3/4 filesystem in the image the diffs give ({}); listing the diffs by offset instead",
                render::printable(&full.to_string_lossy()),
                render::printable(what)
            );
            let options = InspectOptions {
                v1_sector_size: 512,
            };
            let listings = diffs
                .iter()
                .map(|diff| ops::inspect(diff, &options))
                .collect::<Result<Vec<_>>>();
            let mut listings = match listings {
                Ok(listings) => listings,
                Err(error) => return unwritten(error, &mut out),
            };
            render::files::write_without_filesystem(
                &report,
                &mut listings,
                printing.style(),
                &mut out,
            )
        }
    };
    let flushed = out.flush().map_err(super::output_failed("the audit"));
    written.and(flushed)
}
