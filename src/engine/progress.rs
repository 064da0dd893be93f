//! Progress reporting: the engine and the operations say how far they got; the caller
//! decides whether and how to show it (the binary draws bars on a terminal, tests and fuzz
//! targets pass [`NoProgress`]).

/// A stage of the work, with the label a progress display shows for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Backup,
    CheckingDiff,
    RereadingDiff,
    CheckingTarget,
    Restoring,
    ReadingTarget,
    RereadingTarget,
    Merging,
    Digesting,
    ComparingFull,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Backup => "backup",
            Stage::CheckingDiff => "checking diff",
            Stage::RereadingDiff => "re-reading diff",
            Stage::CheckingTarget => "checking target",
            Stage::Restoring => "restoring",
            Stage::ReadingTarget => "reading target",
            Stage::RereadingTarget => "re-reading target",
            Stage::Merging => "merging",
            Stage::Digesting => "digest",
            Stage::ComparingFull => "comparing with FULL",
        }
    }
}

/// Receives progress. Called from the thread that runs the operation only.
pub trait Progress {
    /// A stage over `total_bytes` begins; the previous one, if any, is over.
    fn start(&self, stage: Stage, total_bytes: u64);
    /// `bytes` more of the current stage are done.
    fn advance(&self, bytes: u64);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _stage: Stage, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
}
