//! The one error type of the library, and the one table of exit codes.
//!
//! Every failure names what failed, the file it failed on and why, in the pattern
//! `<what failed>: <path>: <reason>` (the binary puts `diff-dd: ` in front). Callers match on
//! the variants; only people read the messages.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Success: for verify, the diff is intact and the target in a known (or the expected) state.
pub const SUCCESS: u8 = 0;
/// The work failed: an input could not be read, a diff was refused, a target was wrong.
/// Nothing unfinished is left under a name that looks valid, and no target was changed
/// (restore reports a failure after it began writing as [`TARGET_WRITTEN`]).
pub const FAILURE: u8 = 1;
/// The command line was wrong (clap exits with the same code for what it catches).
pub const USAGE: u8 = 2;
/// verify, inspect: the diff is corrupt or not a diff.
pub const DIFF_INVALID: u8 = 3;
/// verify: the target is in neither known state, or not in the state `--expect` asked for.
pub const TARGET_UNEXPECTED: u8 = 4;
/// verify: two reads of the same file gave different bytes (unstable device, or the file
/// changed while it was read).
pub const UNSTABLE: u8 = 5;
/// restore: the work failed after the target was changed; the message ends with what it
/// holds now ([`TargetState`]). A script must not take the target for the one it had before.
pub const TARGET_WRITTEN: u8 = 6;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the user knows a file: the names --help and the messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The current image backup reads.
    Infile,
    /// The full image taken earlier, which a diff is made against.
    Reffile,
    /// The full image a chain starts from, as `restore --base` and `merge --base` name it.
    Full,
    /// The diff backup writes.
    Outfile,
    /// A diff that is read.
    Diff,
    /// The file or device restore writes, or verify checks.
    Target,
    /// The image a digest is made of.
    Image,
    /// A digest that is read.
    Digest,
    /// The digest `backup --digest-out` writes.
    Next,
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Role::Infile => "INFILE",
            Role::Reffile => "REFFILE",
            Role::Full => "FULL",
            Role::Outfile => "OUTFILE",
            Role::Diff => "diff",
            Role::Target => "target",
            Role::Image => "IMAGE",
            Role::Digest => "digest",
            Role::Next => "NEXT",
        })
    }
}

/// What was being done to a file when an I/O call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Open,
    Create,
    Read,
    Write,
    Sync,
}

impl fmt::Display for Action {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Action::Open => "cannot open",
            Action::Create => "cannot create",
            Action::Read => "cannot read",
            Action::Write => "cannot write",
            Action::Sync => "cannot sync",
        })
    }
}

/// Whether a wrong target was found before restore wrote anything, or while it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Nothing,
    /// The dry run passed and records were being written when the target was found to have
    /// changed since.
    Partly,
}

/// What a target holds after a command that writes it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Nothing was written to it.
    Untouched,
    /// A new file, written unnamed: nothing was left under its name.
    NotLinked,
    /// A file or block device written in place.
    InPlace(Holds),
    /// Standard output: what went out cannot be taken back.
    Streamed(Holds),
}

/// What was written into a target before a command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// Part of the image. Running the same restore again finishes it: restore in place
    /// accepts a target its own killed or failed run left, and one-pass rewrites all of it.
    Part,
    /// Part of the image, and the target was found changed since restore checked it (or
    /// the diff read differently): a rerun may refuse it, and writing the full image back
    /// first is what surely lets one finish.
    PartChangedSince,
    /// A whole image, not the one the diffs give.
    OtherImage,
    /// The whole image the diffs give (the failure came after it, as a FULL that went on).
    Image,
}

impl TargetState {
    /// True when the target is not what it was before the command: it is reported with
    /// [`TARGET_WRITTEN`].
    pub fn changed(self) -> bool {
        matches!(self, TargetState::InPlace(_) | TargetState::Streamed(_))
    }

    /// The one wording of a target's state, for every command that writes one:
    /// `t.img: written in part: run the same restore again to finish`.
    pub fn describe(self, target: &Path) -> String {
        let state = match self {
            TargetState::Untouched => "nothing was written",
            TargetState::NotLinked => "nothing was left under its name",
            TargetState::InPlace(Holds::Part) => {
                "written in part: run the same restore again to finish"
            }
            TargetState::InPlace(Holds::PartChangedSince) => {
                "written in part: write the full image back and restore again"
            }
            TargetState::InPlace(Holds::OtherImage) => {
                "written whole, and it does not hold the image"
            }
            TargetState::InPlace(Holds::Image) => {
                "written whole, and it holds the image the diffs give"
            }
            TargetState::Streamed(Holds::Part | Holds::PartChangedSince) => {
                "what was written is incomplete"
            }
            TargetState::Streamed(Holds::OtherImage) => "what was written does not hold the image",
            TargetState::Streamed(Holds::Image) => "what was written is the image the diffs give",
        };
        format!("{}: {state}", target.display())
    }
}

/// Everything that can go wrong, as a caller needs to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something that cannot be done; nothing was opened.
    #[error("{0}")]
    Usage(String),

    /// An operating-system call on a file failed.
    #[error("{action} {role}: {}: {}{source}", path.display(), At(*at))]
    Io {
        action: Action,
        role: Role,
        path: PathBuf,
        /// The byte offset of a positional read or write.
        at: Option<u64>,
        source: io::Error,
    },

    /// A file cannot serve in its role: a directory, a FIFO, the same file as an input, a
    /// target locked by another restore, two images of different sizes.
    #[error("{what}: {}: {reason}", path.display())]
    Unusable {
        /// What failed, e.g. `cannot open INFILE` or `refusing to write OUTFILE`.
        what: String,
        path: PathBuf,
        reason: String,
    },

    /// The diff is damaged, truncated or not a diff; `record` names the record at fault when
    /// it is one record's.
    #[error("invalid diff: {}: {reason}", path.display())]
    InvalidDiff {
        path: PathBuf,
        record: Option<u64>,
        reason: String,
    },

    /// The digest is damaged, truncated or not a digest.
    #[error("invalid digest: {}: {reason}", path.display())]
    InvalidDigest { path: PathBuf, reason: String },

    /// restore: the target does not hold the image the diff was made against.
    #[error("wrong target: {}: {reason}", path.display())]
    WrongTarget {
        path: PathBuf,
        /// The first extent found wrong, when the target was wrong at an extent rather than
        /// in its size.
        extent: Option<u64>,
        offset: Option<u64>,
        written: Written,
        reason: String,
    },

    /// verify: the target is in neither known state, or not in the state expected.
    #[error("unexpected target: {}: {reason}", path.display())]
    UnexpectedTarget { path: PathBuf, reason: String },

    /// verify: two reads of the same file gave different bytes.
    #[error("unstable read: {}: {reason}", path.display())]
    UnstableRead { path: PathBuf, reason: String },

    /// A listing or report could not be written out.
    #[error("cannot write {what} to stdout: {source}")]
    Output {
        /// `the listing`, `the report`.
        what: &'static str,
        source: io::Error,
    },

    /// A command that writes a target failed after it began to: `error`, followed by what
    /// the target holds now.
    #[error("{error}; {}", state.describe(target))]
    TargetWritten {
        error: Box<Error>,
        target: PathBuf,
        state: TargetState,
    },

    /// Something that cannot happen did: a bug in diff-dd, never the user's data.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// `at byte N: ` before an I/O error, when the call had an offset.
struct At(Option<u64>);

impl fmt::Display for At {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(offset) => write!(formatter, "at byte {offset}: "),
            None => Ok(()),
        }
    }
}

/// Which exit codes a command uses. backup and restore do work, and report any failure of it
/// as [`FAILURE`], or [`TARGET_WRITTEN`] once a target was changed; verify and inspect check,
/// and their exit code says what they found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporting {
    Work,
    Check,
}

impl Error {
    /// The exit code of a command that failed with this error: the one table of exit codes.
    pub fn exit_code(&self, reporting: Reporting) -> u8 {
        match (self, reporting) {
            (Error::Usage(_), _) => USAGE,
            (Error::InvalidDiff { .. } | Error::InvalidDigest { .. }, Reporting::Check) => {
                DIFF_INVALID
            }
            (Error::UnexpectedTarget { .. }, Reporting::Check) => TARGET_UNEXPECTED,
            (Error::UnstableRead { .. }, Reporting::Check) => UNSTABLE,
            (Error::TargetWritten { state, .. }, _) if state.changed() => TARGET_WRITTEN,
            (Error::TargetWritten { error, .. }, reporting) => error.exit_code(reporting),
            _ => FAILURE,
        }
    }

    /// The reason alone, for a message or field that names what failed and the path already.
    pub fn reason(&self) -> String {
        match self {
            Error::Unusable { reason, .. }
            | Error::InvalidDiff { reason, .. }
            | Error::InvalidDigest { reason, .. }
            | Error::WrongTarget { reason, .. }
            | Error::UnexpectedTarget { reason, .. }
            | Error::UnstableRead { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }

    /// This error, which stopped a command that had begun writing `target`, with what the
    /// target holds now.
    pub fn after_writing(self, target: &Path, state: TargetState) -> Error {
        Error::TargetWritten {
            error: Box::new(self),
            target: target.to_path_buf(),
            state,
        }
    }

    /// An I/O error on `path` in `role`.
    pub fn io(action: Action, role: Role, path: &Path, source: io::Error) -> Error {
        Error::Io {
            action,
            role,
            path: path.to_path_buf(),
            at: None,
            source,
        }
    }

    /// A file that cannot serve in its role, with `what` failed (`cannot open INFILE`).
    pub fn unusable(what: impl Into<String>, path: &Path, reason: impl Into<String>) -> Error {
        Error::Unusable {
            what: what.into(),
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// A fault in the digest at `path`.
    pub fn invalid_digest(path: &Path, reason: impl Into<String>) -> Error {
        Error::InvalidDigest {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// A fault in the diff at `path`, in `record` when it is one record's.
    pub fn invalid_diff(path: &Path, record: Option<u64>, reason: impl Into<String>) -> Error {
        Error::InvalidDiff {
            path: path.to_path_buf(),
            record,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_failed_the_path_and_the_reason() {
        let error = Error::Io {
            action: Action::Read,
            role: Role::Infile,
            path: PathBuf::from("/a/new.img"),
            at: Some(4096),
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        assert_eq!(
            error.to_string(),
            "cannot read INFILE: /a/new.img: at byte 4096: Input/output error (os error 5)"
        );
        let error = Error::invalid_diff(Path::new("d.diff"), Some(3), "record 3: bad");
        assert_eq!(error.to_string(), "invalid diff: d.diff: record 3: bad");
    }

    #[test]
    fn exit_codes() {
        let invalid = Error::invalid_diff(Path::new("d"), None, "x");
        assert_eq!(invalid.exit_code(Reporting::Work), FAILURE);
        assert_eq!(invalid.exit_code(Reporting::Check), DIFF_INVALID);
        let unstable = Error::UnstableRead {
            path: PathBuf::from("t"),
            reason: "x".into(),
        };
        assert_eq!(unstable.exit_code(Reporting::Check), UNSTABLE);
        let unexpected = Error::UnexpectedTarget {
            path: PathBuf::from("t"),
            reason: "x".into(),
        };
        assert_eq!(unexpected.exit_code(Reporting::Check), TARGET_UNEXPECTED);
        assert_eq!(unexpected.exit_code(Reporting::Work), FAILURE);
        assert_eq!(Error::Usage("x".into()).exit_code(Reporting::Work), USAGE);
        let io = Error::io(
            Action::Open,
            Role::Diff,
            Path::new("d"),
            io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(io.exit_code(Reporting::Check), FAILURE);
    }

    #[test]
    fn an_error_after_writing_ends_with_the_targets_state_and_its_own_exit_code() {
        let io = || {
            Error::io(
                Action::Write,
                Role::Target,
                Path::new("t.img"),
                io::Error::from_raw_os_error(libc::ENOSPC),
            )
        };
        let written = io().after_writing(Path::new("t.img"), TargetState::InPlace(Holds::Part));
        assert_eq!(
            written.to_string(),
            "cannot write target: t.img: No space left on device (os error 28); t.img: written in part: run the same restore again to finish"
        );
        assert_eq!(written.exit_code(Reporting::Work), TARGET_WRITTEN);
        let streamed = io().after_writing(
            Path::new("standard output"),
            TargetState::Streamed(Holds::Part),
        );
        assert!(streamed
            .to_string()
            .ends_with("; standard output: what was written is incomplete"));
        assert_eq!(streamed.exit_code(Reporting::Work), TARGET_WRITTEN);
        // A target left as it was keeps the exit code of the error itself.
        let invalid = Error::invalid_diff(Path::new("d"), None, "x")
            .after_writing(Path::new("new.img"), TargetState::NotLinked);
        assert_eq!(
            invalid.to_string(),
            "invalid diff: d: x; new.img: nothing was left under its name"
        );
        assert_eq!(invalid.exit_code(Reporting::Work), FAILURE);
    }
}
