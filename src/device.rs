//! Opening the files and block devices diff-dd reads and writes, safely, and the positional
//! I/O on them.
//!
//! Regular files and block devices share one path: a size always comes from seeking to the
//! end (which asks the device, not its inode metadata), and every read or write is positional.
//! The few differences are here and nowhere else: a block-device target is opened with
//! `O_EXCL` so a mounted partition is refused, and a diff is written beside OUTFILE and
//! renamed over it only once complete. A regular file that backs a loop device is the
//! device's image, and checked as the device is: never written, and not read as an image
//! while the device is mounted read-write.

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Action, Error, Result, Role};
use crate::units;

/// A regular file or block device, open: an image, a diff or a target, with its size and what
/// error messages need to name it.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    pub path: PathBuf,
    pub role: Role,
    /// Size in bytes, taken from the device itself for block devices. For standard input,
    /// the size it must turn out to have ([`OpenFile::expect_stream_size`]).
    pub size: u64,
    /// For standard input, which can only be read front to back.
    stream: Option<Stream>,
    /// A copy no other process can reach ([`private_copy`]): it cannot change while read.
    private: bool,
    /// Set by the first write that wrote anything: a command that fails afterwards reports
    /// what it left.
    written: AtomicBool,
}

/// Standard input as an image: how far it has been read, and what its size is (for errors
/// when it turns out to be another).
#[derive(Debug)]
struct Stream {
    position: std::sync::Mutex<u64>,
    size_is: &'static str,
}

/// How errors name standard input and output.
pub const STANDARD_INPUT: &str = "standard input";
pub const STANDARD_OUTPUT: &str = "standard output";

impl OpenFile {
    /// One from a file already open (a temporary or in-memory file, in tests): it must
    /// be a regular file or a block device. `path` is how errors name it.
    pub fn from_file(file: File, path: impl Into<PathBuf>, role: Role) -> Result<OpenFile> {
        let path = path.into();
        finish_open(file, &path, role)
    }

    /// Standard input as an image read front to back (INFILE, REFFILE or FULL from a pipe).
    /// Its size is not known until it ends: the caller says what it must be
    /// ([`OpenFile::expect_stream_size`]) before it is read.
    pub fn stdin(role: Role) -> Result<OpenFile> {
        use std::os::fd::AsFd;
        let path = Path::new(STANDARD_INPUT);
        refuse_terminal_input(role)?;
        let file = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|error| Error::io(Action::Open, role, path, error))?;
        Ok(OpenFile {
            file: File::from(file),
            path: path.to_path_buf(),
            role,
            size: 0,
            stream: Some(Stream {
                position: std::sync::Mutex::new(0),
                size_is: "",
            }),
            private: false,
            written: AtomicBool::new(false),
        })
    }

    /// For standard input: it must hold `size` bytes, which `size_is` says the origin of
    /// ("the size of the other image"); checked as it is read and as it ends.
    pub fn expect_stream_size(&mut self, size: u64, size_is: &'static str) {
        if let Some(stream) = &mut self.stream {
            self.size = size;
            stream.size_is = size_is;
        }
    }

    /// True for a private copy ([`private_copy`]), which no other process can change.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// True for standard input, which is read once, front to back.
    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// For standard input, once `size` bytes have been read: fails unless it ends there.
    pub fn finish_stream(&self) -> Result<()> {
        let Some(stream) = &self.stream else {
            return Ok(());
        };
        let mut extra = [0u8; 1];
        let more = (&self.file)
            .read(&mut extra)
            .map_err(|error| self.error(Action::Read, Some(self.size), error))?;
        if more > 0 {
            return Err(Error::unusable(
                format!("cannot read {}", self.role),
                &self.path,
                format!(
                    "it holds more than {}, {}",
                    units::size(self.size),
                    stream.size_is
                ),
            ));
        }
        Ok(())
    }

    /// True when both are the same file or device, however they were named.
    pub fn is_same_file(&self, other: &Metadata) -> Result<bool> {
        let metadata = self
            .file
            .metadata()
            .map_err(|error| self.error(Action::Read, None, error))?;
        Ok(metadata.dev() == other.dev() && metadata.ino() == other.ino())
    }

    /// An I/O error on this file, at `at` when the call had an offset.
    pub fn error(&self, action: Action, at: Option<u64>, source: io::Error) -> Error {
        Error::Io {
            action,
            role: self.role,
            path: self.path.clone(),
            at,
            source,
        }
    }

    /// Reads exactly `buffer.len()` bytes at `offset`. A file that ends early changed size
    /// while it was being read, which is an error, never a short result.
    pub fn read_at(&self, offset: u64, buffer: &mut [u8]) -> Result<()> {
        if let Some(stream) = &self.stream {
            return self.read_stream(stream, offset, buffer);
        }
        self.file.read_exact_at(buffer, offset).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                let reason = format!(
                    "it ended before byte {} (did it change size while being read?)",
                    offset + buffer.len() as u64
                );
                self.error(Action::Read, None, io::Error::new(error.kind(), reason))
            } else {
                self.error(Action::Read, Some(offset), error)
            }
        })
    }

    /// Standard input read front to back: `offset` must be where the last read ended.
    fn read_stream(&self, stream: &Stream, offset: u64, buffer: &mut [u8]) -> Result<()> {
        let mut position = stream
            .position
            .lock()
            .map_err(|_| Error::Internal("a reader of standard input failed"))?;
        if *position != offset {
            return Err(Error::Internal("standard input read out of order"));
        }
        (&self.file).read_exact(buffer).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                let reason = format!(
                    "it ended before byte {} (it must hold {}, {})",
                    offset + buffer.len() as u64,
                    units::size(self.size),
                    stream.size_is
                );
                self.error(Action::Read, None, io::Error::new(error.kind(), reason))
            } else {
                self.error(Action::Read, Some(offset), error)
            }
        })?;
        *position += buffer.len() as u64;
        Ok(())
    }

    /// Writes all of `data` at `offset`. Call by call rather than with `write_all_at`, so that
    /// [`OpenFile::was_written`] knows whether a failed write had written part of it: a call
    /// that fails wrote nothing, one that wrote less returns how much.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            match self.file.write_at(&data[done..], at) {
                Ok(0) => {
                    let error = io::Error::from(io::ErrorKind::WriteZero);
                    return Err(self.error(Action::Write, Some(at), error));
                }
                Ok(wrote) => {
                    self.written.store(true, Ordering::Relaxed);
                    done += wrote;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(self.error(Action::Write, Some(at), error)),
            }
        }
        Ok(())
    }

    /// True once anything was written through [`OpenFile::write_at`].
    pub fn was_written(&self) -> bool {
        self.written.load(Ordering::Relaxed)
    }

    /// Flushes everything written to the device.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|error| self.error(Action::Sync, None, error))
    }

    /// Drops the pages the kernel has cached for this file, so the next read comes from the
    /// device itself (dirty pages cannot be dropped, so they are flushed first).
    pub fn drop_cached_pages(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|error| self.error(Action::Sync, None, error))?;
        // SAFETY: a plain system call on a descriptor this process owns.
        let result =
            unsafe { libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if result != 0 {
            return Err(self.error(Action::Read, None, io::Error::from_raw_os_error(result)));
        }
        Ok(())
    }
}

/// Two images can be compared only when they have the same size.
pub fn require_same_size(new: &OpenFile, base: &OpenFile) -> Result<()> {
    if new.size != base.size {
        return Err(Error::unusable(
            format!("cannot compare {} with {}", new.role, base.role),
            &new.path,
            format!(
                "it has {} but {} {} has {}: they must be the same size",
                units::size(new.size),
                base.role,
                base.path.display(),
                units::size(base.size)
            ),
        ));
    }
    Ok(())
}

/// Opens an image or diff for reading. Only regular files and block devices are accepted:
/// anything else has no size that can be trusted.
pub fn open_input(path: &Path, role: Role) -> Result<OpenFile> {
    let file = open_without_blocking(OpenOptions::new().read(true), 0, path)
        .map_err(|error| Error::io(Action::Open, role, path, error))?;
    finish_open(file, path, role)
}

/// Opens with `O_NONBLOCK`, so that a FIFO given by mistake is refused by `finish_open`
/// instead of hanging until someone writes to it; the flag is cleared again at once, since
/// it means nothing for the files and devices that are accepted.
fn open_without_blocking(options: &mut OpenOptions, flags: i32, path: &Path) -> io::Result<File> {
    let file = options.custom_flags(flags | libc::O_NONBLOCK).open(path)?;
    // SAFETY: fcntl on a descriptor this process owns, with plain integer arguments.
    let cleared = unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        flags >= 0 && libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !cleared {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Opens a restore target for reading and writing. A block device is opened exclusively
/// (`O_EXCL`: Linux refuses it while the device is mounted or opened exclusively elsewhere),
/// and every target is locked so two restores can never interleave their writes.
pub fn open_target(path: &Path) -> Result<OpenFile> {
    let role = Role::Target;
    let is_block_device = fs::metadata(path)
        .map(|metadata| metadata.file_type().is_block_device())
        .unwrap_or(false);
    let exclusive = if is_block_device { libc::O_EXCL } else { 0 };
    let read_only = |why: &str| {
        Error::unusable(
            format!("refusing to write {role}"),
            path,
            format!("it is read-only ({why}); nothing was written"),
        )
    };
    let file = open_without_blocking(OpenOptions::new().read(true).write(true), exclusive, path)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::EBUSY) => Error::unusable(
                format!("cannot open {role}"),
                path,
                format!("the device is mounted or in use: {error}"),
            ),
            Some(libc::EROFS) => read_only("a read-only filesystem or device"),
            _ => Error::io(Action::Open, role, path, error),
        })?;
    let metadata = file
        .metadata()
        .map_err(|error| Error::io(Action::Open, role, path, error))?;
    if metadata.file_type().is_block_device() && block_device_is_read_only(&file) {
        return Err(read_only("a read-only block device"));
    }
    refuse_loop_backing_file(&metadata, path, role)?;
    // Root may write a file nobody may write; a restore must not.
    if metadata.is_file() && metadata.permissions().mode() & 0o222 == 0 {
        return Err(read_only("no write permission"));
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(Error::unusable(
                format!("cannot open {role}"),
                path,
                "another process (a second restore?) holds its lock",
            ))
        }
        Err(fs::TryLockError::Error(error)) => {
            return Err(Error::unusable(
                format!("cannot open {role}"),
                path,
                format!("cannot lock it: {error}"),
            ))
        }
    }
    finish_open(file, path, role)
}

/// Whether the kernel marks a block device read-only (`losetup -r`, `blockdev --setro`):
/// opening it for writing succeeds, and only the first write fails.
fn block_device_is_read_only(file: &File) -> bool {
    let mut read_only: libc::c_int = 0;
    // SAFETY: BLKROGET writes one int through the pointer, which outlives the call.
    let result = unsafe { libc::ioctl(file.as_raw_fd(), BLKROGET, &mut read_only) };
    result == 0 && read_only != 0
}

/// `_IO(0x12, 94)` from linux/fs.h.
const BLKROGET: libc::Ioctl = 0x125e;

fn finish_open(mut file: File, path: &Path, role: Role) -> Result<OpenFile> {
    let refuse = |reason: &str| Error::unusable(format!("cannot open {role}"), path, reason);
    let metadata = file
        .metadata()
        .map_err(|error| Error::io(Action::Open, role, path, error))?;
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        return Err(refuse("it is a directory"));
    }
    if !file_type.is_file() && !file_type.is_block_device() {
        return Err(refuse("it is neither a regular file nor a block device"));
    }
    let size = file
        .seek(SeekFrom::End(0))
        .map_err(|error| Error::io(Action::Open, role, path, error))?;
    Ok(OpenFile {
        file,
        path: path.to_path_buf(),
        role,
        size,
        stream: None,
        private: false,
        written: AtomicBool::new(false),
    })
}

/// Copies standard input into an unnamed temporary file in `directory` (O_TMPFILE: nothing
/// is left behind, whatever happens) and opens that as the diff, so that a diff from a pipe
/// is checked whole before anything is written, like a diff from a file.
pub fn spool_stdin(directory: &Path) -> Result<OpenFile> {
    let path = Path::new(STANDARD_INPUT);
    refuse_terminal_input(Role::Diff)?;
    let spool_failed =
        |error: io::Error| Error::unusable("cannot spool the diff", directory, error.to_string());
    let mut spool = unnamed_file_in(directory).map_err(spool_failed)?;
    io::copy(&mut io::stdin().lock(), &mut spool).map_err(|error| match error.kind() {
        io::ErrorKind::WriteZero | io::ErrorKind::StorageFull => spool_failed(error),
        _ => Error::io(Action::Read, Role::Diff, path, error),
    })?;
    let mut spooled = finish_open(spool, path, Role::Diff)?;
    spooled.private = true;
    Ok(spooled)
}

/// A new unnamed file in `directory` (`O_TMPFILE`), readable and writable by this process
/// alone: gone when it is closed, however diff-dd exits.
fn unnamed_file_in(directory: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(directory)
}

/// A private copy of `diff`, an unnamed temporary file in `directory` (`O_TMPFILE`) that no
/// other process can open by name, for a command that writes what it read from a diff after
/// checking it: the check and the writing then read the same bytes, whatever happens to the
/// diff meanwhile (rewritten in place, truncated, replaced). A diff from standard input is
/// such a copy already. Errors name the diff by its own path.
///
/// The copy is made by the kernel (`copy_file_range`), which clones the extents instead when
/// `directory` is on the diff's filesystem and it can (btrfs, XFS): then it costs no space.
pub fn private_copy(diff: OpenFile, directory: &Path) -> Result<OpenFile> {
    if diff.private {
        return Ok(diff);
    }
    let spool_failed = |error: io::Error| {
        Error::unusable(
            "cannot copy the diff",
            directory,
            format!(
                "{error}: restore reads a private copy of {}, so that what it writes is what it checked; give --spool DIR with room for {}",
                diff.path.display(),
                units::size(diff.size)
            ),
        )
    };
    let copy = unnamed_file_in(directory).map_err(spool_failed)?;
    let mut copied = 0u64;
    let mut by_kernel = true;
    let mut buffer = Vec::new();
    while copied < diff.size {
        let wanted = diff.size - copied;
        if by_kernel {
            let (mut from, mut to) = (copied as libc::loff_t, copied as libc::loff_t);
            // SAFETY: both descriptors are open for the whole call, and the offsets are ours.
            let done = unsafe {
                libc::copy_file_range(
                    diff.file.as_raw_fd(),
                    &mut from,
                    copy.as_raw_fd(),
                    &mut to,
                    wanted.min(1 << 30) as usize,
                    0,
                )
            };
            match done {
                0 => {
                    let reason = format!(
                        "it ended before byte {} (did it change size while being read?)",
                        diff.size
                    );
                    let ended = io::Error::new(io::ErrorKind::UnexpectedEof, reason);
                    return Err(diff.error(Action::Read, None, ended));
                }
                done if done > 0 => copied += done as u64,
                _ => {
                    let error = io::Error::last_os_error();
                    match error.raw_os_error() {
                        // Not between these two files: copied through memory instead.
                        Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
                            by_kernel = false
                        }
                        Some(libc::EINTR) => {}
                        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => {
                            return Err(spool_failed(error))
                        }
                        _ => return Err(diff.error(Action::Read, Some(copied), error)),
                    }
                }
            }
            continue;
        }
        buffer.resize(wanted.min(1 << 20) as usize, 0);
        diff.read_at(copied, &mut buffer)?;
        copy.write_all_at(&buffer, copied).map_err(spool_failed)?;
        copied += buffer.len() as u64;
    }
    let mut copy = finish_open(copy, &diff.path, Role::Diff)?;
    copy.private = true;
    Ok(copy)
}

/// Standard input from a terminal is a forgotten pipe: refused, rather than waiting for typing.
fn refuse_terminal_input(role: Role) -> Result<()> {
    use std::io::IsTerminal;
    if io::stdin().is_terminal() {
        return Err(Error::unusable(
            format!("cannot read {role}"),
            Path::new(STANDARD_INPUT),
            "it is a terminal; '-' reads a pipe or a redirected file",
        ));
    }
    Ok(())
}

/// Standard output for a diff written as it is made: never a terminal.
fn stdout_for_diff() -> Result<File> {
    use std::io::IsTerminal;
    use std::os::fd::AsFd;
    let path = Path::new(STANDARD_OUTPUT);
    if io::stdout().is_terminal() {
        return Err(Error::unusable(
            "refusing to write OUTFILE",
            path,
            "it is a terminal, and a diff is binary; redirect it to a file or a pipe",
        ));
    }
    let file = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|error| Error::io(Action::Create, Role::Outfile, path, error))?;
    Ok(File::from(file))
}

/// Where `path` leads once every symbolic link on the way is followed, as dd and cp follow an
/// output that is a link: the diff replaces the file the link points to (which need not exist
/// yet), in that file's directory, and the link stays a link.
pub fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    // Linux gives up after 40 links too (ELOOP).
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = fs::read_link(&current)
                    .map_err(|error| Error::io(Action::Open, Role::Outfile, &current, error))?;
                current = parent_directory(&current).join(target);
            }
            _ => return Ok(current),
        }
    }
    Err(Error::io(
        Action::Open,
        Role::Outfile,
        path,
        io::Error::from_raw_os_error(libc::ELOOP),
    ))
}

/// Refuses to read an image whose filesystem is mounted read-write: a block device mounted so,
/// or a file that backs a loop device mounted so. Either can change while it is read, which
/// gives an image of no one moment. A read-only mount is fine. `--force` skips this check.
pub fn refuse_read_write_mount(image: &OpenFile) -> Result<()> {
    let Ok(metadata) = image.file.metadata() else {
        return Ok(()); // Its reads fail with an error of their own.
    };
    let refuse = |reason: String| {
        Err(Error::unusable(
            format!("refusing to read {}", image.role),
            &image.path,
            format!(
                "{reason}, so it can change while it is read; unmount it or remount it read-only, or give --force"
            ),
        ))
    };
    if metadata.file_type().is_block_device() {
        let device = device_number(metadata.rdev());
        if let Some(mount) = mounts_of(&[device]).iter().find(|mount| mount.read_write) {
            return refuse(format!("it is mounted read-write on {}", mount.point));
        }
    } else if metadata.is_file() {
        for loop_device in loop_devices_backed_by(&metadata) {
            if let Some(mount) = loop_device.mounts.iter().find(|mount| mount.read_write) {
                return refuse(format!(
                    "it backs loop device {}, mounted read-write on {}",
                    loop_device.path(),
                    mount.point
                ));
            }
        }
    }
    Ok(())
}

/// Refuses to write a regular file that backs a loop device, mounted or not: whatever uses the
/// device (a filesystem, a virtual machine) would see its blocks change underneath it, or
/// would go on using the old file once it is replaced. (A block device is opened with
/// `O_EXCL` instead, which the kernel refuses while it is mounted.)
fn refuse_loop_backing_file(metadata: &Metadata, path: &Path, role: Role) -> Result<()> {
    if !metadata.is_file() {
        return Ok(());
    }
    let loop_devices = loop_devices_backed_by(metadata);
    let Some(first) = loop_devices.first() else {
        return Ok(());
    };
    let described: Vec<String> = loop_devices
        .iter()
        .map(|loop_device| {
            let points: Vec<&str> = loop_device
                .mounts
                .iter()
                .map(|mount| mount.point.as_str())
                .collect();
            match points.is_empty() {
                true => loop_device.path(),
                false => format!("{} (mounted on {})", loop_device.path(), points.join(", ")),
            }
        })
        .collect();
    let mounted = loop_devices
        .iter()
        .any(|loop_device| !loop_device.mounts.is_empty());
    Err(Error::unusable(
        format!("refusing to write {role}"),
        path,
        format!(
            "it backs loop device {}, which may be in use; {} first (losetup -d {}); nothing was written",
            described.join(" and "),
            match mounted {
                true => "unmount it and detach it",
                false => "detach it",
            },
            first.path()
        ),
    ))
}

/// A loop device bound to a file, and where it (or a partition of it, or a device built on
/// it) is mounted.
struct LoopDevice {
    /// Its name in /sys/block and /dev: `loop0`.
    name: String,
    mounts: Vec<Mount>,
}

impl LoopDevice {
    fn path(&self) -> String {
        format!("/dev/{}", self.name)
    }
}

/// The loop devices whose backing file is the file of `metadata` (by device and inode, so
/// whatever name either was given). Empty when /sys cannot be read.
fn loop_devices_backed_by(metadata: &Metadata) -> Vec<LoopDevice> {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let file = (
        libc::major(metadata.dev()),
        libc::minor(metadata.dev()),
        metadata.ino(),
    );
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            // A loop device is bound to a file exactly when it has a `loop` directory.
            if !name.starts_with("loop") || !entry.path().join("loop").is_dir() {
                return None;
            }
            if loop_backing_file(&name)? != file {
                return None;
            }
            let mounts = mounts_of(&devices_on(&name));
            Some(LoopDevice { name, mounts })
        })
        .collect()
}

/// The backing file of loop device `name` as (major, minor, inode) of the filesystem and
/// inode it lives on. Asked of the device itself (`LOOP_GET_STATUS64`: exact, whatever became
/// of the file's name), else found by the path /sys gives, when /dev has no node for it.
fn loop_backing_file(name: &str) -> Option<(u32, u32, u64)> {
    if let Ok(device) = File::open(Path::new("/dev").join(name)) {
        // struct loop_info64 from linux/loop.h, 232 bytes: lo_device (the backing file's
        // device, as the kernel encodes a dev_t) and lo_inode come first.
        let mut info = [0u64; 29];
        // SAFETY: LOOP_GET_STATUS64 writes one struct loop_info64 (232 bytes) through the
        // pointer, which points to 232 bytes that outlive the call.
        let result =
            unsafe { libc::ioctl(device.as_raw_fd(), LOOP_GET_STATUS64, info.as_mut_ptr()) };
        if result != 0 {
            return None; // Detached since it was listed.
        }
        let (encoded, inode) = (info[0], info[1]);
        let major = ((encoded >> 8) & 0xfff) as u32;
        let minor = ((encoded & 0xff) | ((encoded >> 12) & 0xfff00)) as u32;
        return Some((major, minor, inode));
    }
    let backing = fs::read(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    let backing = backing.strip_suffix(b"\n").unwrap_or(&backing);
    let metadata = fs::metadata(std::ffi::OsStr::from_bytes(backing)).ok()?;
    Some((
        libc::major(metadata.dev()),
        libc::minor(metadata.dev()),
        metadata.ino(),
    ))
}

/// `_IO(0x4C, 0x05)` from linux/loop.h.
const LOOP_GET_STATUS64: libc::Ioctl = 0x4C05;

/// The device numbers (`MAJOR:MINOR`) through which the block device `name` can be mounted:
/// its own, its partitions' and those of the devices built on it (device-mapper, md).
fn devices_on(name: &str) -> Vec<String> {
    let directory = Path::new("/sys/class/block").join(name);
    let read_number = |path: PathBuf| {
        fs::read_to_string(path)
            .ok()
            .map(|number| number.trim().to_string())
    };
    let mut numbers: Vec<String> = read_number(directory.join("dev")).into_iter().collect();
    let partitions = fs::read_dir(&directory)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().as_bytes().starts_with(name.as_bytes()));
    let holders = fs::read_dir(directory.join("holders"))
        .into_iter()
        .flatten()
        .flatten();
    for entry in partitions.chain(holders) {
        numbers.extend(read_number(entry.path().join("dev")));
    }
    numbers
}

/// `MAJOR:MINOR`, as /proc/self/mountinfo and /sys write a device number.
fn device_number(rdev: u64) -> String {
    format!("{}:{}", libc::major(rdev), libc::minor(rdev))
}

/// A filesystem mounted from a block device.
struct Mount {
    point: String,
    /// Both the mount and the filesystem are read-write.
    read_write: bool,
}

/// Where the devices numbered `devices` (`MAJOR:MINOR`) are mounted, from
/// /proc/self/mountinfo. Empty when the table cannot be read.
fn mounts_of(devices: &[String]) -> Vec<Mount> {
    let Ok(table) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    // ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS
    table
        .lines()
        .filter_map(|line| {
            let (mount, filesystem) = line.split_once(" - ")?;
            let fields: Vec<&str> = mount.split(' ').collect();
            if !devices
                .iter()
                .any(|device| fields.get(2) == Some(&device.as_str()))
            {
                return None;
            }
            let read_write = |options: &str| options.split(',').any(|option| option == "rw");
            let super_options = filesystem.split(' ').nth(2).unwrap_or("rw");
            Some(Mount {
                point: unescape_mount_point(fields.get(4)?),
                read_write: read_write(fields.get(5)?) && read_write(super_options),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash in paths as `\040`-style octal escapes.
fn unescape_mount_point(field: &str) -> String {
    let mut bytes = Vec::with_capacity(field.len());
    let raw = field.as_bytes();
    let mut index = 0;
    while index < raw.len() {
        let octal = raw.get(index + 1..index + 4).and_then(|digits| {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        });
        match (raw[index], octal) {
            (b'\\', Some(byte)) => {
                bytes.push(byte);
                index += 4;
            }
            (byte, _) => {
                bytes.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Refuses when `path` names the same file as one of `images`, even through a link: writing
/// a diff over its own input destroys the input.
pub fn refuse_alias(path: &Path, role: Role, images: &[&OpenFile]) -> Result<()> {
    let Ok(metadata) = fs::metadata(path) else {
        return Ok(()); // Does not exist yet, so it cannot be any open image.
    };
    refuse_same_file(&metadata, path, role, images)
}

/// Refuses when the file of `metadata`, which is about to be written as `path`, is one of
/// `images`.
fn refuse_same_file(
    metadata: &Metadata,
    path: &Path,
    role: Role,
    images: &[&OpenFile],
) -> Result<()> {
    for image in images {
        if image.is_same_file(metadata)? {
            return Err(Error::unusable(
                format!("refusing to write {role}"),
                path,
                format!(
                    "it is the same file as {} {}; nothing was written",
                    image.role,
                    image.path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Where a diff is written. A regular OUTFILE (or a new one) is written to an unnamed file in
/// its directory and appears under its name only when [`Output::commit`] has flushed it to
/// disk: a failed or killed backup leaves no new OUTFILE and no temporary file. Character
/// devices and pipes are written directly, since they cannot be renamed into.
///
/// Replacing an existing OUTFILE needs a name for the new file during one rename, and a
/// filesystem without `O_TMPFILE` needs one all along: a backup killed then leaves
/// `.NAME.diff-dd-PID`. The next backup to the same OUTFILE removes such leftovers of
/// processes that no longer run.
pub struct Output {
    file: File,
    path: PathBuf,
    kind: OutputKind,
    /// What it is, for messages: OUTFILE, or NEXT (the digest backup --digest-out writes).
    role: Role,
}

enum OutputKind {
    /// An `O_TMPFILE` inode, linked under its final name by `commit`.
    Unnamed,
    /// A named temporary file (for filesystems without `O_TMPFILE`), removed on drop.
    Named(PathBuf),
    /// A character device, pipe or (forced) block device, written in place.
    Direct,
}

impl Output {
    /// Creates the diff to be written under `path` (links already followed, see
    /// [`follow_links`]). A block device is written only with `force`, and then opened
    /// exclusively, so a mounted one is still refused.
    pub fn create(path: &Path, force: bool) -> Result<Output> {
        Output::create_as(path, force, Role::Outfile)
    }

    /// [`Output::create`], for a file messages name as `role`.
    pub fn create_as(path: &Path, force: bool, role: Role) -> Result<Output> {
        let failed = |error: io::Error| Error::io(Action::Create, role, path, error);
        let refuse =
            |reason: &str| Error::unusable(format!("{} {role}", Action::Create), path, reason);
        let existing = fs::metadata(path).ok();
        if let Some(metadata) = &existing {
            let file_type = metadata.file_type();
            if file_type.is_dir() {
                return Err(refuse("it is a directory"));
            }
            refuse_loop_backing_file(metadata, path, role)?;
            if file_type.is_block_device() && !force {
                return Err(refuse(
                    "it is a block device, which a diff would overwrite from its first byte; give --force to write the diff onto it",
                ));
            }
            if !file_type.is_file() {
                let exclusive = if file_type.is_block_device() {
                    libc::O_EXCL
                } else {
                    0
                };
                let file = OpenOptions::new()
                    .write(true)
                    .custom_flags(exclusive)
                    .open(path)
                    .map_err(|error| match error.raw_os_error() {
                        Some(libc::EBUSY) => {
                            refuse(&format!("the device is mounted or in use: {error}"))
                        }
                        _ => failed(error),
                    })?;
                return Ok(Output {
                    file,
                    path: path.to_path_buf(),
                    kind: OutputKind::Direct,
                    role,
                });
            }
        }
        let directory = parent_directory(path);
        remove_stale_temporaries(path, directory);
        let unnamed = OpenOptions::new()
            .write(true)
            .mode(0o666)
            .custom_flags(libc::O_TMPFILE)
            .open(directory);
        let (file, kind) = match unnamed {
            Ok(file) => (file, OutputKind::Unnamed),
            // Filesystems without O_TMPFILE answer EOPNOTSUPP or EISDIR; fall back to a name.
            Err(error)
                if matches!(
                    error.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EISDIR)
                ) =>
            {
                let temporary = temporary_name(path);
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o666)
                    .open(&temporary)
                    .map_err(failed)?;
                (file, OutputKind::Named(temporary))
            }
            Err(error) => return Err(failed(error)),
        };
        if let Some(metadata) = existing {
            // Replacing a diff keeps the permissions its owner chose for it.
            let mode = metadata.permissions().mode() & 0o7777;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(failed)?;
        }
        Ok(Output {
            file,
            path: path.to_path_buf(),
            kind,
            role,
        })
    }

    /// Standard output: the diff (or image) is written as it is made (no temporary file, no
    /// rename: it is written front to back). Refused when it is a terminal, and when it is
    /// one of `inputs` or a file that backs a loop device: the shell opened it (`>>`, `1<>`)
    /// under a name diff-dd never saw, so it is compared by device and inode, as a named
    /// OUTFILE is, before anything is written.
    pub fn stdout(inputs: &[&OpenFile]) -> Result<Output> {
        let file = stdout_for_diff()?;
        let path = Path::new(STANDARD_OUTPUT);
        let metadata = file
            .metadata()
            .map_err(|error| Error::io(Action::Create, Role::Outfile, path, error))?;
        // A pipe or character device cannot be an input, which is a file or block device.
        if metadata.is_file() || metadata.file_type().is_block_device() {
            refuse_same_file(&metadata, path, Role::Outfile, inputs)?;
            refuse_loop_backing_file(&metadata, path, Role::Outfile)?;
        }
        Ok(Output {
            file,
            path: path.to_path_buf(),
            kind: OutputKind::Direct,
            role: Role::Outfile,
        })
    }

    /// Refuses when `other`, a second output of the same command, would land on this one: the
    /// same name however spelled (the same file name in the same directory, the directories
    /// compared once their links are resolved), or the same file (standard output redirected
    /// to it, or an existing file both names lead to). Whichever is committed last would
    /// replace the other, which a command that exits 0 must never do.
    pub fn refuse_same_destination(&self, other: &Output) -> Result<()> {
        let refuse = || {
            Err(Error::unusable(
                format!("refusing to write {}", other.role),
                &other.path,
                format!(
                    "it is the same file as {} {}; each needs a file of its own",
                    self.role,
                    self.path.display()
                ),
            ))
        };
        let is_stdout = |output: &Output| output.path == Path::new(STANDARD_OUTPUT);
        if !is_stdout(self) && !is_stdout(other) && same_place(&self.path, &other.path) {
            return refuse();
        }
        let identity = |metadata: fs::Metadata| (metadata.dev(), metadata.ino());
        // What each writes into, or will replace: its open file when written in place (a
        // device, standard output), else the file now under its name, if any.
        let targets = |output: &Output| {
            let open = match output.kind {
                OutputKind::Direct => output.file.metadata().ok().map(identity),
                _ => None,
            };
            let named = match is_stdout(output) {
                true => None,
                false => fs::metadata(&output.path).ok().map(identity),
            };
            [open, named]
        };
        let mine = targets(self);
        if targets(other)
            .iter()
            .flatten()
            .any(|target| mine.iter().flatten().any(|own| own == target))
        {
            return refuse();
        }
        Ok(())
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// The name the diff appears under once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the diff to disk and puts it under its name, replacing any previous OUTFILE
    /// in one step.
    pub fn commit(mut self) -> Result<()> {
        let path = self.path.clone();
        let role = self.role;
        let failed = |error: io::Error| Error::io(Action::Write, role, &path, error);
        // Taking the kind out means Drop has nothing left to clean up: from here on, this
        // function removes the temporary name itself when it fails.
        let temporary = match std::mem::replace(&mut self.kind, OutputKind::Direct) {
            OutputKind::Direct => {
                // A pipe or character device cannot be synced; a device that can, should be.
                return match self.file.sync_all() {
                    Err(error) if error.raw_os_error() == Some(libc::EINVAL) => Ok(()),
                    result => result.map_err(failed),
                };
            }
            OutputKind::Unnamed => {
                self.file.sync_all().map_err(failed)?;
                // With no previous OUTFILE, the link itself is the atomic step: no name but
                // the final one ever exists. (EEXIST: one appeared since; replace it.)
                match link_unnamed(&self.file, &self.path) {
                    Ok(()) => return sync_parent_directory(&self.path).map_err(failed),
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(error) => return Err(failed(error)),
                }
                let temporary = temporary_name(&self.path);
                link_unnamed(&self.file, &temporary).map_err(failed)?;
                temporary
            }
            OutputKind::Named(temporary) => {
                if let Err(error) = self.file.sync_all() {
                    let _ = fs::remove_file(&temporary);
                    return Err(failed(error));
                }
                temporary
            }
        };
        if let Err(error) = fs::rename(&temporary, &self.path) {
            let _ = fs::remove_file(&temporary);
            return Err(failed(error));
        }
        sync_parent_directory(&self.path).map_err(failed)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let OutputKind::Named(temporary) = &self.kind {
            let _ = fs::remove_file(temporary);
        }
    }
}

/// `.NAME.diff-dd-PID` beside `path`: hidden, and unique to this process.
fn temporary_name(path: &Path) -> PathBuf {
    let mut name = temporary_prefix(path);
    name.push(std::process::id().to_string());
    path.with_file_name(name)
}

/// `.NAME.diff-dd-`: what every temporary name for `path` starts with.
fn temporary_prefix(path: &Path) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".diff-dd-");
    prefix
}

/// Whether two paths (links followed) name the same entry of the same directory, whether or
/// not it exists yet: `x`, `./x` and `$PWD/x` do.
fn same_place(a: &Path, b: &Path) -> bool {
    let place = |path: &Path| {
        let directory = fs::canonicalize(parent_directory(path)).ok()?;
        Some((directory, path.file_name()?.to_os_string()))
    };
    a == b || matches!((place(a), place(b)), (Some(a), Some(b)) if a == b)
}

fn parent_directory(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Removes `.NAME.diff-dd-PID` files left beside `path` by backups that were killed while
/// the file had a name, when process PID no longer runs (or is this one, which has not made
/// its own yet). Only regular files of exactly that pattern are touched; failures to list or
/// remove are ignored, since they cannot harm the backup about to be made.
fn remove_stale_temporaries(path: &Path, directory: &Path) {
    let prefix = temporary_prefix(path);
    let Ok(entries) = fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .as_bytes()
            .strip_prefix(prefix.as_bytes())
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
        if is_file && (pid as u32 == std::process::id() || !process_runs(pid)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether a process `pid` exists (signal 0 checks without sending anything).
fn process_runs(pid: libc::pid_t) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Gives an `O_TMPFILE` inode a name, through /proc as open(2) recommends.
fn link_unnamed(file: &File, name: &Path) -> io::Result<()> {
    let source = format!("/proc/self/fd/{}\0", file.as_raw_fd());
    let mut target = name.as_os_str().as_bytes().to_vec();
    target.push(0);
    // SAFETY: both paths are NUL-terminated buffers that outlive the call.
    let result = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            source.as_ptr().cast(),
            libc::AT_FDCWD,
            target.as_ptr().cast(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A link or rename is durable only once the directory holding it is synced.
fn sync_parent_directory(path: &Path) -> io::Result<()> {
    File::open(parent_directory(path))?.sync_all()
}

/// How much is written before the kernel is asked to start writing it to the device.
const WRITEBACK_EVERY: u64 = 16 << 20;

/// Asks the kernel, every [`WRITEBACK_EVERY`] bytes written to a file, to start writing them to
/// the device now, without waiting: a restore that does so as it goes overlaps the device's
/// writes with its own work, instead of leaving them all to the final sync (the kernel would
/// otherwise start only once a tenth of memory is dirty). Only a hint: what fails here fails
/// again, and is reported, in that sync.
#[derive(Debug)]
pub struct Writeback {
    /// The range the bytes not yet handed to the kernel lie in, and how many there are.
    from: u64,
    to: u64,
    since: u64,
}

impl Default for Writeback {
    fn default() -> Writeback {
        Writeback {
            from: u64::MAX,
            to: 0,
            since: 0,
        }
    }
}

impl Writeback {
    /// `length` bytes at `offset` were written to `file` (in any order: the range handed to
    /// the kernel covers them all).
    pub fn wrote(&mut self, file: &File, offset: u64, length: u64) {
        self.from = self.from.min(offset);
        self.to = self.to.max(offset.saturating_add(length));
        self.since += length;
        if self.since < WRITEBACK_EVERY {
            return;
        }
        let (from, to) = (self.from, self.to);
        *self = Writeback::default();
        let (Ok(offset), Ok(length)) = (i64::try_from(from), i64::try_from(to - from)) else {
            return;
        };
        // SAFETY: a plain system call on a descriptor the caller holds; it touches no memory.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset,
                length,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn names(directory: &Path) -> Vec<OsString> {
        let mut names: Vec<_> = fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_output_appears_under_its_name_only_when_committed() {
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("new.diff");
        let output = Output::create(&path, false).unwrap();
        output.file().write_all(b"diff").unwrap();
        assert!(names(work.path()).is_empty(), "a name before the commit");
        output.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"diff");
        assert_eq!(names(work.path()), [OsString::from("new.diff")]);
    }

    #[test]
    fn a_replaced_output_keeps_its_permissions_and_an_abandoned_one_leaves_nothing() {
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("old.diff");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

        let abandoned = Output::create(&path, false).unwrap();
        abandoned.file().write_all(b"half").unwrap();
        drop(abandoned);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(work.path()), [OsString::from("old.diff")]);

        let output = Output::create(&path, false).unwrap();
        output.file().write_all(b"new").unwrap();
        output.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(names(work.path()), [OsString::from("old.diff")]);
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount_point("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape_mount_point("/a\\134b"), "/a\\b");
        assert_eq!(unescape_mount_point("/plain\\x"), "/plain\\x");
    }

    #[test]
    fn a_short_read_says_the_file_changed_size() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[0; 100]).unwrap();
        let image = OpenFile::from_file(file, "small.img", Role::Infile).unwrap();
        let mut buffer = [0u8; 10];
        let error = image.read_at(95, &mut buffer).unwrap_err();
        assert!(
            matches!(
                &error,
                Error::Io {
                    action: Action::Read,
                    role: Role::Infile,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("ended before byte 105"),
            "{error}"
        );
    }
}
