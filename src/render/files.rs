//! inspect --files: the audit of a diff by file, as text for people or one JSON document.
//! Paths come from the filesystem, which is outside data: in text they go through
//! [`printable`]; in JSON, bytes that are not UTF-8 become U+FFFD.

use std::io::{self, Write};

use serde::Serialize;

use super::{printable, Style};
use crate::error::{Error, Result};
use crate::ops::inspect_files::{Audit, ExtAudit, FilesReport};
use crate::units::human_bytes;

/// Writes the audit in `style`.
pub fn write_files(report: &FilesReport, style: Style, out: &mut dyn Write) -> Result<()> {
    let written = match style {
        Style::Json => write_json(report, out),
        Style::Text | Style::VerboseText => write_text(report, style == Style::VerboseText, out),
    };
    written.map_err(|source| Error::Output {
        what: "the audit",
        source,
    })
}

fn write_text(report: &FilesReport, verbose: bool, out: &mut dyn Write) -> io::Result<()> {
    let diffs: Vec<String> = report
        .diffs
        .iter()
        .map(|diff| printable(&diff.to_string_lossy()).into_owned())
        .collect();
    writeln!(
        out,
        "image:          {} with {} laid over it",
        printable(&report.full.to_string_lossy()),
        diffs.join(", ")
    )?;
    writeln!(
        out,
        "changed bytes:  {} ({}) in the diffs' extents",
        report.changed_bytes,
        human_bytes(report.changed_bytes)
    )?;
    writeln!(
        out,
        "differing:      {} ({}) of them, in sectors of {} bytes that differ from FULL",
        report.differing_bytes,
        human_bytes(report.differing_bytes),
        report.sector_size
    )?;
    let audit = match &report.audit {
        Audit::Ext(audit) => audit,
        Audit::NoFilesystem(what) => {
            return writeln!(out, "filesystem:     none: {}", printable(what));
        }
    };
    let label = if audit.volume_name.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", printable(&audit.volume_name))
    };
    writeln!(
        out,
        "filesystem:     {}{label}, {} blocks of {} bytes, {} inodes",
        audit.kind, audit.blocks_count, audit.block_size, audit.inodes_count
    )?;
    if !audit.base_has_filesystem {
        writeln!(
            out,
            "                (FULL holds none: every file is added)"
        )?;
    }
    writeln!(out)?;
    write_file_table(audit, verbose, out)?;
    writeln!(out)?;
    writeln!(out, "metadata:")?;
    let mut any = false;
    for (kind, bytes) in &audit.metadata {
        if *bytes > 0 || verbose {
            any = true;
            writeln!(out, "  {:<27}{:>12}", kind.label(), human_bytes(*bytes))?;
        }
    }
    if !any {
        writeln!(out, "  none changed")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "free space:     {} in blocks free in both images (left by data written and deleted)",
        human_bytes(audit.free_bytes)
    )?;
    if audit.unowned_bytes > 0 || verbose {
        writeln!(
            out,
            "unowned:        {} in blocks in use that no inode or metadata read here owns",
            human_bytes(audit.unowned_bytes)
        )?;
    }
    if audit.beyond_bytes > 0 || verbose {
        writeln!(
            out,
            "past the end:   {} after the filesystem's last block",
            human_bytes(audit.beyond_bytes)
        )?;
    }
    Ok(())
}

fn write_file_table(audit: &ExtAudit, verbose: bool, out: &mut dyn Write) -> io::Result<()> {
    if audit.files.is_empty() {
        return writeln!(out, "files:          none changed");
    }
    writeln!(out, "files ({}):", audit.files.len())?;
    writeln!(
        out,
        "  {:<9} {:>11} {:>11} {:<6} {:<10} path",
        "status", "data", "map", "inode", "kind"
    )?;
    for file in &audit.files {
        let bytes = |bytes: u64| {
            if bytes == 0 {
                "-".to_string()
            } else {
                human_bytes(bytes)
            }
        };
        let inode = if verbose {
            format!(
                "{}{}",
                file.inode,
                if file.inode_changed { "*" } else { "" }
            )
        } else if file.inode_changed {
            "yes".to_string()
        } else {
            "-".to_string()
        };
        write!(
            out,
            "  {:<9} {:>11} {:>11} {:<6} {:<10} {}",
            file.status.name(),
            bytes(file.data_bytes),
            bytes(file.map_bytes),
            inode,
            file.kind.name(),
            printable(&file.display_path())
        )?;
        match &file.base_path {
            Some(base_path) => writeln!(
                out,
                "  (moved from {})",
                printable(&String::from_utf8_lossy(base_path))
            )?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonFilesystem<'a> {
    kind: &'a str,
    block_size: u64,
    blocks_count: u64,
    inodes_count: u32,
    volume_name: &'a str,
    base_has_filesystem: bool,
}

#[derive(Serialize)]
struct JsonFile {
    path: Option<String>,
    inode: u32,
    kind: &'static str,
    status: &'static str,
    data_bytes: u64,
    map_bytes: u64,
    inode_changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_path: Option<String>,
}

fn write_json(report: &FilesReport, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &json_document(report)?)?;
    writeln!(out)
}

/// When the image holds no ext2/3/4 filesystem: the audit's lines (text) or fields (JSON,
/// with `listings`), then the listing of each diff as plain inspect gives it.
pub fn write_without_filesystem(
    report: &FilesReport,
    listings: &mut [crate::ops::Listing<'_>],
    style: Style,
    out: &mut dyn Write,
) -> Result<()> {
    let written = |result: io::Result<()>| {
        result.map_err(|source| Error::Output {
            what: "the audit",
            source,
        })
    };
    if style != Style::Json {
        written(write_text(report, false, out))?;
        for listing in listings {
            written(writeln!(out))?;
            super::write_listing(listing, style, out)?;
        }
        return Ok(());
    }
    let mut text = json_document(report)
        .and_then(|document| serde_json::to_string(&document).map_err(io::Error::from))
        .map_err(|source| Error::Output {
            what: "the audit",
            source,
        })?;
    text.pop(); // the closing brace
    written(out.write_all(text.as_bytes()))?;
    written(out.write_all(b",\"listings\":["))?;
    let mut result = Ok(());
    for (index, listing) in listings.iter_mut().enumerate() {
        if index > 0 {
            written(out.write_all(b","))?;
        }
        // A corrupt diff still ends its document (with an error field): go on closing ours.
        if let Err(error) = super::write_listing_ending(listing, style, b"", out) {
            if matches!(error, Error::Output { .. }) {
                return Err(error);
            }
            result = Err(error);
            break;
        }
    }
    written(out.write_all(b"]}\n"))?;
    result
}

/// A path for JSON: bytes that are not UTF-8 become U+FFFD.
fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn json_document(report: &FilesReport) -> io::Result<serde_json::Value> {
    let mut document = serde_json::json!({
        "full": report.full.to_string_lossy(),
        "diffs": report.diffs.iter().map(|diff| diff.to_string_lossy()).collect::<Vec<_>>(),
        "image_size": report.image_size,
        "sector_size": report.sector_size,
        "changed_bytes": report.changed_bytes,
        "differing_bytes": report.differing_bytes,
    });
    match &report.audit {
        Audit::NoFilesystem(what) => {
            document["filesystem"] = serde_json::Value::Null;
            document["found"] = what.as_str().into();
        }
        Audit::Ext(audit) => {
            document["filesystem"] = serde_json::to_value(JsonFilesystem {
                kind: audit.kind,
                block_size: audit.block_size,
                blocks_count: audit.blocks_count,
                inodes_count: audit.inodes_count,
                volume_name: &audit.volume_name,
                base_has_filesystem: audit.base_has_filesystem,
            })?;
            let files: Vec<JsonFile> = audit
                .files
                .iter()
                .map(|file| JsonFile {
                    path: file.path.as_deref().map(lossy),
                    inode: file.inode,
                    kind: file.kind.name(),
                    status: file.status.name(),
                    data_bytes: file.data_bytes,
                    map_bytes: file.map_bytes,
                    inode_changed: file.inode_changed,
                    base_path: file.base_path.as_deref().map(lossy),
                })
                .collect();
            document["files"] = serde_json::to_value(files)?;
            let metadata: serde_json::Map<String, serde_json::Value> = audit
                .metadata
                .iter()
                .map(|(kind, bytes)| (kind.name().to_string(), (*bytes).into()))
                .collect();
            document["metadata"] = metadata.into();
            document["free_bytes"] = audit.free_bytes.into();
            document["unowned_bytes"] = audit.unowned_bytes.into();
            document["beyond_bytes"] = audit.beyond_bytes.into();
        }
    }
    Ok(document)
}

/// The JSON document of an audit that failed before it could be made: the files named and
/// the error.
pub fn write_files_failure(
    full: &std::path::Path,
    diffs: &[std::path::PathBuf],
    error: &Error,
    out: &mut dyn Write,
) -> Result<()> {
    let document = serde_json::json!({
        "full": full.to_string_lossy(),
        "diffs": diffs.iter().map(|diff| diff.to_string_lossy()).collect::<Vec<_>>(),
        "error": error.to_string(),
        "exit_code": error.exit_code(crate::error::Reporting::Check),
    });
    serde_json::to_writer(&mut *out, &document)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(out))
        .map_err(|source| Error::Output {
            what: "the audit",
            source,
        })
}
