//! inspect: list a diff on stdout as it is read, a table or one JSON document (with --json
//! also when the diff cannot be opened). -q lists nothing: the exit status says whether the
//! whole diff could be listed.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use diff_dd::cli::Printing;
use diff_dd::error::{Error, Result};
use diff_dd::ops::{self, InspectOptions};
use diff_dd::render;

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
