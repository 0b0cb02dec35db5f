//! What `lagic` does with the files it is pointed at, where another user or a mistake could
//! turn a write into damage or a read into a hang:
//!
//! - `-o` never replaces a device node or FIFO, never follows a symlink at the output path
//!   (the link itself is replaced) and never writes through a temporary file someone else
//!   created, whatever name they guessed;
//! - inputs that are FIFOs with no writer fail within a bounded time instead of hanging, and
//!   device nodes are refused (standard input, `-`, stays the way to read anything else);
//! - a report or object that cannot be written (full device, closed stdout) is exit 2 with a
//!   message, not a silent exit 0;
//! - control characters from a spec never reach the terminal raw.
//!
//! Device nodes are made with mknod in a temporary directory (the numbers of /dev/null and
//! /dev/full), never the system's own; that needs root, so those tests skip without it unless
//! `CI` is set.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn lagic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lagic"))
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(format!("{name}.json"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn c_path(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// A character device node at `path` with the given numbers (1,3 is null; 1,7 is full), or
/// `None` where this process may not make one (not root) and `CI` is unset.
fn char_device(path: &Path, major: u32, minor: u32) -> Option<()> {
    let rc = unsafe {
        libc::mknod(
            c_path(path).as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    if rc == 0 {
        return Some(());
    }
    let err = std::io::Error::last_os_error();
    if std::env::var_os("CI").is_some() {
        panic!("mknod {}: {err} (CI is set, so this fails)", path.display());
    }
    eprintln!("SKIPPED: mknod needs root: {err}");
    None
}

fn fifo(path: &Path) {
    let rc = unsafe { libc::mkfifo(c_path(path).as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// Starts `cmd` with its stdout and stderr piped, for [`wait_within`].
fn spawn_piped(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `limit`; kills it and panics if it is still running then.
fn wait_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn compile_to(out: &Path) -> Output {
    lagic()
        .arg("compile")
        .arg(example("minimal"))
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn output_refuses_a_fifo_and_leaves_it_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.fifo");
    fifo(&path);
    let out = compile_to(&path);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_fifo());
    assert_eq!(names_in(dir.path()), ["out.fifo"], "files left behind");
}

#[test]
fn output_refuses_a_device_node_and_leaves_it_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("null");
    if char_device(&path, 1, 3).is_none() {
        return;
    }
    let before = fs::symlink_metadata(&path).unwrap();
    let out = compile_to(&path);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not a regular file"), "{err}");
    assert!(
        err.contains("-o -"),
        "the hint names the way to write anyway: {err}"
    );
    let after = fs::symlink_metadata(&path).unwrap();
    assert!(after.file_type().is_char_device());
    assert_eq!(after.rdev(), before.rdev());
    assert_eq!(after.ino(), before.ino());
    assert_eq!(names_in(dir.path()), ["null"], "files left behind");
}

/// A symlink at the output path is replaced by the object; its target is never written.
#[test]
fn output_replaces_a_symlink_itself_not_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let link = dir.path().join("out.o");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = compile_to(&link);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    let meta = fs::symlink_metadata(&link).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by a file"
    );
    assert!(fs::read(&link).unwrap().starts_with(b"\x7fELF"));

    // A symlink to a FIFO: same, and the FIFO is not opened (that would block).
    let pipe = dir.path().join("pipe");
    fifo(&pipe);
    let link = dir.path().join("to-pipe.o");
    std::os::unix::fs::symlink(&pipe, &link).unwrap();
    let child = spawn_piped(
        lagic()
            .arg("compile")
            .arg(example("minimal"))
            .arg("-o")
            .arg(&link),
    );
    let out = wait_within(child, Duration::from_secs(60), "compile -o link-to-fifo");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(fs::symlink_metadata(&pipe).unwrap().file_type().is_fifo());
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_file());
}

/// The old temporary name was `.NAME.lagic-tmp-PID`: a shell that execs lagic keeps its PID,
/// so `$$` names it exactly. A symlink planted there must not be followed, and a file planted
/// there (owned by someone else, who could rewrite it after the rename) must not become the
/// object.
#[test]
fn planted_temporary_files_are_neither_followed_nor_used() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let out_path = dir.path().join("out.o");
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"ln -s "$1" "$2/.out.o.lagic-tmp-$$" && exec "$0" compile "$3" -o "$2/out.o""#)
        .arg(env!("CARGO_BIN_EXE_lagic"))
        .arg(&victim)
        .arg(dir.path())
        .arg(example("minimal"))
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        fs::read(&victim).unwrap() == b"precious",
        "followed the symlink: the victim was overwritten"
    );
    assert!(fs::read(&out_path).unwrap().starts_with(b"\x7fELF"));

    let out_path = dir.path().join("again.o");
    let planted_at = Command::new("sh")
        .arg("-c")
        .arg(
            r#"printf planted > "$2/.again.o.lagic-tmp-$$" && echo "$2/.again.o.lagic-tmp-$$" >&2 &&
               exec "$0" compile "$3" -o "$2/again.o""#,
        )
        .arg(env!("CARGO_BIN_EXE_lagic"))
        .arg(&victim)
        .arg(dir.path())
        .arg(example("minimal"))
        .output()
        .unwrap();
    assert!(planted_at.status.success(), "{}", stderr(&planted_at));
    let planted = PathBuf::from(stderr(&planted_at).lines().next().unwrap().trim());
    assert_eq!(
        fs::read(&planted).unwrap(),
        b"planted",
        "the planted file was written to (and then renamed into place)"
    );
    let object = fs::metadata(&out_path).unwrap();
    assert_ne!(object.ino(), fs::metadata(&planted).unwrap().ino());
    assert!(fs::read(&out_path).unwrap().starts_with(b"\x7fELF"));
}

/// A FIFO nobody writes to fails within a bounded time for every command that reads a file.
#[test]
fn a_fifo_input_without_a_writer_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.fifo");
    fifo(&path);
    let p = path.to_str().unwrap();
    let out_o = dir.path().join("out.o");
    let minimal = example("minimal");
    let commands: Vec<Vec<&str>> = vec![
        vec!["check", p],
        vec!["compile", p, "-o", out_o.to_str().unwrap()],
        vec!["disasm", p],
        vec!["run", p, "--payload", "x"],
        vec!["run", minimal.to_str().unwrap(), "--payload-file", p],
    ];
    // All at once: each waits for a writer for a while before giving up.
    let children: Vec<(Vec<&str>, Child)> = commands
        .into_iter()
        .map(|args| {
            let child = spawn_piped(lagic().args(&args));
            (args, child)
        })
        .collect();
    for (args, child) in children {
        let out = wait_within(child, Duration::from_secs(120), &format!("{args:?}"));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("no process opened it for writing"),
            "{args:?}: {err}"
        );
    }
    assert!(!out_o.exists());
}

/// A FIFO (or `<(...)`) with a writer works, even when the writer opens it after lagic.
#[test]
fn a_fifo_input_with_a_writer_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.fifo");
    fifo(&path);
    let spec = fs::read(example("hateless")).unwrap();
    let child = spawn_piped(lagic().arg("check").arg(&path));
    std::thread::sleep(Duration::from_millis(300));
    {
        use std::io::Write;
        let mut w = fs::OpenOptions::new().write(true).open(&path).unwrap();
        // In two pieces with a pause: lagic must keep reading until the writer closes.
        w.write_all(&spec[..10]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        w.write_all(&spec[10..]).unwrap();
    }
    let out = wait_within(child, Duration::from_secs(60), "check FIFO");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("spec hateless ok"));

    // A writer that connects late and then stays quiet past lagic's wait for a writer: once
    // connected, lagic waits for its data (as for stdin).
    let child = spawn_piped(lagic().arg("check").arg(&path));
    std::thread::sleep(Duration::from_millis(500));
    {
        use std::io::Write;
        let mut w = fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::thread::sleep(Duration::from_secs(12));
        w.write_all(&spec).unwrap();
    }
    let out = wait_within(child, Duration::from_secs(60), "check FIFO, quiet writer");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Process substitution hands lagic a pipe through /dev/fd.
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#""$0" check <(cat "$1")"#)
        .arg(env!("CARGO_BIN_EXE_lagic"))
        .arg(example("hateless"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn device_node_inputs_are_refused_without_opening_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("null");
    if char_device(&path, 1, 3).is_none() {
        return;
    }
    for args in [vec!["check"], vec!["disasm"]] {
        let out = lagic().args(&args).arg(&path).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("character device"), "{args:?}: {err}");
    }
}

/// `check`, `disasm`, `compile -o -` and `--help` with stdout on a full device: exit 2, with a
/// message.
#[test]
fn a_full_stdout_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    if char_device(&full, 1, 7).is_none() {
        return;
    }
    let obj = dir.path().join("h.o");
    assert_eq!(compile_to(&obj).status.code(), Some(0));
    let hateless = example("hateless");
    for args in [
        vec!["check", hateless.to_str().unwrap()],
        vec!["disasm", obj.to_str().unwrap()],
        vec!["compile", hateless.to_str().unwrap(), "-o", "-"],
        vec!["--help"],
    ] {
        let sink = fs::OpenOptions::new().write(true).open(&full).unwrap();
        let out = lagic().args(&args).stdout(sink).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("cannot write"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `run` reports its verdict on stdout; a verdict it cannot print is exit 2, not PASS or DROP.
#[test]
fn run_with_a_full_stdout_is_exit_2() {
    if !lagic_testkit::require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    if char_device(&full, 1, 7).is_none() {
        return;
    }
    for payload in ["I hate bananas", "Once upon a time"] {
        let sink = fs::OpenOptions::new().write(true).open(&full).unwrap();
        let out = lagic()
            .arg("run")
            .arg(example("hateless"))
            .args(["--payload", payload])
            .stdout(sink)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{payload}: {err}");
        assert!(err.contains("cannot write"), "{payload}: {err}");
    }
}

fn spawn_with_closed(fd: libc::c_int, args: &[&str]) -> Output {
    let mut cmd = lagic();
    cmd.args(args).stderr(Stdio::piped());
    // Close the descriptor in the child just before exec, the way `lagic ... >&-` does.
    unsafe {
        cmd.pre_exec(move || {
            libc::close(fd);
            Ok(())
        });
    }
    cmd.output().unwrap()
}

fn spawn_with_stdout_closed(args: &[&str]) -> Output {
    spawn_with_closed(1, args)
}

#[test]
fn a_closed_stdin_is_a_read_error_not_an_empty_spec() {
    let out = spawn_with_closed(0, &["check", "-"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot read spec <stdin>"), "{err}");
}

#[test]
fn a_closed_stdout_is_exit_2() {
    let hateless = example("hateless");
    let h = hateless.to_str().unwrap();
    for args in [vec!["compile", h, "-o", "-"], vec!["check", h]] {
        let out = spawn_with_stdout_closed(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("cannot write"), "{args:?}: {err}");
    }
    // With stdout closed, a file lagic opens can get descriptor 1; output to a file must
    // still work and leave nothing in the input.
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.json");
    fs::copy(&hateless, &spec).unwrap();
    let obj = dir.path().join("h.o");
    let out = spawn_with_stdout_closed(&[
        "compile",
        spec.to_str().unwrap(),
        "-o",
        obj.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(&spec).unwrap(), fs::read(&hateless).unwrap());
    assert!(fs::read(&obj).unwrap().starts_with(b"\x7fELF"));
}

/// ESC, CR, BEL and the like in a spec's description or in a bad field reach the terminal
/// escaped, on stdout and on stderr.
#[test]
fn control_characters_from_a_spec_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.json");
    fs::write(
        &spec,
        r#"{"version": 1, "name": "t", "description": "a\u001b[2J\rb\u009bc\nspec forged ok", "predicate": {"op": "true"}}"#,
    )
    .unwrap();
    let out = lagic().arg("check").arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{9b}'),
        "{text:?}"
    );
    assert!(
        text.contains(r"a\x1b[2J\rb\u{9b}c\nspec forged ok"),
        "{text:?}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("spec forged")),
        "a newline in the description forged a line: {text}"
    );

    // Error messages quote the path, and a path can hold anything but NUL and '/'.
    let spec = dir.path().join("s\u{1b}]0;pwned\u{7}.json");
    fs::write(&spec, "not json").unwrap();
    let out = lagic().arg("check").arg(&spec).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains(r"s\x1b]0;pwned\x07.json"), "{err:?}");

    // A line break in a path cannot forge a second error line.
    let spec = dir.path().join("a\nlagic: error: forged.json");
    fs::write(&spec, "not json").unwrap();
    let out = lagic().arg("check").arg(&spec).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("lagic: error:"))
            .count(),
        1,
        "{err}"
    );
}
