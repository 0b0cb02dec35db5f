//! Shared by the end-to-end tests (e2e_lab, e2e_vm): the root gate, the
//! workspace path, and a plain HTTP client for the enclave's API with
//! deadlines, so "blocked" means the same thing in both.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// What a request got.
#[derive(Debug)]
pub enum Reply {
    /// A whole response: status and body.
    Complete { status: u16, body: Vec<u8> },
    /// Nothing complete before the deadline (bytes received so far).
    Incomplete { received: usize },
}

/// POSTs `{"prompt", "max_tokens"}` to /api/generate and waits up to `wait`.
pub fn generate(addr: SocketAddr, prompt: &str, max_tokens: usize, wait: Duration) -> Reply {
    let body = serde_json::json!({"prompt": prompt, "max_tokens": max_tokens, "wait_time": 60})
        .to_string();
    let deadline = Instant::now() + wait;
    let mut stream = TcpStream::connect_timeout(&addr, wait).expect("connecting to the enclave");
    stream.set_write_timeout(Some(wait)).unwrap();
    let head = format!(
        "POST /api/generate HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(reply) = complete(&raw) {
            return reply;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Reply::Incomplete {
                received: raw.len(),
            };
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => {
                return complete(&raw).unwrap_or(Reply::Incomplete {
                    received: raw.len(),
                })
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A signal (a child of the test exiting) interrupts a read that
            // has a timeout; the read is simply retried.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Reply::Incomplete {
                    received: raw.len(),
                }
            }
            Err(e) => panic!("reading from the enclave: {e}"),
        }
    }
}

/// The response in `raw` if its head and all `Content-Length` body bytes are there.
pub fn complete(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })?;
    let body = &raw[end + 4..];
    (body.len() >= length).then(|| Reply::Complete {
        status,
        body: body[..length].to_vec(),
    })
}
