//! What a new user meets first: every subcommand's `--help` says what it returns and shows
//! an example, the examples that need no root work as shown, an output path that cannot
//! be written is explained in terms of the path given, a spec saved with a byte order mark
//! is told so, and a predicate that judges every payload alike is pointed out. Needs no
//! root, but for the closed-pipe test.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn lagic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lagic"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every command a user can ask `--help` of.
const COMMANDS: &[&[&str]] = &[
    &["compile"],
    &["check"],
    &["disasm"],
    &["run"],
    &["attach"],
    &["detach"],
    &["status"],
    &["watch"],
    &["dashboard"],
    &["lab", "up"],
    &["lab", "down"],
    &["lab", "status"],
];

/// The exit codes a command's help lists, from its "Exit codes" section.
fn listed_exit_codes(help: &str) -> Vec<u8> {
    // "Exit codes:" or "Exit codes (...):" up to the end of its line.
    let section = help
        .split("Exit codes")
        .nth(1)
        .expect("an Exit codes section");
    section
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let l = l.strip_prefix("  ")?;
            let code = l.split_whitespace().next()?;
            code.parse().ok()
        })
        .collect()
}

/// The example lines of a command's help (after "Example:" or "Examples:"), without any
/// parenthesized remark.
fn examples(help: &str) -> Vec<String> {
    let after = help
        .split_once("Examples:\n")
        .or_else(|| help.split_once("Example:\n"))
        .map(|(_, rest)| rest)
        .unwrap_or("");
    after
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split("  (").next().unwrap_or(l).trim().to_owned())
        .collect()
}

#[test]
fn every_command_help_lists_its_exit_codes_and_an_example() {
    for command in COMMANDS {
        let out = lagic().args(*command).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{command:?}: {}", text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        let codes = listed_exit_codes(&help);
        assert!(
            codes.first() == Some(&0) && codes.last() == Some(&2),
            "{command:?}: the help lists exit codes {codes:?}, not 0 ... 2:\n{help}"
        );
        let shown = examples(&help);
        assert!(
            !shown.is_empty(),
            "{command:?}: the help shows no example:\n{help}"
        );
        let invocation = format!("lagic {}", command.join(" "));
        assert!(
            shown.iter().all(|e| e.contains(&invocation)),
            "{command:?}: an example is not a `{invocation}` command: {shown:?}"
        );
    }
}

/// The examples of `compile`, `check` and `disasm` need no root: run from the repository
/// root, each one does what the help says (exit 0), in the order shown (disasm reads what
/// compile wrote).
#[test]
fn the_examples_that_need_no_root_work_as_shown() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_lagic");
    let mut ran = 0;
    for command in ["compile", "check", "disasm"] {
        let out = lagic().args([command, "--help"]).output().unwrap();
        for example in examples(&String::from_utf8_lossy(&out.stdout)) {
            // Relative outputs go to the scratch directory; inputs stay the repository's.
            let line = example
                .replace("lagic ", &format!("{bin} "))
                .replace("examples/", &format!("{}/examples/", repo().display()));
            let out = Command::new("sh")
                .arg("-c")
                .arg(&line)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "`{example}`: {}", text(&out));
            ran += 1;
        }
    }
    assert!(ran >= 5, "only {ran} examples ran");
    for written in ["hateless.o", "stream.o", "minimal.o"] {
        let bytes = fs::read(dir.path().join(written)).unwrap();
        assert!(bytes.starts_with(b"\x7fELF"), "{written} is not an object");
    }
}

/// The top-level help names every exit code's meaning, including the stream diode's RESET.
#[test]
fn the_top_level_help_names_reset_and_the_stream_format() {
    let out = lagic().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed_exit_codes(&help), [0, 1, 2], "{help}");
    assert!(help.contains("DROP or RESET"), "{help}");
    assert!(help.contains("format v1 or v2"), "{help}");
}

/// `-o` into a directory that does not exist, or under a regular file, names the directory
/// and what to do; exit 2 and nothing created.
#[test]
fn an_output_in_a_missing_directory_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/hateless.json");
    let missing = dir.path().join("missing");
    let out = lagic()
        .arg("compile")
        .arg(&spec)
        .arg("-o")
        .arg(missing.join("h.o"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "the directory '{}' does not exist",
            missing.display()
        )) && err.contains("mkdir -p"),
        "{}",
        text(&out)
    );
    assert!(!missing.exists());

    let file = dir.path().join("file");
    fs::write(&file, b"kept").unwrap();
    let out = lagic()
        .arg("compile")
        .arg(&spec)
        .arg("-o")
        .arg(file.join("h.o"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("'{}' is not a directory", file.display())),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(&file).unwrap(), b"kept");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["file"], "something else was created");
}

/// `lagic lab status | head -0`: a reader that went away is not a panic (exit 101); the
/// exit code is the status's own (1: that lab is not up). Reads only the lab records; needs
/// root to get that far.
#[test]
fn lab_status_into_a_closed_pipe_is_not_a_panic() {
    if !common::require_root("reading the lab records") {
        return;
    }
    let mut child = lagic()
        .args(["lab", "status", "--name", "nolab"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        text(&out)
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// An empty block list (`not or []`) is a valid spec whose diode passes every payload, and
/// `or []` one that drops every payload: both compile (exit 0), each with a note on stderr
/// that says so; a spec that reads the payload gets no note.
#[test]
fn a_constant_predicate_is_noted_and_still_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{"op": "not", "arg": {"op": "or", "args": []}}"#,
            Some("passes every TCP payload"),
        ),
        (
            r#"{"op": "or", "args": []}"#,
            Some("drops every TCP segment that carries a payload"),
        ),
        (r#"{"op": "len", "cmp": "<", "value": 100}"#, None),
    ];
    for (i, (predicate, note)) in cases.iter().enumerate() {
        let spec = dir.path().join(format!("s{i}.json"));
        fs::write(
            &spec,
            format!(r#"{{"version": 1, "name": "t", "predicate": {predicate}}}"#),
        )
        .unwrap();
        for command in ["compile", "check"] {
            let mut cmd = lagic();
            cmd.arg(command).arg(&spec);
            if command == "compile" {
                cmd.arg("-o").arg(dir.path().join(format!("s{i}.o")));
            }
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{predicate}: {}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            match note {
                Some(note) => assert!(
                    err.contains("the predicate is constant") && err.contains(note),
                    "{command} {predicate}: {}",
                    text(&out)
                ),
                None => assert!(err.is_empty(), "{command} {predicate}: {}", text(&out)),
            }
        }
        assert!(dir.path().join(format!("s{i}.o")).exists());
    }
}

/// A spec saved with a UTF-8 byte order mark (as some editors do) is refused with a message
/// that names the mark, not as "malformed JSON at column 1"; exit 2, nothing written.
#[test]
fn a_byte_order_mark_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend(fs::read(repo().join("examples/hateless.json")).unwrap());
    let spec = dir.path().join("bom.json");
    fs::write(&spec, bytes).unwrap();
    let out_path = dir.path().join("bom.o");
    let out = lagic()
        .arg("compile")
        .arg(&spec)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("byte order mark") && err.contains("without a byte order mark"),
        "{}",
        text(&out)
    );
    assert!(!out_path.exists());
}
