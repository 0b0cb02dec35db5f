//! The `lagic` binary as users meet it: exit codes, messages, and output
//! files that are never half-written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lagic() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lagic"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn example(name: &str) -> PathBuf {
    repo().join("examples").join(format!("{name}.json"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn spec_with(predicate: &str) -> String {
    format!(r#"{{"version": 1, "name": "t", "predicate": {predicate}}}"#)
}

#[test]
fn compiles_every_example() {
    let dir = tempfile::tempdir().unwrap();
    for name in reference_diodes::SEED_NAMES {
        let out_path = dir.path().join(format!("{name}.o"));
        let out = lagic()
            .arg("compile")
            .arg(example(name))
            .arg("-o")
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let bytes = fs::read(&out_path).unwrap();
        assert!(bytes.starts_with(b"\x7fELF"), "{name}");
    }
}

#[test]
fn compile_reads_stdin_and_writes_stdout() {
    use std::io::Write;
    let spec = fs::read(example("hateless")).unwrap();
    let mut child = lagic()
        .args(["compile", "-", "-o", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&spec).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.starts_with(b"\x7fELF"));
}

/// Each bad spec: exit 2, a `lagic: error:` message naming the problem, and
/// an existing output file left byte-for-byte untouched.
#[test]
fn bad_specs_exit_2_and_leave_the_output_alone() {
    let deep_not = {
        let mut s = String::new();
        for _ in 0..5000 {
            s.push_str(r#"{"op":"not","arg":"#);
        }
        s.push_str(r#"{"op":"true"}"#);
        s.push_str(&"}".repeat(5000));
        spec_with(&s)
    };
    let deep_arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = format!(
        r#"{{"version": 1, "name": "t", "description": "{}", "predicate": {{"op":"true"}}}}"#,
        "x".repeat(5 << 20)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "malformed JSON",
            r#"{"version": 1,"#.to_string(),
            "malformed JSON",
        ),
        (
            "binary junk",
            "\u{1}\u{2}binary".to_string(),
            "malformed JSON",
        ),
        (
            "unknown version",
            r#"{"version": 2, "name": "t", "predicate": {"op":"true"}}"#.to_string(),
            "version",
        ),
        (
            "missing version",
            r#"{"name": "t", "predicate": {"op":"true"}}"#.to_string(),
            "$.version",
        ),
        (
            "unknown construct",
            spec_with(r#"{"op":"regex","re":"a*"}"#),
            "unknown op",
        ),
        (
            "wrong type",
            spec_with(r#"{"op":"len","cmp":"<","value":"12"}"#),
            "$.predicate.value",
        ),
        (
            "bad comparison",
            spec_with(r#"{"op":"len","cmp":"=<","value":12}"#),
            "$.predicate.cmp",
        ),
        (
            "offset out of range",
            spec_with(r#"{"op":"byte","index":70000,"class":"text"}"#),
            "$.predicate.index",
        ),
        (
            "negative offset",
            spec_with(r#"{"op":"all","window":{"start":-1,"end":null},"class":"text"}"#),
            "$.predicate.window.start",
        ),
        (
            "window end before start",
            spec_with(r#"{"op":"all","window":{"start":9,"end":3},"class":"text"}"#),
            "$.predicate.window",
        ),
        (
            "empty pattern",
            spec_with(r#"{"op":"contains","window":{"start":0,"end":null},"pattern":[]}"#),
            "$.predicate.pattern",
        ),
        (
            "reversed byte range",
            spec_with(r#"{"op":"any","window":{"start":0,"end":null},"class":[[90,65]]}"#),
            "$.predicate.class",
        ),
        ("deep predicate nesting", deep_not, "nested"),
        ("deep JSON nesting", deep_arrays, "nested too deeply"),
        ("huge file", huge, "limit"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, text, needle) in cases {
        let spec = dir.path().join("spec.json");
        fs::write(&spec, &text).unwrap();
        let out_path = dir.path().join("out.o");
        fs::write(&out_path, b"previous object").unwrap();
        let out = lagic()
            .arg("compile")
            .arg(&spec)
            .arg("-o")
            .arg(&out_path)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.starts_with("lagic: error: "), "{what}: {err}");
        assert!(err.contains(needle), "{what}: expected {needle:?} in {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert_eq!(fs::read(&out_path).unwrap(), b"previous object", "{what}");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("lagic-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");

        // `check` judges the same input the same way.
        let out = lagic().arg("check").arg(&spec).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "check, {what}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn missing_files_and_bad_usage_exit_2() {
    let out = lagic()
        .args([
            "compile",
            "/nonexistent/spec.json",
            "-o",
            "/tmp/lagic-never.o",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read spec"),
        "{}",
        stderr(&out)
    );

    let out = lagic().arg("compile").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing arguments are usage errors"
    );

    let out = lagic().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let not_elf = dir.path().join("not.o");
    fs::write(&not_elf, b"hello").unwrap();
    let out = lagic().arg("disasm").arg(&not_elf).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("lagic: error: "));
}

#[test]
fn help_explains_the_exit_codes() {
    let out = lagic().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["compile", "check", "disasm", "run", "Exit codes"] {
        assert!(text.contains(needle), "--help lacks {needle}");
    }
}

#[test]
fn check_summarizes_the_lowered_program() {
    let out = lagic()
        .arg("check")
        .arg(example("hateless"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("spec hateless ok"), "{text}");
    assert!(text.contains("5 states"), "{text}");
}

#[test]
fn check_rejects_specs_beyond_the_emitter_with_exit_1() {
    // 70 distinct scans: a valid spec, but more scans than a program may have.
    let scans: Vec<String> = (0..70)
        .map(|i| {
            format!(r#"{{"op":"any","window":{{"start":{i},"end":null}},"class":[[{i},{i}]]}}"#)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("big.json");
    let predicate = format!(r#"{{"op":"or","args":[{}]}}"#, scans.join(","));
    fs::write(&spec, spec_with(&predicate)).unwrap();
    let out = lagic().arg("check").arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be compiled"),
        "{}",
        stderr(&out)
    );

    // For `run`, exit 1 means DROP; a spec it cannot compile is bad input.
    let out = lagic()
        .arg("run")
        .arg(&spec)
        .args(["--payload", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn run_prints_the_kernel_verdict() {
    if !lagic_testkit::require_bpf() {
        return;
    }
    let out = lagic()
        .arg("run")
        .arg(example("hateless"))
        .args(["--payload", "I hate bananas"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "DROP\n");

    let out = lagic()
        .arg("run")
        .arg(example("hateless"))
        .args(["--payload", "Once upon a time", "--ipv6"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PASS\n");

    // A compiled object is judged the same as its spec.
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("j.o");
    assert!(lagic()
        .arg("compile")
        .arg(example("json_depth"))
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap()
        .success());
    let out = lagic()
        .arg("run")
        .arg(&obj)
        .args(["--payload-hex", "5b5b5b315d5d5d"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "[[[1]]] is too deep: {}",
        stderr(&out)
    );

    let out = lagic()
        .arg("run")
        .arg(example("minimal"))
        .args(["--payload-hex", "zz"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    // `lagic disasm X.o | head -1`: the reader goes away early.
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("h.o");
    assert!(lagic()
        .arg("compile")
        .arg(example("hateless"))
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap()
        .success());
    for args in [
        vec!["disasm", obj.to_str().unwrap()],
        vec!["check", example("hateless").to_str().unwrap()],
    ] {
        let mut child = lagic()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
}

/// `--flows` sizes a stream diode's flow table: a valid size is written
/// (into an object other than the default's), a size out of range or a
/// per-packet spec is bad input (exit 2) and writes nothing.
#[test]
fn compile_flows_sizes_the_stream_table_and_refuses_what_it_cannot_size() {
    let dir = tempfile::tempdir().unwrap();
    let stream = repo().join("examples/stream/hateless.json");
    let compile = |spec: &Path, flows: Option<&str>, out: &Path| {
        let mut cmd = lagic();
        cmd.arg("compile").arg(spec).arg("-o").arg(out);
        if let Some(flows) = flows {
            cmd.args(["--flows", flows]);
        }
        cmd.output().unwrap()
    };
    let default = dir.path().join("default.o");
    let small = dir.path().join("small.o");
    assert!(compile(&stream, None, &default).status.success());
    let out = compile(&stream, Some("1024"), &small);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::read(&small).unwrap().starts_with(b"\x7fELF"));
    assert_ne!(fs::read(&small).unwrap(), fs::read(&default).unwrap());
    for (spec, flows, says) in [
        (&stream, "0", "1..=4194304"),
        (&stream, "4194305", "1..=4194304"),
        (&stream, "many", "--flows"),
        (&example("hateless"), "1024", "per-packet"),
    ] {
        let refused = dir.path().join("refused.o");
        let out = compile(spec, Some(flows), &refused);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--flows {flows}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(says),
            "--flows {flows}: {}",
            stderr(&out)
        );
        assert!(!refused.exists(), "--flows {flows} wrote an object");
    }
}
