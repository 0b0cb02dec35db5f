//! The `lagic-enclave` binary: start-up errors and exit codes, `make-model`,
//! `complete`, and serving a generated model over a real socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lagic-enclave"))
}

/// A fresh scratch directory under the target dir (removed on drop).
struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lagic-enclave-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_model(dir: &Path, extra: &[&str]) {
    let out = bin()
        .args(["make-model", "--out"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run the server with `args` and expect it to exit at start-up with `code`.
fn startup_fails(args: &[&str], code: i32, needle: &str) {
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: stderr lacks {needle:?}: {err}"
    );
}

#[test]
fn bad_flags_exit_2() {
    startup_fails(&["--model", "m.bin"], 2, "--tokenizer");
    startup_fails(&["--temperature", "-1"], 2, "temperature");
    startup_fails(&["--top-p", "1.5"], 2, "top-p");
    startup_fails(&["--listen", "not an address"], 2, "not an address");
    startup_fails(&["--head-timeout", "-1"], 2, "--head-timeout");
    startup_fails(&["--head-timeout", "0"], 2, "--head-timeout");
    startup_fails(&["--bogus"], 2, "--bogus");
    startup_fails(&["--max-body", "lots"], 2, "lots");
    startup_fails(&["--max-wait", "-1"], 2, "max-wait");
    startup_fails(&["--max-wait", "1e30"], 2, "max-wait");
    startup_fails(&["--max-connections", "0"], 2, "max-connections");
}

#[test]
fn bad_model_files_exit_2_with_clear_errors() {
    let s = Scratch::new("badfiles");
    make_model(&s.0, &["--seq-len", "32"]);
    let model = s.0.join("model.bin");
    let tok = s.0.join("tokenizer.bin");
    let m = model.to_str().unwrap();
    let t = tok.to_str().unwrap();

    startup_fails(
        &["--model", "/nonexistent/m.bin", "--tokenizer", t],
        2,
        "/nonexistent/m.bin",
    );
    startup_fails(
        &["--model", m, "--tokenizer", "/nonexistent/t.bin"],
        2,
        "/nonexistent/t.bin",
    );

    let bytes = std::fs::read(&model).unwrap();
    let cut = s.0.join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    startup_fails(
        &["--model", cut.to_str().unwrap(), "--tokenizer", t],
        2,
        "truncated",
    );

    let mut zero = bytes.clone();
    zero[0..4].copy_from_slice(&0i32.to_le_bytes());
    let zpath = s.0.join("zero.bin");
    std::fs::write(&zpath, &zero).unwrap();
    startup_fails(
        &["--model", zpath.to_str().unwrap(), "--tokenizer", t],
        2,
        "dim is 0",
    );

    let tbytes = std::fs::read(&tok).unwrap();
    let tcut = s.0.join("tcut.bin");
    std::fs::write(&tcut, &tbytes[..tbytes.len() - 3]).unwrap();
    startup_fails(
        &["--model", m, "--tokenizer", tcut.to_str().unwrap()],
        2,
        "truncated",
    );

    // A tokenizer with one token fewer: the vocab sizes disagree.
    let tparsed = lagic_enclave::llama2::tokenizer::Tokenizer::from_bytes(&tbytes).unwrap();
    let last = tparsed.piece((tparsed.vocab_size() - 1) as u32).len();
    let tshort = s.0.join("tshort.bin");
    std::fs::write(&tshort, &tbytes[..tbytes.len() - 8 - last]).unwrap();
    startup_fails(
        &["--model", m, "--tokenizer", tshort.to_str().unwrap()],
        2,
        "vocab_size",
    );

    // Swapped files.
    startup_fails(&["--model", t, "--tokenizer", m], 2, "checkpoint");
}

#[test]
fn make_model_rejects_impossible_shapes() {
    let s = Scratch::new("shapes");
    let out = bin()
        .args(["make-model", "--heads", "3", "--out"])
        .arg(&s.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("n_heads"));
}

#[test]
fn complete_prints_the_prompt_and_continuation() {
    let s = Scratch::new("complete");
    make_model(&s.0, &[]);
    let out = bin()
        .args([
            "complete",
            "--prompt",
            "Once upon a time",
            "--max-tokens",
            "30",
            "--model",
        ])
        .arg(s.0.join("model.bin"))
        .arg("--tokenizer")
        .arg(s.0.join("tokenizer.bin"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Once upon a time "), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens/s"));
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serves_a_generated_model() {
    let s = Scratch::new("serve");
    make_model(&s.0, &["--seed", "7"]);
    let mut child = Running(
        bin()
            .args(["--listen", "127.0.0.1:0", "--quiet", "--model"])
            .arg(s.0.join("model.bin"))
            .arg("--tokenizer")
            .arg(s.0.join("tokenizer.bin"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on 127.0.0.1:"), "{line}");
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap()
        .to_string();

    let body = r#"{"prompt": "Once upon a time", "wait_time": 10, "max_tokens": 25}"#;
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        c,
        "POST /api/generate HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(raw.contains("\r\nConnection: close\r\n"));
    let json = &raw[raw.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let text = v["response"].as_str().unwrap();
    assert!(text.starts_with("Once upon a time "), "{text}");
    assert!(text.bytes().all(|b| (0x20..=0x7e).contains(&b)));
}

#[test]
fn address_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    startup_fails(&["--listen", &addr], 1, "cannot listen");
}
