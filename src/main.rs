//! diff-dd: parse the command line, run the task, print what it returns, exit with its code.

mod commands;

use std::process::ExitCode;

use clap::FromArgMatches;

use diff_dd::cli::{self, Cli};
use diff_dd::error;

fn main() -> ExitCode {
    keep_large_buffers_out_of_arenas();
    let matches = cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)
        .unwrap_or_else(|error| error.format(&mut cli::command()).exit());
    match cli.into_invocation() {
        Ok(invocation) => commands::run(invocation),
        Err(error) => {
            // The message can quote a path, which can hold control characters.
            let message = diff_dd::render::printable(&error.to_string()).into_owned();
            let error = usage_of(matches.subcommand_name())
                .error(clap::error::ErrorKind::ValueValidation, message);
            let _ = error.print();
            ExitCode::from(error::USAGE)
        }
    }
}

/// The command whose usage follows a usage error, as clap prints what it catches itself: the
/// subcommand's (`diff-dd restore [OPTIONS] <DIFFFILE>... <OUTFILE>`) when one was given.
fn usage_of(subcommand: Option<&str>) -> clap::Command {
    // Built, a subcommand knows the name it is called by, `diff-dd restore`.
    let command = cli::command();
    match subcommand {
        Some(name) => command.find_subcommand(name).cloned().unwrap_or(command),
        None => command,
    }
}

/// Large buffers (records, batches of changed sectors) are made on one thread and used or
/// freed on another. With glibc's sliding mmap threshold they end up in per-thread arenas,
/// which keep what is freed: backup's peak RSS on bench/realistic.sh was 8-10 MB higher than
/// what it had in use. A fixed threshold maps each large buffer on its own and returns it when
/// freed; the buffers are reused, so this costs no measurable time.
fn keep_large_buffers_out_of_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}
