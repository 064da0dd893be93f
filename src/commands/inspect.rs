//! inspect: list a diff on stdout as it is read, a table or one JSON document.

use std::io::{BufWriter, Write};
use std::path::Path;

use diff_dd::cli::Printing;
use diff_dd::device;
use diff_dd::error::{Result, Role};
use diff_dd::ops::{self, InspectOptions};
use diff_dd::render;

pub fn run(difffile: &Path, options: &InspectOptions, printing: Printing) -> Result<()> {
    let diff = device::open_input(difffile, Role::Diff)?;
    let mut listing = ops::inspect(&diff, options)?;
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let listed = render::write_listing(&mut listing, printing.json, &mut out);
    let flushed = out.flush().map_err(super::output_failed("the listing"));
    listed.and(flushed)
}
