//! diff-dd: parse the command line, dispatch to a command, map the outcome to an exit code.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use std::path::PathBuf;

use diff_dd::cli::{BackupArgs, Cli, Command, CommonOptions, DiffFormat, RestoreArgs};
use diff_dd::{commands, exit};

fn main() -> ExitCode {
    let command = match Cli::parse() {
        Cli {
            command: Some(command),
            ..
        } => command,
        Cli {
            options,
            format,
            paths,
            ..
        } => match from_original_synopsis(options, format, paths) {
            Ok(command) => command,
            Err(message) => return usage_error(message),
        },
    };
    let options = match &command {
        Command::Backup(args) => Some(&args.options),
        Command::Restore(args) => Some(&args.options),
        Command::Verify(args) => Some(&args.options),
        Command::Inspect(_) | Command::Completions(_) => None,
    };
    if let Some(Err(message)) = options.map(CommonOptions::check_sizes) {
        return usage_error(message);
    }
    let outcome = match &command {
        Command::Backup(args) => commands::backup::run(args),
        Command::Restore(args) => commands::restore::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Completions(args) => commands::completions::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(error) => {
            eprintln!("diff-dd: {error:#}");
            ExitCode::from(exit::code_of(&error))
        }
    }
}

/// Prints a usage error the way clap does, and gives its exit code.
fn usage_error(message: String) -> ExitCode {
    let error = Cli::command().error(clap::error::ErrorKind::ValueValidation, message);
    let _ = error.print();
    ExitCode::from(exit::USAGE)
}

/// `diff-dd INFILE REFFILE OUTFILE` backs up, `diff-dd DIFFFILE OUTFILE` restores. clap has
/// already made sure there are two or three paths.
fn from_original_synopsis(
    options: CommonOptions,
    format: Option<DiffFormat>,
    paths: Vec<PathBuf>,
) -> Result<Command, String> {
    match <[PathBuf; 3]>::try_from(paths) {
        Ok([infile, reffile, outfile]) => Ok(Command::Backup(BackupArgs {
            options,
            format,
            infile,
            reffile,
            outfile,
        })),
        Err(paths) => match <[PathBuf; 2]>::try_from(paths) {
            Ok(_) if format.is_some() => {
                Err("--format applies only to backup (three paths)".into())
            }
            Ok([difffile, outfile]) => Ok(Command::Restore(RestoreArgs {
                options,
                difffile,
                outfile,
            })),
            Err(_) => Err(
                "give INFILE REFFILE OUTFILE to make a diff, or DIFFFILE OUTFILE to restore one"
                    .into(),
            ),
        },
    }
}
