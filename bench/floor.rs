//! The floor for restore in bench/run.sh: an original-style apply with no checks. Reads an
//! extents file (u64 LE offset, u64 LE length, then the bytes, repeated), writes each extent
//! into TARGET with one pwrite, then fsyncs. Compiled by the bench with `rustc --edition 2021 -O`.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;

fn main() -> std::io::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, extents, target] = &arguments[..] else {
        eprintln!("usage: floor EXTENTS TARGET");
        std::process::exit(2);
    };
    let mut data = Vec::new();
    File::open(extents)?.read_to_end(&mut data)?;
    let target = OpenOptions::new().write(true).open(target)?;
    let number = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap());
    let mut at = 0;
    while at + 16 <= data.len() {
        let (offset, length) = (number(at), number(at + 8) as usize);
        target.write_all_at(&data[at + 16..at + 16 + length], offset)?;
        at += 16 + length;
    }
    target.sync_all()
}
