//! completions: print a shell completion script, generated from the clap definitions.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

pub fn run(args: &CompletionsArgs) -> Result<()> {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "diff-dd",
        &mut std::io::stdout(),
    );
    Ok(())
}
