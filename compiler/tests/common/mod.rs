//! Shared by the end-to-end tests (e2e_lab, e2e_vm): the root gate, the workspace path,
//! requests to the enclave's API through the lab's HTTP client ([`lagic_lab::http`]), and
//! what "blocked" means, so it means the same in both.
//!
//! "Blocked" is definite, never merely "slow":
//! - every blocked request runs next to a pass control: the same request shape (same
//!   `max_tokens`, a prompt of the same byte length, clean) at the same time, under the
//!   same deadline, and the control must complete with 200 within it ([`run_pairs`]), so a
//!   machine too slow to answer in time fails the test instead of passing it;
//! - the blocked request must still be incomplete at that deadline (a timeout, not an
//!   early close, which would mean the server itself sent too little);
//! - what did arrive is checked against what the enclave sent ([`assert_stopped_before`]):
//!   a well-formed 200 head if a head arrived, body bytes that are exactly a prefix of the
//!   body the enclave sent, ending before the first forbidden byte, so no byte of the
//!   forbidden word crossed.

#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

pub use lagic_lab::http::{Reply, Response};

/// Whether an end-to-end test can run: root is needed (`needs` says for
/// what). Skips loudly, or panics when `CI` is set.
pub fn require_root(needs: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned();
    if std::env::var_os("CI").is_some() {
        panic!("{test}: this end-to-end test needs root ({needs}), and CI is set, so it fails instead of skipping");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test} needs root ({needs}); run the tests with sudo"
    );
    false
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ sits in the workspace")
        .to_path_buf()
}

/// POSTs `{"prompt", "max_tokens"}` to /api/generate and waits up to `deadline`.
/// A refused or reset connection fails the test: it is neither a pass nor a block.
pub fn generate(addr: SocketAddr, prompt: &str, max_tokens: usize, deadline: Duration) -> Reply {
    let body = serde_json::json!({"prompt": prompt, "max_tokens": max_tokens, "wait_time": 60})
        .to_string();
    lagic_lab::http::post_json(addr, "/api/generate", &body, deadline)
        .unwrap_or_else(|e| panic!("POST /api/generate {prompt:.40?}: {e}"))
}

/// The body the enclave sends for a response text: its JSON object `{"response": TEXT}`.
pub fn response_body(text: &str) -> Vec<u8> {
    serde_json::json!({ "response": text })
        .to_string()
        .into_bytes()
}

/// The `response` text of a complete 200 reply; panics otherwise.
pub fn passes(reply: &Reply, what: &str) -> String {
    match reply {
        Reply::Complete(Response { status: 200, body }) => {
            let v: serde_json::Value = serde_json::from_slice(body)
                .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e})"));
            v["response"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no response field in {v}"))
                .to_owned()
        }
        other => panic!("{what}: expected 200 with a body, got {}", describe(other)),
    }
}

/// A short account of a reply for failure messages.
pub fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Complete(r) => format!("a complete {} with {} body bytes", r.status, r.body.len()),
        Reply::TimedOut { received } => format!("a timeout after {} bytes", received.len()),
        Reply::Closed { received } => format!("a close after {} bytes", received.len()),
    }
}

/// A blocked request and its pass control.
#[derive(Debug, Clone)]
pub struct Pair {
    /// What the check is, for messages.
    pub what: String,
    /// The clean prompt that must pass.
    pub control: String,
    /// The prompt whose response must be blocked.
    pub blocked: String,
    /// `max_tokens` of both.
    pub max_tokens: usize,
}

impl Pair {
    pub fn new(what: &str, control: &str, blocked: &str, max_tokens: usize) -> Pair {
        assert_eq!(
            control.len(),
            blocked.len(),
            "{what}: a control has the blocked request's shape, so the same prompt length"
        );
        Pair {
            what: what.to_owned(),
            control: control.to_owned(),
            blocked: blocked.to_owned(),
            max_tokens,
        }
    }
}

/// What one pair gave: the control's text and the bytes of the blocked response that
/// arrived before the deadline.
#[derive(Debug)]
pub struct PairResult {
    pub control_text: String,
    pub blocked_received: Vec<u8>,
}

/// Checks pairs in two rounds. First every control at once, each of which must complete
/// with 200 within `limit` (its text is returned for further checks); the slowest takes `T`.
/// Then every blocked request at once, under the same concurrency, each of which must still
/// be incomplete after [`blocked_deadline`]`(T)`: twice what the slowest control of the same
/// shape needed, plus a margin. So "blocked" never means "slow": the same request shape
/// was shown to complete in well under the time the blocked one got, on this machine, now.
pub fn run_pairs(addr: SocketAddr, pairs: &[Pair], limit: Duration) -> Vec<PairResult> {
    let started = std::time::Instant::now();
    let controls: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = pairs
            .iter()
            .map(|p| scope.spawn(move || generate(addr, &p.control, p.max_tokens, limit)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("control thread"))
            .collect()
    });
    let slowest = started.elapsed();
    let control_texts: Vec<String> = pairs
        .iter()
        .zip(&controls)
        .map(|(p, control)| {
            passes(
                control,
                &format!(
                    "{}: the control {:.60?} (within {} s)",
                    p.what,
                    p.control,
                    limit.as_secs()
                ),
            )
        })
        .collect();
    let deadline = blocked_deadline(slowest);
    let blocked: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = pairs
            .iter()
            .map(|p| scope.spawn(move || generate(addr, &p.blocked, p.max_tokens, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("blocked thread"))
            .collect()
    });
    pairs
        .iter()
        .zip(control_texts)
        .zip(blocked)
        .map(|((p, control_text), blocked)| {
            let blocked_received = match blocked {
                Reply::TimedOut { received } => received,
                other => panic!(
                    "{}: {:.60?} must be blocked (still incomplete after {:.1} s, while the \
                     controls completed in {:.1} s), got {}",
                    p.what,
                    p.blocked,
                    deadline.as_secs_f64(),
                    slowest.as_secs_f64(),
                    describe(&other)
                ),
            };
            PairResult {
                control_text,
                blocked_received,
            }
        })
        .collect()
}

/// How long a blocked request is given when the slowest control of its shape took
/// `slowest`: twice that plus 3 s, and at least 5 s.
pub fn blocked_deadline(slowest: Duration) -> Duration {
    (slowest * 2 + Duration::from_secs(3)).max(Duration::from_secs(5))
}

/// How much of a blocked response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrived {
    /// The whole head arrived.
    pub head: bool,
    /// Body bytes that arrived.
    pub body: usize,
}

/// Asserts that `received`, what arrived of a blocked response, is a strict prefix of a
/// 200 response with body `sent` that stops before `sent[forbidden_at]`, the first byte the
/// diode must not let through. Returns how much arrived.
pub fn assert_stopped_before(
    received: &[u8],
    sent: &[u8],
    forbidden_at: usize,
    what: &str,
) -> Arrived {
    assert!(
        forbidden_at < sent.len(),
        "{what}: the forbidden byte lies inside the body the enclave sent"
    );
    let Some(head) = lagic_lab::http::parse_head(received) else {
        // No whole head: what arrived is a start of the status line and head, no body.
        let status_line = b"HTTP/1.1 200 ";
        let n = received.len().min(status_line.len());
        assert_eq!(
            &received[..n],
            &status_line[..n],
            "{what}: the {} bytes that arrived are not the start of a 200 response: {:?}",
            received.len(),
            String::from_utf8_lossy(&received[..received.len().min(200)])
        );
        assert!(
            !received.windows(4).any(|w| w == b"\r\n\r\n"),
            "{what}: a head ended but did not parse"
        );
        return Arrived {
            head: false,
            body: 0,
        };
    };
    assert_eq!(head.status, 200, "{what}: the head that arrived");
    assert_eq!(
        head.content_length,
        Some(sent.len()),
        "{what}: the head announces the body the enclave sent"
    );
    let body = &received[head.len..];
    assert!(
        body.len() <= forbidden_at,
        "{what}: {} body bytes arrived, past the forbidden byte at {forbidden_at}: {:?}",
        body.len(),
        String::from_utf8_lossy(&body[forbidden_at.saturating_sub(20)..forbidden_at + 1])
    );
    assert!(
        body == &sent[..body.len()],
        "{what}: the {} body bytes that arrived are not the start of the body the enclave sent",
        body.len()
    );
    Arrived {
        head: true,
        body: body.len(),
    }
}

/// The offset of the first case-insensitive occurrence of `word` in `haystack`.
pub fn find_ignoring_case(haystack: &[u8], word: &[u8]) -> Option<usize> {
    haystack
        .windows(word.len())
        .position(|w| w.eq_ignore_ascii_case(word))
}

/// The offset of the first byte outside text (printable ASCII, TAB, LF, CR).
pub fn first_non_text(bytes: &[u8]) -> Option<usize> {
    bytes
        .iter()
        .position(|&b| !(b == b'\t' || b == b'\n' || b == b'\r' || (32..=126).contains(&b)))
}

// ---------------------------------------------------------------------------------------------
// The lagic binary under test, the enclave binary, and a lab removed whatever happens.

/// The `lagic` binary cargo built for these tests.
pub const LAGIC: &str = env!("CARGO_BIN_EXE_lagic");

/// Runs `lagic` with `args`.
pub fn lagic(args: &[&str]) -> Output {
    Command::new(LAGIC)
        .args(args)
        .output()
        .expect("running lagic")
}

/// Runs `lagic` with `args`, which must succeed; its standard output.
pub fn lagic_ok(args: &[&str]) -> String {
    let out = lagic(args);
    assert!(
        out.status.success(),
        "lagic {} failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// lagic-enclave from the same target directory as lagic, built on first use if missing.
pub fn enclave_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = Path::new(LAGIC).parent().expect("lagic has a directory");
        let bin = profile_dir.join("lagic-enclave");
        if bin.is_file() {
            return bin;
        }
        let target_root = profile_dir.parent().expect("a target directory");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "-p", "lagic-enclave"])
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", target_root);
        if release {
            command.arg("--release");
        }
        let status = command.status().expect("running cargo");
        assert!(
            status.success() && bin.is_file(),
            "lagic-enclave is missing at {} and building it failed; build it with \
             `cargo build -p lagic-enclave{}` (same CARGO_TARGET_DIR as the tests)",
            bin.display(),
            if release { " --release" } else { "" }
        );
        bin
    })
    .clone()
}

/// A lab removed (`lagic lab down --name NAME`) when this is dropped, also
/// when a test panics.
pub struct LabGuard(pub &'static str);

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = lagic(&["lab", "down", "--name", self.0]);
    }
}
