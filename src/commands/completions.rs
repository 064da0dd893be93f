//! completions: print a shell completion script, generated from the clap definitions.

use std::io::Write;

use diff_dd::cli;
use diff_dd::error::Result;

pub fn run(shell: clap_complete::Shell) -> Result<()> {
    std::io::stdout()
        .write_all(&cli::completion_script(shell))
        .map_err(super::output_failed("the completion script"))
}
