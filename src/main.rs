//! diff-dd: parse the command line, dispatch to a command, map the outcome to an exit code.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use diff_dd::cli::{BackupArgs, Cli, Command, CommonOptions, RestoreArgs};
use diff_dd::{commands, exit};

fn main() -> ExitCode {
    let command = match Cli::parse() {
        Cli {
            command: Some(command),
            ..
        } => command,
        Cli { options, paths, .. } => from_original_synopsis(options, paths),
    };
    let options = match &command {
        Command::Backup(args) => Some(&args.options),
        Command::Restore(args) => Some(&args.options),
        Command::Verify(args) => Some(&args.options),
        Command::Inspect(_) | Command::Completions(_) => None,
    };
    if let Some(Err(message)) = options.map(CommonOptions::check_sizes) {
        let error = Cli::command().error(clap::error::ErrorKind::ValueValidation, message);
        let _ = error.print();
        return ExitCode::from(exit::USAGE);
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
