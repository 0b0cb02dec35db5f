//! Reading inputs with size limits, writing outputs atomically, and making text from specs
//! and objects safe to print.
//!
//! Invariants:
//! - `-` names stdin or stdout.
//! - Inputs: regular files and FIFOs (pipes such as bash's `<(...)` included) are read up to a
//!   limit. A FIFO is opened without waiting for a writer; lagic waits at most
//!   [`FIFO_WRITER_WAIT`] for one to connect and then reads until it closes. Device nodes and
//!   other file types are refused unopened (opening a device can have effects); `- < PATH`
//!   reads them on purpose.
//! - Outputs (`-o PATH`): the object goes to a new temporary file in PATH's directory, created
//!   with `O_CREAT|O_EXCL|O_NOFOLLOW` under an unpredictable name, and is then renamed over
//!   PATH. So a failure never leaves a truncated object, nothing another user planted at a
//!   guessable name is followed or reused, and a symlink at PATH is replaced itself, its
//!   target untouched. PATH must be absent, a regular file or a symlink: lagic never replaces a
//!   device node, FIFO or socket (that is what `-o -` with a shell redirection is for).
//! - Standard output: every write error is reported (exit 2), except that a report whose
//!   reader has gone away (EPIPE, `lagic disasm X.o | head`) ends quietly; an object written to
//!   `-o -` that the reader did not take is an error.
//! - Everything printed that came from a spec or an object passes through
//!   [`escape_controls`] first.

use std::borrow::Cow;
use std::fs;
use std::io::{self as stdio, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::failure::Failure;

/// How long a FIFO input may go without any writer before lagic gives up on it. Once a writer
/// has connected, lagic waits for its data as it waits for stdin.
pub const FIFO_WRITER_WAIT: Duration = Duration::from_secs(10);

/// Reads `path` (or stdin for `-`), refusing more than `limit` bytes.
pub fn read_input(path: &Path, what: &str, limit: usize) -> Result<Vec<u8>, Failure> {
    let shown = display(path);
    let cannot =
        |e: &dyn std::fmt::Display| Failure::bad_input(format!("cannot read {what} {shown}: {e}"));
    let bytes = if is_dash(path) {
        // Descriptor 0 itself, not Rust's `Stdin`, which reads a closed descriptor as empty.
        // SAFETY: descriptor 0 is open for the whole run (main.rs reserves it where it was
        // closed at exec), and ManuallyDrop never closes it.
        let stdin = std::mem::ManuallyDrop::new(unsafe {
            <fs::File as std::os::fd::FromRawFd>::from_raw_fd(0)
        });
        let mut bytes = Vec::new();
        (&*stdin)
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| cannot(&e))?;
        bytes
    } else {
        // Judge the type before opening: opening a device node can have effects.
        let meta = fs::metadata(path).map_err(|e| {
            cannot(&e).with_hint("check the path; use - to read from standard input")
        })?;
        refuse_unreadable_type(&meta.file_type(), what, &shown)?;
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| cannot(&e))?;
        // The path may have been swapped since the check; judge what was opened.
        let file_type = file.metadata().map_err(|e| cannot(&e))?.file_type();
        refuse_unreadable_type(&file_type, what, &shown)?;
        if file_type.is_fifo() {
            read_fifo(file, limit, &shown, what)?
        } else {
            set_blocking(&file).map_err(|e| cannot(&e))?;
            let mut bytes = Vec::new();
            file.take(limit as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| cannot(&e))?;
            bytes
        }
    };
    if bytes.len() > limit {
        return Err(Failure::bad_input(format!(
            "{what} {shown} is larger than the limit of {limit} bytes"
        )));
    }
    Ok(bytes)
}

fn refuse_unreadable_type(t: &fs::FileType, what: &str, shown: &str) -> Result<(), Failure> {
    if t.is_file() || t.is_fifo() {
        return Ok(());
    }
    if t.is_dir() {
        return Err(Failure::bad_input(format!(
            "cannot read {what} {shown}: it is a directory"
        )));
    }
    Err(Failure::bad_input(format!(
        "cannot read {what} {shown}: it is a {}; lagic reads regular files, FIFOs and standard input",
        kind(t)
    ))
    .with_hint(format!(
        "to read it anyway, give - and redirect it: ... - < {}",
        shown.trim_matches('\'')
    )))
}

/// What a file type is called in messages.
fn kind(t: &fs::FileType) -> &'static str {
    if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Reads a FIFO opened with `O_NONBLOCK`. A read of 0 bytes means "no writer": the end of
/// the data once a writer has been seen, and before that a reason to wait (bounded) for one.
fn read_fifo(
    mut file: fs::File,
    limit: usize,
    shown: &str,
    what: &str,
) -> Result<Vec<u8>, Failure> {
    let cannot = |e: stdio::Error| Failure::bad_input(format!("cannot read {what} {shown}: {e}"));
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut writer_seen = false;
    let mut waited = false;
    loop {
        match file.read(&mut buf) {
            Ok(0) if writer_seen => break,
            Ok(0) if waited => {
                return Err(Failure::bad_input(format!(
                    "cannot read {what} {shown}: it is a FIFO and no process opened it for \
                     writing within {} seconds",
                    FIFO_WRITER_WAIT.as_secs()
                ))
                .with_hint("start the writer first, or pipe the data into - instead"));
            }
            Ok(0) => {
                // Linux reports neither POLLIN nor POLLHUP on a FIFO that no writer has
                // opened since we did, so this sleeps until a writer acts or time is up.
                // A writer that connected and stays quiet shows as EAGAIN on the next read.
                let acted = poll_readable(&file, FIFO_WRITER_WAIT.as_millis() as libc::c_int)
                    .map_err(cannot)?;
                writer_seen = acted;
                waited = !acted;
            }
            Ok(n) => {
                writer_seen = true;
                bytes.extend_from_slice(&buf[..n]);
                if bytes.len() > limit {
                    break;
                }
            }
            Err(e) if e.kind() == stdio::ErrorKind::WouldBlock => {
                // A writer is connected but has not written yet: wait like for stdin.
                writer_seen = true;
                poll_readable(&file, -1).map_err(cannot)?;
            }
            Err(e) if e.kind() == stdio::ErrorKind::Interrupted => {}
            Err(e) => return Err(cannot(e)),
        }
    }
    Ok(bytes)
}

/// poll(2) for input (or hang-up) on `file`; false on timeout. `timeout_ms` -1 waits forever.
fn poll_readable(file: &fs::File, timeout_ms: libc::c_int) -> stdio::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = stdio::Error::last_os_error();
        if e.kind() != stdio::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn set_blocking(file: &fs::File) -> stdio::Result<()> {
    let fd = file.as_raw_fd();
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(stdio::Error::last_os_error());
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (or to stdout for `-`); see the module docs.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if is_dash(path) {
        return write_stdout(bytes).map_err(|e| {
            Failure::bad_input(format!("cannot write the object to standard output: {e}"))
        });
    }
    write_file_atomically(path, bytes, &mut random_temp_name)
}

/// How many fresh temporary names to try before giving up (each collision is either chance,
/// at 64 random bits, or someone planting files).
const TEMP_NAME_ATTEMPTS: usize = 16;

/// [`write_output`] to a file, with the source of temporary names given (tests plant files
/// at the names it will produce).
fn write_file_atomically(
    path: &Path,
    bytes: &[u8],
    next_name: &mut dyn FnMut() -> stdio::Result<String>,
) -> Result<(), Failure> {
    let shown = display(path);
    let cannot =
        |e: &dyn std::fmt::Display| Failure::bad_input(format!("cannot write {shown}: {e}"));
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            let t = meta.file_type();
            if t.is_dir() {
                return Err(cannot(&"it is a directory"));
            }
            if !t.is_file() && !t.is_symlink() {
                return Err(cannot(&format!(
                    "it is a {}, not a regular file; lagic replaces only regular files \
                     (and symbolic links, themselves)",
                    kind(&t)
                ))
                .with_hint(format!(
                    "to write the object into it, use -o - and redirect: ... -o - > {}",
                    shown.trim_matches('\'')
                )));
            }
        }
        Err(e) if e.kind() == stdio::ErrorKind::NotFound => {}
        // A file where a directory of the path should be: said as such by temp_failure.
        Err(e) if e.raw_os_error() != Some(libc::ENOTDIR) => return Err(cannot(&e)),
        Err(_) => {}
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.file_name().is_none() {
        return Err(cannot(&"not a file path"));
    }
    let (tmp, mut file) =
        create_temp(&dir, next_name).map_err(|e| temp_failure(&shown, &dir, &e))?;
    // No fsync: like other compilers, lagic leaves durability to the file system; the rename
    // is what keeps a failed or interrupted write from ever showing as a truncated object.
    let result = file.write_all(bytes).and_then(|()| {
        drop(file);
        fs::rename(&tmp, path)
    });
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(cannot(&e));
    }
    Ok(())
}

/// Why no temporary file could be made in `dir`, said in terms of what the user gave: a
/// missing directory is named as such (the bare `ENOENT` reads as if OUT itself were missing).
fn temp_failure(shown: &str, dir: &Path, e: &stdio::Error) -> Failure {
    let dir_shown = display(dir);
    match fs::metadata(dir) {
        Err(_) => Failure::bad_input(format!(
            "cannot write {shown}: the directory {dir_shown} does not exist"
        ))
        .with_hint(format!(
            "create it first (mkdir -p {}) or choose another path",
            dir_shown.trim_matches('\'')
        )),
        Ok(meta) if !meta.is_dir() => Failure::bad_input(format!(
            "cannot write {shown}: {dir_shown} is not a directory"
        )),
        Ok(_) => Failure::bad_input(format!(
            "cannot write {shown}: cannot create a file in {dir_shown}: {e}"
        ))
        .with_hint(
            "lagic writes a new file beside the output and renames it over it, so it needs to \
             create files in that directory; choose another path, or write through standard \
             output: -o - > PATH",
        ),
    }
}

/// A new file in `dir` that no one else has opened: `O_EXCL` refuses any existing name
/// (a planted file or symlink), `O_NOFOLLOW` any symlink. Mode 0666 less the umask.
fn create_temp(
    dir: &Path,
    next_name: &mut dyn FnMut() -> stdio::Result<String>,
) -> stdio::Result<(PathBuf, fs::File)> {
    let mut last = None;
    for _ in 0..TEMP_NAME_ATTEMPTS {
        let tmp = dir.join(next_name()?);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == stdio::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(stdio::Error::new(
        stdio::ErrorKind::AlreadyExists,
        format!(
            "{TEMP_NAME_ATTEMPTS} fresh temporary names were all taken in {} ({})",
            dir.display(),
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    ))
}

/// `.lagic-tmp-` and 64 random bits in hex, from getrandom(2).
fn random_temp_name() -> stdio::Result<String> {
    let mut raw = [0u8; 8];
    let mut filled = 0;
    while filled < raw.len() {
        let rc =
            unsafe { libc::getrandom(raw[filled..].as_mut_ptr().cast(), raw.len() - filled, 0) };
        if rc < 0 {
            let e = stdio::Error::last_os_error();
            if e.kind() == stdio::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += rc as usize;
    }
    Ok(format!(".lagic-tmp-{:016x}", u64::from_ne_bytes(raw)))
}

/// Writes all of `bytes` to file descriptor 1, reporting every error. (Rust's `Stdout`
/// reports a closed descriptor 1 as success.)
fn write_stdout(mut bytes: &[u8]) -> stdio::Result<()> {
    // Whatever `print!` buffered goes first.
    let _ = stdio::stdout().flush();
    while !bytes.is_empty() {
        let n = unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = stdio::Error::last_os_error();
            if e.kind() == stdio::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(stdio::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Writes a command's report to stdout with control characters escaped (keeping line
/// breaks and tabs). A reader that went away (`lagic disasm X.o | head`) is not an error;
/// any other write error is (exit 2).
pub fn print_out(text: &str) -> Result<(), Failure> {
    match write_stdout(escape_controls(text, true).as_bytes()) {
        Err(e) if e.kind() != stdio::ErrorKind::BrokenPipe => Err(Failure::bad_input(format!(
            "cannot write to standard output: {e}"
        ))),
        _ => Ok(()),
    }
}

/// Writes `text` and a line break to stderr, with control characters escaped; a stderr that
/// cannot be written is ignored (`eprintln!` would panic), since there is nowhere to report it.
pub fn print_err(text: &str) {
    let line = format!("{}\n", escape_controls(text, true));
    let _ = stdio::stderr().write_all(line.as_bytes());
}

pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How a path is named in messages: quoted, on one line whatever it contains.
pub fn display(path: &Path) -> String {
    if is_dash(path) {
        "<stdin>".to_string()
    } else {
        format!("'{}'", escape_controls(&path.display().to_string(), false))
    }
}

/// `text` with every control character (C0, DEL, C1) and bidirectional-override character
/// written as an escape (`\x1b`, `\r`, `\u{9b}`, `\u{202e}`), so text from a spec or object
/// can neither drive the terminal nor disguise itself. With `keep_lines`, `\n` and `\t` stay
/// as they are (for multi-line reports whose line structure lagic made); without it, a field
/// stays on one line.
pub fn escape_controls(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let needs_escape = |c: char| {
        (c.is_control() && !(keep_lines && (c == '\n' || c == '\t')))
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !needs_escape(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn escape_controls_escapes_terminal_controls_only() {
        assert!(matches!(
            escape_controls("plain text: é ✓", false),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_controls("a\u{1b}[2J\rb\u{7}\u{7f}\u{9b}c\u{202e}d", false),
            r"a\x1b[2J\rb\x07\x7f\u{9b}c\u{202e}d"
        );
        assert_eq!(escape_controls("one\ntwo\tx", false), r"one\ntwo\tx");
        assert_eq!(escape_controls("one\ntwo\tx\r", true), "one\ntwo\tx\\r");
    }

    /// Names the test decides, in order, after which a fresh one.
    fn names(planted: Vec<String>) -> impl FnMut() -> stdio::Result<String> {
        let mut planted = planted.into_iter();
        move || Ok(planted.next().unwrap_or_else(|| ".fresh".to_owned()))
    }

    #[test]
    fn planted_temporary_names_are_skipped_not_followed_or_reused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".planted-link")).unwrap();
        fs::write(dir.path().join(".planted-file"), b"planted").unwrap();
        let planted_ino = fs::metadata(dir.path().join(".planted-file"))
            .unwrap()
            .ino();
        let out = dir.path().join("out.o");
        write_file_atomically(
            &out,
            b"object",
            &mut names(vec![".planted-link".into(), ".planted-file".into()]),
        )
        .unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"object");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(
            fs::read(dir.path().join(".planted-file")).unwrap(),
            b"planted"
        );
        assert_ne!(fs::metadata(&out).unwrap().ino(), planted_ino);
        assert!(fs::symlink_metadata(dir.path().join(".planted-link"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(!dir.path().join(".fresh").exists(), "renamed into place");
    }

    #[test]
    fn all_temporary_names_taken_is_an_error_that_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".taken"), b"planted").unwrap();
        let out = dir.path().join("out.o");
        fs::write(&out, b"previous").unwrap();
        let err =
            write_file_atomically(&out, b"object", &mut || Ok(".taken".to_owned())).unwrap_err();
        assert!(
            err.message.contains("temporary names were all taken"),
            "{}",
            err.message
        );
        assert_eq!(fs::read(&out).unwrap(), b"previous");
        assert_eq!(fs::read(dir.path().join(".taken")).unwrap(), b"planted");
    }

    #[test]
    fn random_temp_names_differ() {
        let a = random_temp_name().unwrap();
        let b = random_temp_name().unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with(".lagic-tmp-") && a.len() == ".lagic-tmp-".len() + 16,
            "{a}"
        );
    }
}
