//! The commands: each opens the files its task names, runs the library's operation, and
//! prints what it returns. Errors come back here to be printed in one line and turned into
//! an exit code by the one table (`Error::exit_code`).

mod backup;
mod completions;
mod digest;
mod inspect;
mod merge;
mod progress;
mod restore;
mod verify;

use std::process::ExitCode;
use std::time::Duration;

use std::path::Path;

use diff_dd::cli::{BackupBase, Invocation, Task};
use diff_dd::device::{self, OpenFile};
use diff_dd::error::{self, Error, Reporting, Result, Role};
use diff_dd::render;
use diff_dd::units::human_bytes;

pub fn run(invocation: Invocation) -> ExitCode {
    let printing = invocation.printing;
    let (outcome, reporting) = match invocation.task {
        Task::Backup {
            infile,
            base: BackupBase::Image(reffile),
            outfile,
            on,
            options,
        } => (
            backup::run(&infile, &reffile, &outfile, &on, &options, printing),
            Reporting::Work,
        ),
        Task::Backup {
            infile,
            base: BackupBase::Digest { digest, digest_out },
            outfile,
            options,
            ..
        } => (
            backup::run_from_digest(
                &infile,
                &digest,
                digest_out.as_deref(),
                &outfile,
                &options,
                printing,
            ),
            Reporting::Work,
        ),
        Task::Merge {
            difffiles,
            full,
            outfile,
            options,
        } => (
            merge::run(&difffiles, full.as_deref(), &outfile, &options, printing),
            Reporting::Work,
        ),
        Task::RestoreChain {
            difffiles,
            target,
            spool,
            buffer_size,
        } => (
            restore::run_chain(&difffiles, &target, &spool, buffer_size, printing),
            Reporting::Work,
        ),
        Task::RestoreOnePass {
            full,
            difffiles,
            target,
            spool,
            options,
        } => (
            restore::run_one_pass(&full, &difffiles, &target, &spool, &options, printing),
            Reporting::Work,
        ),
        Task::Restore {
            difffile,
            target,
            spool,
            options,
        } => (
            restore::run(&difffile, &target, &spool, &options, printing),
            Reporting::Work,
        ),
        Task::Digest {
            image,
            difffiles,
            outfile,
            options,
        } => (
            digest::run(&image, &difffiles, &outfile, &options, printing),
            Reporting::Work,
        ),
        Task::VerifyDigest {
            digest,
            target,
            spool,
            buffer_size,
        } => (
            verify::run_digest(&digest, &target, &spool, buffer_size, printing),
            Reporting::Check,
        ),
        Task::Verify {
            difffiles,
            target,
            spool,
            options,
        } => (
            verify::run(&difffiles, target.as_deref(), &spool, &options, printing),
            Reporting::Check,
        ),
        Task::Inspect {
            difffile,
            spool,
            options,
        } => (
            inspect::run(&difffile, &spool, &options, printing),
            Reporting::Check,
        ),
        Task::InspectFiles {
            full,
            difffiles,
            spool,
        } => (
            inspect::run_files(&full, &difffiles, &spool, printing),
            Reporting::Check,
        ),
        Task::Completions { shell } => (completions::run(shell), Reporting::Work),
    };
    match outcome {
        Ok(()) => ExitCode::from(error::SUCCESS),
        Err(Error::Output { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            end_as_a_closed_pipe_ends_cat()
        }
        Err(error) => {
            // A path, a mount point or a reason quoting a file can hold control characters.
            eprintln!("diff-dd: {}", render::printable(&error.to_string()));
            ExitCode::from(error.exit_code(reporting))
        }
    }
}

/// The reader of a listing, report or script went away (`diff-dd inspect big.diff | head
/// -1`): stop quietly, killed by SIGPIPE as cat and ls are, so that a shell sees 141 and a
/// pipeline under `set -o pipefail` fails as it would with them. Rust ignores SIGPIPE, which
/// is what lets backup and restore report a closed standard output as an error naming what
/// it holds; only printed text ends this way, and only once nothing is left to clean up.
fn end_as_a_closed_pipe_ends_cat() -> ExitCode {
    // SAFETY: these calls change this process's handling of one signal and raise it; they
    // take no pointers but the signal set built here.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut pipe_only: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &pipe_only, std::ptr::null_mut());
        libc::raise(libc::SIGPIPE);
    }
    // Not reached unless the signal could not end the process: the status a shell gives.
    ExitCode::from(128 + libc::SIGPIPE as u8)
}

/// `-` is standard input.
fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Opens a diff: a file or device, or standard input copied whole into `spool` first.
fn open_diff(path: &Path, spool: &Path) -> Result<OpenFile> {
    if is_dash(path) {
        device::spool_stdin(spool)
    } else {
        device::open_input(path, Role::Diff)
    }
}

/// Opens a digest: a file or device, or standard input copied whole into `spool` first.
fn open_digest(path: &Path, spool: &Path) -> Result<OpenFile> {
    if is_dash(path) {
        device::spool_stdin(spool)
    } else {
        device::open_input(path, Role::Digest)
    }
}

/// The diffs a command writes from, each as a private copy in `spool` taken after the
/// command's own checks on the originals (aliasing, the target's lock): what is written is
/// then what was checked, whatever happens to the original meanwhile.
fn private_copies(diffs: Vec<OpenFile>, spool: &Path) -> Result<Vec<OpenFile>> {
    diffs
        .into_iter()
        .map(|diff| device::private_copy(diff, spool))
        .collect()
}

/// Prints the one-line summary `-v` asks for.
fn summary(command: &str, text: std::fmt::Arguments<'_>) {
    eprintln!(
        "diff-dd: {command}: {}",
        render::printable(&text.to_string())
    );
}

/// `1.9 GiB/s`: bytes over the time they took.
fn throughput(bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-6);
    format!("{}/s", human_bytes((bytes as f64 / seconds) as u64))
}

/// `1.25%`: the share of the image a diff covers.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".to_string();
    }
    format!("{:.2}%", part as f64 * 100.0 / whole as f64)
}

/// The error for a failure to write what was printed.
fn output_failed(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Output { what, source }
}
