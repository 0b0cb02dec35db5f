//! Reading inputs with size limits and writing outputs atomically.
//!
//! `-` names stdin or stdout. An output file is written to a temporary file
//! beside it and renamed into place, so a failure never leaves a truncated
//! or half-written object where the old one was.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::failure::Failure;

/// Reads `path` (or stdin for `-`), refusing more than `limit` bytes.
pub fn read_input(path: &Path, what: &str, limit: usize) -> Result<Vec<u8>, Failure> {
    let shown = display(path);
    let mut reader: Box<dyn Read> = if is_dash(path) {
        Box::new(std::io::stdin().lock())
    } else {
        if path.is_dir() {
            return Err(Failure::bad_input(format!(
                "cannot read {what} {shown}: it is a directory"
            )));
        }
        let file = fs::File::open(path).map_err(|e| {
            Failure::bad_input(format!("cannot read {what} {shown}: {e}"))
                .with_hint("check the path; use - to read from standard input")
        })?;
        Box::new(file)
    };
    let mut bytes = Vec::new();
    reader
        .by_ref()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::bad_input(format!("cannot read {what} {shown}: {e}")))?;
    if bytes.len() > limit {
        return Err(Failure::bad_input(format!(
            "{what} {shown} is larger than the limit of {limit} bytes"
        )));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically (or to stdout for `-`).
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if is_dash(path) {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|_| out.flush())
            .map_err(|e| Failure::bad_input(format!("cannot write to standard output: {e}")));
    }
    let shown = display(path);
    if path.is_dir() {
        return Err(Failure::bad_input(format!(
            "cannot write {shown}: it is a directory"
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Failure::bad_input(format!("cannot write {shown}: not a file path")))?;
    let tmp = dir.join(format!(
        ".{}.lagic-tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        // No fsync: like other compilers, lagic leaves durability to the
        // file system; the rename is what keeps a failed or interrupted
        // write from ever showing as a truncated object.
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Failure::bad_input(format!("cannot write {shown}: {e}")));
    }
    Ok(())
}

pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How a path is named in messages.
pub fn display(path: &Path) -> String {
    if is_dash(path) {
        "<stdin>".to_string()
    } else {
        format!("'{}'", path.display())
    }
}

/// Writes a command's report to stdout, ignoring a closed pipe
/// (`lagic disasm X.o | head` must not panic).
pub fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}
