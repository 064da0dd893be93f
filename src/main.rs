//! diff-dd: parse the command line, dispatch to a command, map the outcome to an exit code.

mod cli;
mod commands;
mod device;
mod engine;
mod format;
mod units;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{BackupArgs, Cli, Command, CommonOptions, RestoreArgs};

/// Exit codes, in one place.
mod exit {
    /// The work failed; nothing unfinished was left under a name that looks valid.
    pub const FAILURE: u8 = 1;
    /// The command line was wrong (clap exits with the same code for what it catches).
    pub const USAGE: u8 = 2;
}

fn main() -> ExitCode {
    let command = match Cli::parse() {
        Cli {
            command: Some(command),
            ..
        } => command,
        Cli { options, paths, .. } => from_original_synopsis(options, paths),
    };
    let options = match &command {
        Command::Backup(args) => &args.options,
        Command::Restore(args) => &args.options,
    };
    if let Err(message) = options.check_sizes() {
        let error = Cli::command().error(clap::error::ErrorKind::ValueValidation, message);
        let _ = error.print();
        return ExitCode::from(exit::USAGE);
    }
    let outcome = match &command {
        Command::Backup(args) => commands::backup::run(args),
        Command::Restore(args) => commands::restore::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("diff-dd: {error:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// `diff-dd INFILE REFFILE OUTFILE` backs up, `diff-dd DIFFFILE OUTFILE` restores. clap has
/// already made sure there are two or three paths.
fn from_original_synopsis(options: CommonOptions, paths: Vec<std::path::PathBuf>) -> Command {
    match <[_; 3]>::try_from(paths) {
        Ok([infile, reffile, outfile]) => Command::Backup(BackupArgs {
            options,
            infile,
            reffile,
            outfile,
        }),
        Err(paths) => match <[_; 2]>::try_from(paths) {
            Ok([difffile, outfile]) => Command::Restore(RestoreArgs {
                options,
                difffile,
                outfile,
            }),
            Err(_) => Cli::command()
                .error(
                    clap::error::ErrorKind::WrongNumberOfValues,
                    "give INFILE REFFILE OUTFILE to make a diff, or DIFFFILE OUTFILE to restore one",
                )
                .exit(),
        },
    }
}
