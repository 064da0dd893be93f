//! The command line: the one source of `--help`, the shell completions and the man pages,
//! and the one place where parsed arguments become the operations' options
//! ([`Cli::into_invocation`]).
//!
//! The original diff-dd synopsis stays the default (three paths make a diff, two restore one);
//! subcommands sit beside it. Nothing here does any work: the binary runs the [`Invocation`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::ops::{self, BackupOptions, InspectOptions, RestoreOptions, VerifyOptions};
use crate::units;

/// Default comparison granularity: the classic disk sector.
pub const DEFAULT_SECTOR_SIZE: u64 = 512;
/// Default read buffer: large enough that reading is not slowed by system calls.
pub const DEFAULT_BUFFER_SIZE: u64 = 4 << 20;

/// What a size option accepts; a macro so that the top-level help can include it with concat!.
macro_rules! size_help {
    () => {
        "Sizes take plain bytes or dd-style suffixes: K = KiB = 1024, M = MiB = 1024², \
G = GiB = 1024³; kB, MB and GB are powers of 1000. The limit is 1GiB."
    };
}

const SIZE_HELP: &str = size_help!();

const AFTER_HELP: &str = concat!(
    size_help!(),
    "\n\n\
A path that is spelled like a subcommand (backup, restore, merge, digest, verify, inspect, completions) is \
reached as ./backup.

Exit status: 0 on success, 1 when the work failed (no target was changed, and no unfinished \
OUTFILE is left under its name), 2 for a usage error, 6 when restore failed after it began \
writing the target (the message ends with what the target holds). verify and inspect add 3 \
(corrupt diff), 4 (target in an unexpected state) and 5 (unstable reads): see their --help. \
When the reader of standard output stops early (| head), inspect, verify and completions end \
quietly, killed by SIGPIPE as cat is (141 in a shell)."
);

#[derive(Debug, Parser)]
#[command(
    name = "diff-dd",
    version,
    about = "Save only the sectors of a disk image that changed since a full dd image, and restore them safely",
    long_about = "Save only the sectors of INFILE that differ from REFFILE, a full image taken \
earlier with dd, together with their offsets. To restore, write the full image back with dd \
and then apply the diff: diff-dd checks the whole diff and the target before it writes a byte.",
    override_usage = "diff-dd [OPTIONS] INFILE REFFILE OUTFILE\n       \
diff-dd [OPTIONS] DIFFFILE OUTFILE\n       \
diff-dd <COMMAND> [OPTIONS] ...",
    after_help = AFTER_HELP,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(flatten)]
    pub options: CommonOptions,

    /// With three paths: the format of the diff to write [default: native]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<DiffFormat>,

    /// With three paths: replace an OUTFILE that is not a diff, write a diff onto a block
    /// device, or read an image from a device mounted read-write
    #[arg(long)]
    pub force: bool,

    /// With three paths: compress record data with zstd at LEVEL (1 to 19), or store it raw
    /// with 'none' [default: 4]. Extents of zeros are stored without data either way
    #[arg(long, value_name = "LEVEL", value_parser = CompressionLevels, hide_possible_values = true)]
    pub compress: Option<Compression>,

    /// INFILE REFFILE OUTFILE to make a diff, or DIFFFILE OUTFILE to restore one
    #[arg(value_name = "PATH", num_args = 1.., required = true)]
    pub paths: Vec<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save the sectors of INFILE that differ from REFFILE (or from the image a digest
    /// describes) into the diff OUTFILE
    #[command(
        after_help = SIZE_HELP,
        override_usage = "diff-dd backup [OPTIONS] INFILE REFFILE OUTFILE\n       \
diff-dd backup [OPTIONS] --on PREV... INFILE REFFILE OUTFILE\n       \
diff-dd backup [OPTIONS] --digest DIGEST [--digest-out NEXT] INFILE OUTFILE"
    )]
    Backup(BackupArgs),
    /// Apply DIFFFILE (or a chain of diffs) to OUTFILE, which must hold the full image the
    /// first was made against; with --base FULL, write FULL with the diffs laid over it into
    /// OUTFILE in one pass
    #[command(after_help = SIZE_HELP)]
    Restore(RestoreArgs),
    /// Merge a chain of diffs into one diff against the first one's base
    #[command(after_help = MERGE_HELP)]
    Merge(MergeArgs),
    /// Write a digest of IMAGE (or of the image the diffs give laid over it): its size and the
    /// BLAKE3 of each block, to check a target against without the image
    #[command(
        after_help = DIGEST_HELP,
        override_usage = "diff-dd digest [OPTIONS] IMAGE [DIFFFILE]... OUTFILE"
    )]
    Digest(DigestArgs),
    /// Check a diff or a chain, and a target before or after restoring onto it, by reading each twice
    #[command(
        after_help = VERIFY_HELP,
        override_usage = "diff-dd verify [OPTIONS] DIFFFILE [TARGET]\n       \
diff-dd verify [OPTIONS] DIFFFILE... TARGET\n       \
diff-dd verify [OPTIONS] --no-target DIFFFILE...\n       \
diff-dd verify [OPTIONS] --digest DIGEST TARGET"
    )]
    Verify(VerifyArgs),
    /// List what a diff holds, from its headers alone
    #[command(after_help = INSPECT_HELP)]
    Inspect(InspectArgs),
    /// Print a completion script for SHELL to stdout
    Completions(CompletionsArgs),
}

const VERIFY_HELP: &str = "\
The diff is read twice: each time its structure, every record hash and the whole-diff hash \
are checked, and the two reads must give the same bytes. TARGET is read twice in full, the \
second time from the device rather than the page cache; its BLAKE3 must equal the diff's \
base hash (state base: ready for restore) or image hash (state restored). Between the reads \
restore's own checks are made at every extent (base data, new data, neither, a record torn \
by a killed restore), with nothing written. TARGET is partly_restored, and verify says to \
run restore again, only when restore would take it and the diff laid over it hashes to the \
image hash; anything else is neither, with the reason.

With --digest, TARGET is read once, and the digest in step with it: every block's BLAKE3 \
must equal the digest's (state holds_image), else verify names the first differing blocks by \
offset and counts them (state differs, exit 4). The digest is checked whole (its signature, \
counts and hashes, and that its block values merge into the image's BLAKE3) before any \
verdict: a damaged digest is exit 3.

A chain is given as to restore, the diffs in order and TARGET last: every diff is read twice \
as above, the links are checked by hashes, and TARGET must hash to the first diff's base \
hash (base: ready for restore in place), the last diff's image hash (restored), or, with the \
chain laid over it, the last image hash (partly_restored: restore with the same diffs \
finishes it). Of two paths the second is always TARGET; give --no-target to check a chain \
without one.

Exit status: 0 when the diff is intact and TARGET (if given) is in a known state, or the \
state --expect names; 1 when a file cannot be read or the diffs do not form a chain; 2 for a \
usage error; 3 when the diff is \
corrupt; 4 when TARGET is in neither known state or not the expected one; 5 when two reads \
of the same file gave different bytes (an unstable device, or a file changed meanwhile).";

const DIGEST_HELP: &str = "\
IMAGE is read once, with the diffs (checked in full first, as restore checks them) laid over \
it as restore --base lays them; nothing is written but OUTFILE. Each block's value is its \
BLAKE3 chaining value at its place in the image, so the values merge into the image's own \
BLAKE3, which the digest holds and which b3sum prints for the image. OUTFILE appears (or \
replaces an earlier digest) only once complete; '-' writes to standard output. The digest \
is about 0.2% of the image at 16K blocks, 0.8% at 4K; smaller blocks name differences more \
finely. --block-size takes a power of two from 4K to 4M.

Exit status: 0 on success, 1 when the work failed or was refused (no OUTFILE is left), 2 \
for a usage error.";

const MERGE_HELP: &str = "\
Every diff is read and checked in full, and the chain by hashes, first. The merged diff holds \
the segments of the chain's records (each byte from the diff that gives it last), each with \
its hash and the hash of the base bytes it replaces, so restore checks it like any diff. \
Where a segment is a whole record of a diff no earlier diff touches there, its base hash is \
that record's; anywhere else the base bytes are in no diff, and merge needs --base FULL, which \
it reads only there; where the diffs know FULL's bytes, FULL must hold them. The merged diff \
is read back and checked whole before it appears under its name.

Exit status: 0 on success, 1 when the merge was refused or failed (an earlier OUTFILE is \
kept), 2 for a usage error.";

const INSPECT_HELP: &str = "\
Reads only the headers and skips the data, so a large diff lists quickly. Record data and \
the whole-diff hash are not checked here: verify does that.

With --files FULL, the diffs (a chain, in order) are audited by file: for the ext2, ext3 or \
ext4 filesystem of the image they give laid over FULL (read through them, nothing written), \
the files and directories whose data, block map or inode they change, each added, deleted or \
modified (a file moved or renamed with the path it had in FULL), with the changed bytes of its \
blocks; the metadata they change by kind; and changed \
bytes in blocks free in both images, which data written and deleted again leaves. The diffs \
are checked in full first, and FULL at every extent of the first diff. An image that holds \
no ext2/3/4 filesystem is named on stderr and the diffs are listed as without --files.

Exit status: 0 when the whole diff could be listed; 1 when it cannot be opened (with --files: \
a diff, a chain or FULL is refused, or the filesystem is damaged); 3 when it is \
corrupt (what could be read is listed first). When the reader of standard output stops early \
(| head -1), inspect ends quietly, killed by SIGPIPE (141 in a shell).";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Where a diff read from standard input ('-') is copied first, as an unnamed file, so that
    /// it is checked whole before use [default: $TMPDIR, else /tmp]
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Fail (exit 4) unless TARGET is in this state
    #[arg(long, value_enum, value_name = "STATE")]
    pub expect: Option<TargetState>,
    /// Print one JSON document with the states, hashes and counts
    #[arg(long)]
    pub json: bool,
    /// Every path is a diff: check the chain they form, with no TARGET
    #[arg(long)]
    pub no_target: bool,
    /// Check that TARGET (the one path) holds the image DIGEST describes, reading it once
    /// ('-': DIGEST from standard input)
    #[arg(long, value_name = "DIGEST", conflicts_with_all = ["no_target", "expect"])]
    pub digest: Option<PathBuf>,
    /// The diff to check, or the diffs of a chain in order; of two or more paths the last is
    /// TARGET (unless --no-target), a file or block device to check against them
    #[arg(value_name = "DIFFFILE", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
}

impl VerifyArgs {
    /// The diffs and the target: one path is a diff; of two or more, the last is the target,
    /// as in restore, unless --no-target makes them all diffs.
    pub fn diffs_and_target(&self) -> (&[PathBuf], Option<&PathBuf>) {
        match self.paths.split_last() {
            Some((target, diffs)) if !self.no_target && !diffs.is_empty() => (diffs, Some(target)),
            _ => (&self.paths, None),
        }
    }
}

/// The formats backup can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// diff-dd's own format (v3): headers, hashes of every record and of both images
    Native,
    /// The original diff-dd 1.0 format, byte for byte: offsets and sectors, no hashes
    V1,
}

/// The states verify recognizes a target in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetState {
    /// The image the diff was made against: ready for restore
    Base,
    /// The image the diff was made from: restored
    Restored,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Where a diff read from standard input ('-') is copied first, as an unnamed file, so that
    /// it is checked whole before use [default: $TMPDIR, else /tmp]
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
    /// List the files, directories and metadata of the ext2/3/4 filesystem the diffs change,
    /// FULL being the full image the first diff was made against
    #[arg(long, value_name = "FULL")]
    pub files: Option<PathBuf>,
    /// The diff to list; with --files, the diffs of a chain in order
    #[arg(value_name = "DIFFFILE", required = true, num_args = 1..)]
    pub difffiles: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The format of the diff to write [default: native]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<DiffFormat>,
    /// Replace an OUTFILE that is not a diff (or a NEXT that is not a digest), write a diff
    /// onto a block device, or read an image from a device mounted read-write
    #[arg(long)]
    pub force: bool,
    /// Compress record data with zstd at LEVEL (1 to 19), or store it raw with 'none'
    /// [default: 4]. Extents of zeros are stored without data either way
    #[arg(long, value_name = "LEVEL", value_parser = CompressionLevels, hide_possible_values = true)]
    pub compress: Option<Compression>,
    /// Continue a chain: diff INFILE against REFFILE with the records of PREV laid over it,
    /// so that the diff holds only what changed since PREV. Once per diff of the chain, in
    /// order, the first made against REFFILE; each is checked in full first
    #[arg(long = "on", value_name = "PREV")]
    pub on: Vec<PathBuf>,
    /// Diff INFILE against the image DIGEST describes (written by diff-dd digest; '-':
    /// standard input) instead of REFFILE, reading INFILE once: every block that differs is
    /// recorded whole
    #[arg(long, value_name = "DIGEST", conflicts_with = "on")]
    pub digest: Option<PathBuf>,
    /// With --digest: write the digest of INFILE into NEXT in the same pass, with DIGEST's
    /// block size (the DIGEST of the next backup); it appears only once complete, after
    /// OUTFILE
    #[arg(long = "digest-out", value_name = "NEXT", requires = "digest")]
    pub digest_out: Option<PathBuf>,
    /// The current image: a file or block device
    #[arg(value_name = "INFILE")]
    pub infile: PathBuf,
    /// The full image taken earlier with dd, with the same size as INFILE (with --digest,
    /// which stands for it: OUTFILE)
    #[arg(value_name = "REFFILE")]
    pub reffile: PathBuf,
    /// The diff to write: appears (or replaces an earlier diff) only once complete; a symbolic
    /// link is followed
    #[arg(value_name = "OUTFILE")]
    pub outfile: Option<PathBuf>,
}

impl BackupArgs {
    /// REFFILE (None with --digest) and OUTFILE, or why the paths do not fit.
    pub fn reffile_and_outfile(&self) -> Result<(Option<&PathBuf>, &PathBuf), String> {
        match (&self.digest, &self.outfile) {
            (None, Some(outfile)) => Ok((Some(&self.reffile), outfile)),
            (Some(_), None) => Ok((None, &self.reffile)),
            (None, None) => Err(
                "backup takes INFILE REFFILE OUTFILE (or --digest DIGEST INFILE OUTFILE): OUTFILE is missing".into(),
            ),
            (Some(_), Some(_)) => Err(
                "with --digest, backup takes INFILE OUTFILE: the digest stands for REFFILE".into(),
            ),
        }
    }
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The size of the blocks hashed, a power of two from 4K to 4M [default: 16K]: smaller
    /// blocks make a larger digest that names differences more finely
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    pub block_size: Option<u64>,
    /// Replace an existing OUTFILE that is not a digest
    #[arg(long)]
    pub force: bool,
    /// The full image: a file or block device
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// [DIFFFILE]... OUTFILE: the diffs of a chain made from IMAGE, in order, laid over it;
    /// then the digest to write ('-': standard output), which appears (or replaces an earlier
    /// digest) only once complete
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The full image the first diff was made against, read where the diffs alone do not give
    /// the base bytes of a merged record
    #[arg(long, value_name = "FULL")]
    pub base: Option<PathBuf>,
    /// Compress record data with zstd at LEVEL (1 to 19), or store it raw with 'none'; records
    /// of sectors over 4 MiB are stored raw or as zeros whatever LEVEL [default: 4]
    #[arg(long, value_name = "LEVEL", value_parser = CompressionLevels, hide_possible_values = true)]
    pub compress: Option<Compression>,
    /// Replace an existing OUTFILE that is not a diff of the same images as the merge (a rerun
    /// of the same merge replaces its own), or read FULL from a device mounted read-write
    #[arg(long)]
    pub force: bool,
    /// The diffs of a chain, in order (the first made against the full image, each later one
    /// with backup --on the ones before)
    #[arg(value_name = "DIFFFILE", required = true, num_args = 1..)]
    pub difffiles: Vec<PathBuf>,
    /// The merged diff: appears (or replaces an earlier diff) only once complete and checked
    #[arg(value_name = "OUTFILE", required = true)]
    pub outfile: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Where each diff (a file, or '-' for standard input) is copied first, as an unnamed file
    /// no other process can open, so that what is written is what was checked; needs room for
    /// the diffs [default: $TMPDIR, else /tmp]
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Restore in one pass: read the full image FULL ('-': standard input, which must hold
    /// exactly the image) once, lay the diffs over it in order and write the result into
    /// OUTFILE, which may then be a new file (appears only once it holds the image, sparse
    /// where it is zeros), an existing file or block device of the image's size, or '-' for
    /// standard output
    #[arg(long, value_name = "FULL")]
    pub base: Option<PathBuf>,
    /// With --base: overwrite an existing regular file OUTFILE that does not hold the image
    /// already (one that does is left as it is), or read FULL from a device mounted
    /// read-write. A block device OUTFILE needs no --force
    #[arg(long, requires = "base")]
    pub force: bool,
    /// The diff made by backup, or the diffs of a chain in order (the first made against the
    /// full image, each later one with --on the ones before)
    #[arg(value_name = "DIFFFILE", required = true, num_args = 1..)]
    pub difffiles: Vec<PathBuf>,
    /// The file or block device holding the full image the diff was made against (with
    /// --base: where the image is written)
    // The id keeps the name the original synopsis gives it, which zsh completion shows.
    #[arg(id = "outfile", value_name = "OUTFILE", required = true)]
    pub target: PathBuf,
}

/// Options every command takes, before or after its name (`diff-dd -v restore ...` and
/// `diff-dd restore -v ...` mean the same).
#[derive(Debug, Clone, Args)]
pub struct CommonOptions {
    /// Granularity of comparison in bytes [default: 512]. A native diff records its own
    /// sector size, so restore, verify and inspect need this only for diffs of the original
    /// v1 format.
    #[arg(short = 's', long = "sector-size", value_name = "SECTOR_SIZE", value_parser = parse_size_arg, global = true)]
    pub sector_size: Option<u64>,

    /// Read buffer size in bytes, a multiple of the sector size; it never changes the diff
    /// [default: 4M]
    #[arg(short = 'b', long = "buffer-size", value_name = "BUFFER_SIZE", value_parser = parse_size_arg, global = true)]
    pub buffer_size: Option<u64>,

    /// Print nothing but errors
    #[arg(short = 'q', long, conflicts_with = "verbose", global = true)]
    pub quiet: bool,

    /// Print more: a summary when done (extents, changed bytes, share of the image,
    /// throughput), and in verify and inspect the hashes too
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
}

impl CommonOptions {
    pub fn sector_size(&self) -> u64 {
        self.sector_size.unwrap_or(DEFAULT_SECTOR_SIZE)
    }

    pub fn buffer_size(&self) -> u64 {
        self.buffer_size.unwrap_or(DEFAULT_BUFFER_SIZE)
    }

    fn printing(&self, json: bool) -> Printing {
        Printing {
            quiet: self.quiet,
            verbose: self.verbose,
            json,
        }
    }

    /// Checks what a single option's parser cannot: how sector and buffer sizes relate. The
    /// message names what the user wrote, and what would work.
    fn check_sizes(&self) -> Result<(), String> {
        let (sector_size, buffer_size) = (self.sector_size(), self.buffer_size());
        if buffer_size.is_multiple_of(sector_size) {
            return Ok(());
        }
        let fitting_buffer = buffer_size.div_ceil(sector_size) * sector_size;
        Err(match (self.sector_size, self.buffer_size) {
            (Some(_), None) => format!(
                "--sector-size {sector_size} does not divide the default --buffer-size 4M; use a power of two such as 512 or 4K, or give a --buffer-size that is a multiple of it, such as {fitting_buffer}"
            ),
            (None, Some(_)) => format!(
                "--buffer-size {buffer_size} is not a multiple of the default --sector-size 512; use a multiple such as {fitting_buffer}, or give --sector-size"
            ),
            _ if sector_size > buffer_size => format!(
                "--sector-size {sector_size} is larger than --buffer-size {buffer_size}; the buffer holds whole sectors: use --buffer-size {sector_size} or more"
            ),
            _ => format!(
                "--buffer-size {buffer_size} is not a multiple of --sector-size {sector_size}; use a multiple such as {fitting_buffer}"
            ),
        })
    }
}

/// How backup stores record data: a zstd level, or None for raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression(pub Option<i32>);

impl Default for Compression {
    /// Level 4: on the realistic pair of bench/realistic.sh, the lowest level whose diff is
    /// no larger than `zstd -3` of the raw diff and than xdelta3's delta, at 1.2x the time of
    /// a raw backup (README, Benchmark).
    fn default() -> Compression {
        Compression(Some(4))
    }
}

/// Parses `--compress` with [`parse_compression`], and names the levels it takes so that every
/// shell completes them (`--compress <TAB>` offered file names). The help says them in words.
#[derive(Debug, Clone, Copy)]
struct CompressionLevels;

impl clap::builder::TypedValueParser for CompressionLevels {
    type Value = Compression;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Compression, clap::Error> {
        parse_compression.parse_ref(command, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        const LEVELS: [&str; 20] = [
            "none", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14",
            "15", "16", "17", "18", "19",
        ];
        let described = |level: &str| match level {
            "none" => "store record data raw",
            "1" => "fastest",
            "4" => "the default",
            "19" => "smallest",
            _ => "",
        };
        Some(Box::new(LEVELS.into_iter().map(move |level| {
            clap::builder::PossibleValue::new(level).help(described(level))
        })))
    }
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    if text == "none" {
        return Ok(Compression(None));
    }
    match text.parse::<i32>() {
        Ok(level) if (1..=19).contains(&level) => Ok(Compression(Some(level))),
        _ => Err(format!(
            "'{text}' is not a zstd level from 1 to 19, nor 'none'"
        )),
    }
}

fn parse_size_arg(text: &str) -> Result<u64, String> {
    units::parse_size(text)
}

/// The command line as it is parsed and shown in --help, completions and man pages: the
/// definitions above, built.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    built(Cli::command())
}

/// Builds `command` (the definitions above, perhaps adjusted, as the man pages are without
/// the help subcommand) and hides the common options where they do nothing
/// ([`does_nothing_in`]), so that neither --help nor a man page lists them there. Hidden,
/// they are still accepted, so that a script that passes them everywhere keeps working.
pub fn built(mut command: clap::Command) -> clap::Command {
    // The common options are global: they reach each subcommand when the command is built.
    command.build();
    command.mut_subcommands(|subcommand| {
        let name = subcommand.get_name().to_string();
        subcommand.mut_args(|arg| {
            let hidden = does_nothing_in(&name, arg.get_id().as_str());
            arg.hide(hidden)
        })
    })
}

/// Whether the common option `id` does nothing in the subcommand `name`: -b in inspect, which
/// reads headers only and no image in buffers of that size, and all four in completions. -s
/// does matter to inspect: it lists a v1 diff, which does not record its sector size, with
/// the size -s gives.
fn does_nothing_in(name: &str, id: &str) -> bool {
    match name {
        "inspect" => id == "buffer_size",
        "completions" => ["sector_size", "buffer_size", "quiet", "verbose"].contains(&id),
        "digest" => id == "sector_size",
        _ => false,
    }
}

/// The command the completion scripts are generated from. clap_complete offers hidden
/// options too, so here the common options are not global: each subcommand is given those
/// that do something in it.
fn command_for_completion() -> clap::Command {
    use clap::CommandFactory;
    let command = Cli::command();
    let common: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .map(|arg| arg.clone().global(false))
        .collect();
    command
        .mut_args(|arg| arg.global(false))
        .mut_subcommands(|subcommand| {
            let name = subcommand.get_name().to_string();
            let applying = common
                .iter()
                .filter(|arg| !does_nothing_in(&name, arg.get_id().as_str()))
                .cloned();
            subcommand.args(applying)
        })
}

/// The completion script for `shell`, generated from the definitions above: what
/// `diff-dd completions SHELL` prints and completions/ holds.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command_for_completion(), "diff-dd", &mut script);
    let script = String::from_utf8_lossy(&script);
    match shell {
        // clap_complete's bash script builds the state of `diff-dd verify` as
        // diff__dd__subcmd__verify but labels its case arm diff__subcmd__dd__subcmd__verify,
        // so nothing completes after a subcommand of a program with a hyphen in its name
        // (clap-rs/clap#6421, open). Label the arms the way the state is built.
        clap_complete::Shell::Bash => {
            bash_paths_where_paths_go(&script.replace("diff__subcmd__dd", "diff__dd"))
        }
        clap_complete::Shell::Zsh => {
            zsh_options_after_many_paths(&zsh_first_word_is_a_command_or_a_path(&script))
        }
        // clap_complete's fish script completes no positional values: `diff-dd completions
        // <TAB>` listed files. Offer the shells.
        clap_complete::Shell::Fish => {
            use clap::ValueEnum;
            let shells: Vec<String> = clap_complete::Shell::value_variants()
                .iter()
                .filter_map(|shell| Some(shell.to_possible_value()?.get_name().to_string()))
                .collect();
            format!(
                "{script}complete -c diff-dd -n \"__fish_diff_dd_using_subcommand completions\" -f -a \"{}\"\n",
                shells.join(" ")
            )
        }
        _ => script.into_owned(),
    }
    .into_bytes()
}

/// clap_complete's bash script offers only options at a word that does not start with `-`, so
/// `diff-dd restore --base full.img <TAB>` inserted their common prefix, `-`, where a diff's
/// name goes. Where the command and every subcommand but `completions` (whose SHELL is offered
/// by name) take paths, offer nothing there, so that bash completes file names itself
/// (`complete -o default`, with directories, quoting and `~`). The first word after the
/// program still offers the subcommands, and a path typed there still completes as one.
fn bash_paths_where_paths_go(script: &str) -> String {
    const PATH_ARMS: [&str; 7] = [
        "        diff__dd)",
        "        diff__dd__subcmd__backup)",
        "        diff__dd__subcmd__restore)",
        "        diff__dd__subcmd__merge)",
        "        diff__dd__subcmd__digest)",
        "        diff__dd__subcmd__verify)",
        "        diff__dd__subcmd__inspect)",
    ];
    let options_only = "            if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then";
    let options_at_a_dash = "            if [[ ${cur} == -* ]] ; then";
    let options_anywhere = "            COMPREPLY=( $(compgen -W \"${opts}\" -- \"${cur}\") )";
    let files =
        "            COMPREPLY=() # a path: bash's own completion (-o default) offers files";
    let mut fixed = String::with_capacity(script.len() + 1024);
    let mut in_path_arm = false;
    let mut after_the_options = false;
    let (mut conditions, mut endings) = (0, 0);
    for line in script.lines() {
        if line.starts_with("        diff__dd") && line.ends_with(')') {
            in_path_arm = PATH_ARMS.contains(&line);
            after_the_options = false;
        }
        let line = match line {
            _ if !in_path_arm => line,
            _ if line == options_only => {
                conditions += 1;
                options_at_a_dash
            }
            // The first use of the options is for a word that starts with `-`; the last, after
            // the option values, is for any other word.
            _ if line == options_anywhere && after_the_options => {
                endings += 1;
                files
            }
            _ => {
                after_the_options |= line == "            esac";
                line
            }
        };
        fixed.push_str(line);
        fixed.push('\n');
    }
    if conditions == PATH_ARMS.len() - 1 && endings == PATH_ARMS.len() {
        fixed
    } else {
        script.to_string() // clap_complete changed: the completion test says so.
    }
}

/// clap_complete's zsh script takes the first word for the top-level PATH and the second for
/// the subcommand, so `diff-dd verify --<TAB>` offered the top-level options. Make the first
/// word a command or a path, dispatch on it, and complete paths after a path.
fn zsh_first_word_is_a_command_or_a_path(script: &str) -> String {
    let paths = "':paths -- INFILE REFFILE OUTFILE to make a diff, or DIFFFILE OUTFILE to restore one:_files' \\\n";
    let fixed = script
        .replacen(paths, "", 1)
        .replacen(
            "\":: :_diff-dd_commands\" \\",
            "\": :{_diff-dd_commands; _files}\" \\",
            1,
        )
        .replacen("words=($line[2] ", "words=($line[1] ", 1)
        .replacen(
            ":diff-dd-command-$line[2]:",
            ":diff-dd-command-$line[1]:",
            1,
        )
        .replacen("case $line[2] in", "case $line[1] in", 1);
    // The arms of the top-level dispatch end just before the function does.
    let end = "        esac\n    ;;\nesac\n}\n";
    match fixed.find(end) {
        Some(at) if fixed.len() != script.len() => {
            format!("{}(*)\n_files && ret=0\n;;\n{}", &fixed[..at], &fixed[at..])
        }
        _ => script.to_string(), // clap_complete changed: the completion test says so.
    }
}

/// clap_complete gives a positional that takes many paths to zsh as `*::NAME`, which hands
/// the rest of the line to that positional alone: `diff-dd verify x --expect <TAB>` offered
/// files, not the states. `*:NAME` keeps the options completing after the paths.
fn zsh_options_after_many_paths(script: &str) -> String {
    script.replace("\n'*::", "\n'*:")
}

/// How the binary prints what an operation returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printing {
    /// Nothing but errors.
    pub quiet: bool,
    /// A summary when done.
    pub verbose: bool,
    /// One JSON document on stdout.
    pub json: bool,
}

impl Printing {
    /// How listings and reports are written.
    pub fn style(&self) -> crate::render::Style {
        use crate::render::Style;
        match (self.json, self.verbose) {
            (true, _) => Style::Json,
            (false, true) => Style::VerboseText,
            (false, false) => Style::Text,
        }
    }
}

/// What a backup diffs INFILE against.
#[derive(Debug)]
pub enum BackupBase {
    /// REFFILE, the full image.
    Image(PathBuf),
    /// A digest of it, and where to write INFILE's own digest, if anywhere.
    Digest {
        digest: PathBuf,
        digest_out: Option<PathBuf>,
    },
}

/// A task, with the files it names and the options of its operation.
#[derive(Debug)]
pub enum Task {
    Backup {
        infile: PathBuf,
        base: BackupBase,
        outfile: PathBuf,
        /// The diffs of the chain the new diff continues, in order.
        on: Vec<PathBuf>,
        options: BackupOptions,
    },
    Restore {
        difffile: PathBuf,
        target: PathBuf,
        spool: PathBuf,
        options: RestoreOptions,
    },
    Merge {
        difffiles: Vec<PathBuf>,
        full: Option<PathBuf>,
        outfile: PathBuf,
        options: ops::MergeOptions,
    },
    /// restore DIFF DIFF... TARGET: a chain, in place.
    RestoreChain {
        difffiles: Vec<PathBuf>,
        target: PathBuf,
        spool: PathBuf,
        buffer_size: u64,
    },
    /// restore --base FULL DIFF... TARGET.
    RestoreOnePass {
        full: PathBuf,
        difffiles: Vec<PathBuf>,
        target: PathBuf,
        spool: PathBuf,
        options: ops::OnePassOptions,
    },
    Digest {
        image: PathBuf,
        difffiles: Vec<PathBuf>,
        outfile: PathBuf,
        options: ops::DigestOptions,
    },
    /// verify --digest DIGEST TARGET.
    VerifyDigest {
        digest: PathBuf,
        target: PathBuf,
        spool: PathBuf,
        buffer_size: u64,
    },
    Verify {
        difffiles: Vec<PathBuf>,
        target: Option<PathBuf>,
        spool: PathBuf,
        options: VerifyOptions,
    },
    Inspect {
        difffile: PathBuf,
        spool: PathBuf,
        options: InspectOptions,
    },
    /// inspect --files FULL DIFF...
    InspectFiles {
        full: PathBuf,
        difffiles: Vec<PathBuf>,
        spool: PathBuf,
    },
    Completions {
        shell: clap_complete::Shell,
    },
}

/// What the command line asks for.
#[derive(Debug)]
pub struct Invocation {
    pub task: Task,
    pub printing: Printing,
}

impl Cli {
    /// Turns the parsed command line into a task: resolves the original synopsis and checks
    /// what clap cannot (how the sizes relate). A [`Error::Usage`] names what is wrong.
    pub fn into_invocation(self) -> Result<Invocation, Error> {
        let options = self.options;
        let command = match self.command {
            Some(command) => command,
            None => from_original_synopsis(self.format, self.force, self.compress, self.paths)
                .map_err(Error::Usage)?,
        };
        check_streams(&command).map_err(Error::Usage)?;
        if matches!(
            command,
            Command::Backup(_)
                | Command::Restore(_)
                | Command::Merge(_)
                | Command::Verify(_)
                | Command::Digest(_)
        ) {
            options.check_sizes().map_err(Error::Usage)?;
        }
        if let Command::Backup(BackupArgs {
            format: Some(DiffFormat::V1),
            compress,
            on,
            ..
        }) = &command
        {
            if compress.is_some() {
                return Err(Error::Usage(
                    "--compress does not apply to --format v1, which holds raw sectors".into(),
                ));
            }
            if !on.is_empty() {
                return Err(Error::Usage(
                    "--on needs the native format: a v1 diff holds no hashes to link it to a chain"
                        .into(),
                ));
            }
        }
        Ok(match command {
            Command::Backup(args) => Invocation {
                printing: options.printing(false),
                task: Task::Backup {
                    outfile: args.reffile_and_outfile().map_err(Error::Usage)?.1.clone(),
                    base: match args.digest {
                        Some(digest) => BackupBase::Digest {
                            digest,
                            digest_out: args.digest_out,
                        },
                        None => BackupBase::Image(args.reffile),
                    },
                    options: BackupOptions {
                        sector_size: options.sector_size(),
                        buffer_size: options.buffer_size(),
                        format: match args.format.unwrap_or(DiffFormat::Native) {
                            DiffFormat::Native => ops::DiffFormat::Native,
                            DiffFormat::V1 => ops::DiffFormat::V1,
                        },
                        created_unix_seconds: ops::backup::creation_time(),
                        force: args.force,
                        compression: args.compress.unwrap_or_default().0,
                    },
                    infile: args.infile,
                    on: args.on,
                },
            },
            Command::Restore(RestoreArgs {
                base: Some(full),
                force,
                difffiles,
                target,
                spool,
            }) => Invocation {
                printing: options.printing(false),
                task: Task::RestoreOnePass {
                    options: ops::OnePassOptions {
                        buffer_size: options.buffer_size(),
                        force,
                    },
                    full,
                    difffiles,
                    target,
                    spool: spool.unwrap_or_else(std::env::temp_dir),
                },
            },
            Command::Restore(args) if args.difffiles.len() > 1 => Invocation {
                printing: options.printing(false),
                task: Task::RestoreChain {
                    buffer_size: options.buffer_size(),
                    difffiles: args.difffiles,
                    target: args.target,
                    spool: args.spool.unwrap_or_else(std::env::temp_dir),
                },
            },
            Command::Restore(mut args) => {
                let difffile = args.difffiles.remove(0);
                Invocation {
                    printing: options.printing(false),
                    task: Task::Restore {
                        options: RestoreOptions {
                            v1_sector_size: options.sector_size(),
                            buffer_size: options.buffer_size(),
                        },
                        difffile,
                        target: args.target,
                        spool: args.spool.unwrap_or_else(std::env::temp_dir),
                    },
                }
            }
            Command::Digest(mut args) => {
                let outfile = args
                    .paths
                    .pop()
                    .ok_or(Error::Internal("digest without OUTFILE"))?;
                let block_size = args
                    .block_size
                    .unwrap_or(crate::format::digest::DEFAULT_BLOCK_SIZE);
                crate::format::digest::check_block_size(block_size)
                    .map_err(|reason| Error::Usage(format!("--block-size: {reason}")))?;
                Invocation {
                    printing: options.printing(false),
                    task: Task::Digest {
                        options: ops::DigestOptions {
                            block_size,
                            buffer_size: options.buffer_size(),
                            created_unix_seconds: ops::backup::creation_time(),
                            force: args.force,
                        },
                        image: args.image,
                        difffiles: args.paths,
                        outfile,
                    },
                }
            }
            Command::Verify(VerifyArgs {
                digest: Some(digest),
                paths,
                spool,
                json,
                ..
            }) => {
                let Ok([target]) = <[PathBuf; 1]>::try_from(paths) else {
                    return Err(Error::Usage(
                        "--digest DIGEST takes one TARGET to check, and no diffs".into(),
                    ));
                };
                Invocation {
                    printing: options.printing(json),
                    task: Task::VerifyDigest {
                        digest,
                        target,
                        spool: spool.unwrap_or_else(std::env::temp_dir),
                        buffer_size: options.buffer_size(),
                    },
                }
            }
            Command::Verify(args) => {
                let (difffiles, target) = args.diffs_and_target();
                let (difffiles, target) = (difffiles.to_vec(), target.cloned());
                if args.expect.is_some() && target.is_none() {
                    return Err(Error::Usage(
                        "--expect needs a TARGET to find in that state".into(),
                    ));
                }
                Invocation {
                    printing: options.printing(args.json),
                    task: Task::Verify {
                        options: VerifyOptions {
                            v1_sector_size: options.sector_size(),
                            buffer_size: options.buffer_size(),
                            expect: args.expect.map(|state| match state {
                                TargetState::Base => ops::State::Base,
                                TargetState::Restored => ops::State::Restored,
                            }),
                            stream_diff: difffiles.iter().position(|path| path.as_os_str() == "-"),
                        },
                        difffiles,
                        target,
                        spool: args.spool.unwrap_or_else(std::env::temp_dir),
                    },
                }
            }
            Command::Inspect(InspectArgs {
                files: Some(full),
                difffiles,
                spool,
                json,
            }) => Invocation {
                printing: options.printing(json),
                task: Task::InspectFiles {
                    full,
                    difffiles,
                    spool: spool.unwrap_or_else(std::env::temp_dir),
                },
            },
            Command::Inspect(mut args) => {
                if args.difffiles.len() > 1 {
                    return Err(Error::Usage(
                        "inspect lists one diff; the diffs of a chain are audited together with --files FULL".into(),
                    ));
                }
                Invocation {
                    printing: options.printing(args.json),
                    task: Task::Inspect {
                        options: InspectOptions {
                            v1_sector_size: options.sector_size(),
                        },
                        difffile: args.difffiles.remove(0),
                        spool: args.spool.unwrap_or_else(std::env::temp_dir),
                    },
                }
            }
            Command::Merge(args) => Invocation {
                printing: options.printing(false),
                task: Task::Merge {
                    options: ops::MergeOptions {
                        compression: args.compress.unwrap_or_default().0,
                        created_unix_seconds: ops::backup::creation_time(),
                        buffer_size: options.buffer_size(),
                        force: args.force,
                    },
                    difffiles: args.difffiles,
                    full: args.base,
                    outfile: args.outfile,
                },
            },
            Command::Completions(args) => Invocation {
                printing: Printing::default(),
                task: Task::Completions { shell: args.shell },
            },
        })
    }
}

/// `diff-dd INFILE REFFILE OUTFILE` backs up, `diff-dd DIFFFILE OUTFILE` restores. The number
/// of paths is checked here, after a mistyped command, which is the likelier mistake.
fn from_original_synopsis(
    format: Option<DiffFormat>,
    force: bool,
    compress: Option<Compression>,
    paths: Vec<PathBuf>,
) -> Result<Command, String> {
    if let Some(first) = paths.first() {
        refuse_mistyped_command(first)?;
    }
    match <[PathBuf; 3]>::try_from(paths) {
        Ok([infile, reffile, outfile]) => Ok(Command::Backup(BackupArgs {
            format,
            force,
            compress,
            on: Vec::new(),
            digest: None,
            digest_out: None,
            infile,
            reffile,
            outfile: Some(outfile),
        })),
        Err(paths) => match <[PathBuf; 2]>::try_from(paths) {
            Ok(_) if format.is_some() => {
                Err("--format applies only to backup (three paths)".into())
            }
            Ok(_) if force => Err("--force applies only to backup (three paths)".into()),
            Ok(_) if compress.is_some() => {
                Err("--compress applies only to backup (three paths)".into())
            }
            Ok([difffile, target]) => Ok(Command::Restore(RestoreArgs {
                spool: None,
                base: None,
                force: false,
                difffiles: vec![difffile],
                target,
            })),
            Err(paths) => {
                let usage =
                    "give INFILE REFFILE OUTFILE to make a diff, or DIFFFILE OUTFILE to restore one";
                Err(match paths.get(3) {
                    Some(extra) => format!("unexpected value '{}': {usage}", extra.display()),
                    None => usage.to_string(),
                })
            }
        },
    }
}

/// `-` is standard input or output where a stream can serve, and refused where it cannot: a
/// restore target and verify's TARGET are read and written in place, and backup cannot read
/// both images from one standard input. A file named `-` is reached as `./-`.
fn check_streams(command: &Command) -> Result<(), String> {
    let dash = |path: &PathBuf| path.as_os_str() == "-";
    match command {
        Command::Backup(args) if args.reffile_and_outfile().is_err() => {
            args.reffile_and_outfile().map(|_| ())
        }
        Command::Backup(args) if dash(&args.infile) && args.digest.as_ref().is_some_and(dash) => Err(
            "INFILE and DIGEST cannot both be '-' (standard input): one must be a file or device; a file named - is reached as ./-".into(),
        ),
        Command::Backup(args) if args.digest_out.as_ref().is_some_and(dash) => Err(
            "NEXT '-' would mean standard output, which OUTFILE may take; --digest-out writes a file or device; a file named - is reached as ./-".into(),
        ),
        Command::Backup(args) if dash(&args.infile) && args.digest.is_none() && dash(&args.reffile) => Err(
            "INFILE and REFFILE cannot both be '-' (standard input): one image must be a file or device".into(),
        ),
        Command::Backup(args) if args.on.iter().any(dash) => Err(
            "PREV '-' would mean standard input, but a diff given with --on is checked in full and then read again; a file named - is reached as ./-".into(),
        ),
        Command::Restore(args) if args.base.is_none() && dash(&args.target) => Err(
            "OUTFILE '-' would mean standard output, but restore writes into a target that holds the base image (with --base FULL it can write the image to standard output); a file named - is reached as ./-".into(),
        ),
        Command::Restore(args) if args.base.as_ref().is_some_and(dash) && args.difffiles.iter().any(dash) => Err(
            "FULL and a diff cannot both be '-' (standard input): one of them must be a file or device; a file named - is reached as ./-".into(),
        ),
        Command::Merge(args) if args.difffiles.iter().chain(&args.base).chain([&args.outfile]).any(dash) => Err(
            "merge reads its diffs and FULL more than once and writes OUTFILE under its name: none can be '-'; a file named - is reached as ./-".into(),
        ),
        Command::Restore(args) if args.difffiles.iter().filter(|path| dash(path)).count() > 1 => Err(
            "only one diff can be read from standard input ('-')".into(),
        ),
        Command::Digest(args) if dash(&args.image) || args.paths.iter().rev().skip(1).any(dash) => Err(
            "digest reads IMAGE and the diffs from files or devices (the diffs twice): only OUTFILE can be '-'; a file named - is reached as ./-".into(),
        ),
        Command::Verify(args) if args.digest.is_some() && args.paths.iter().any(dash) => Err(
            "TARGET '-' would mean standard input, which verify --digest does not read; DIGEST can be '-'; a file named - is reached as ./-".into(),
        ),
        Command::Verify(args) if args.diffs_and_target().1.is_some_and(dash) => Err(
            "TARGET '-' would mean standard input, but verify reads the target twice; a file named - is reached as ./-".into(),
        ),
        Command::Inspect(args) if args.files.as_ref().is_some_and(dash) => Err(
            "FULL '-' would mean standard input, but inspect --files reads FULL where the filesystem's metadata lies; a file named - is reached as ./-".into(),
        ),
        Command::Inspect(args) if args.difffiles.iter().filter(|path| dash(path)).count() > 1 => Err(
            "only one diff can be read from standard input ('-')".into(),
        ),
        Command::Verify(args) if args.diffs_and_target().0.iter().filter(|path| dash(path)).count() > 1 => Err(
            "only one diff can be read from standard input ('-')".into(),
        ),
        _ => Ok(()),
    }
}

/// The names of the subcommands, which a mistyped first path is compared with.
const COMMAND_NAMES: [&str; 7] = [
    "backup",
    "restore",
    "merge",
    "digest",
    "verify",
    "inspect",
    "completions",
];

/// A first path that does not exist and is a letter or two away from a subcommand's name is
/// a typo of it (`diff-dd restor d.diff t.img`), not a file to back up or restore.
fn refuse_mistyped_command(first: &std::path::Path) -> Result<(), String> {
    let Some(name) = first.to_str() else {
        return Ok(());
    };
    if first.symlink_metadata().is_ok() {
        return Ok(());
    }
    let closest = COMMAND_NAMES
        .iter()
        .map(|command| (edit_distance(name, command), command))
        .min();
    match closest {
        Some((distance, command)) if distance <= 2 && distance < command.len() / 2 => Err(format!(
            "there is no file '{name}', and no command of that name: did you mean '{command}'?"
        )),
        _ => Ok(()),
    }
}

/// Levenshtein distance: insertions, deletions and substitutions of one character.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, &b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_levels_completed_are_the_levels_taken() {
        use clap::builder::TypedValueParser;
        let offered: Vec<String> = CompressionLevels
            .possible_values()
            .into_iter()
            .flatten()
            .map(|value| value.get_name().to_string())
            .collect();
        let taken: Vec<String> = ["none".to_string()]
            .into_iter()
            .chain((0..=20).map(|level: i32| level.to_string()))
            .filter(|text| parse_compression(text).is_ok())
            .collect();
        assert_eq!(offered, taken);
    }

    #[test]
    fn typos_of_commands() {
        assert_eq!(edit_distance("restor", "restore"), 1);
        assert_eq!(edit_distance("verfiy", "verify"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        let refused = |name: &str| refuse_mistyped_command(std::path::Path::new(name)).is_err();
        assert!(refused("restor") && refused("bakup") && refused("inspec"));
        assert!(!refused("monday.diff") && !refused("new.img") && !refused("rest"));
    }
}
