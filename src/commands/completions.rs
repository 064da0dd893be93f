//! completions: print a shell completion script, generated from the clap definitions.

use clap::CommandFactory;

use diff_dd::cli::Cli;
use diff_dd::error::Result;

pub fn run(shell: clap_complete::Shell) -> Result<()> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "diff-dd",
        &mut std::io::stdout(),
    );
    Ok(())
}
