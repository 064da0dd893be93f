//! Exit codes, in one place. `--help` and diff-dd(1) list them; scripts rely on them.

/// Success: for verify, the diff is intact and the target in a known (or the expected) state.
pub const SUCCESS: u8 = 0;
/// The work failed: an input could not be read, a diff was refused, a target was wrong.
/// Nothing unfinished is left under a name that looks valid.
pub const FAILURE: u8 = 1;
/// The command line was wrong (clap exits with the same code for what it catches).
pub const USAGE: u8 = 2;
/// verify: the diff is corrupt or not a diff.
pub const DIFF_INVALID: u8 = 3;
/// verify: the target is in neither known state, or not in the state `--expect` asked for.
pub const TARGET_UNEXPECTED: u8 = 4;
/// verify: two reads of the same file gave different bytes (unstable device, or the file
/// changed while it was read).
pub const UNSTABLE: u8 = 5;

/// An error that exits with a code other than [`FAILURE`].
#[derive(Debug)]
pub struct WithCode {
    pub code: u8,
    pub error: anyhow::Error,
}

impl std::fmt::Display for WithCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{:#}", self.error)
    }
}

impl std::error::Error for WithCode {}

/// Gives `error` the exit code `code`.
pub fn with_code(code: u8, error: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(WithCode { code, error })
}

/// The exit code an error asks for: its own, or [`FAILURE`].
pub fn code_of(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<WithCode>())
        .map_or(FAILURE, |coded| coded.code)
}
