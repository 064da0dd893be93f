//! diff-dd: parse the command line, run the task, print what it returns, exit with its code.

mod commands;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use diff_dd::cli::Cli;
use diff_dd::error;

fn main() -> ExitCode {
    match Cli::parse().into_invocation() {
        Ok(invocation) => commands::run(invocation),
        Err(error) => {
            // Printed the way clap prints what it catches itself, with its exit code.
            let message = error.to_string();
            let error = Cli::command().error(clap::error::ErrorKind::ValueValidation, message);
            let _ = error.print();
            ExitCode::from(error::USAGE)
        }
    }
}
