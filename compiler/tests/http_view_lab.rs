//! The `http_response` view on the wire: `lagic lab up` with
//! `examples/stream/http_json_start.json` (each body under 1400 bytes and
//! starting with `{`) in front of the real enclave. The enclave's JSON
//! answers cross whole; an answer whose body reaches 1400 bytes (a long
//! generation) is cut by a RST, promptly, and the lab serves clean
//! requests again afterwards.
//!
//! Needs root (namespaces, veth, BPF); without it the test skips loudly,
//! or fails when `CI` is set. Run it under the kernel lock
//! (`flock /tmp/lagic-kernel.lock ...`), like every lab test.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lagic_lab::http::{post_json, HttpError, Reply};

mod common;
use common::{enclave_bin, lagic, lagic_ok, workspace};

const DEADLINE: Duration = Duration::from_secs(10);
const NAME: &str = "hvw1";
const SUBNET: &str = "172.30.161.0/24";

/// Runs `lagic lab down` when dropped, also on panic.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = lagic(&["lab", "down", "--name", NAME]);
    }
}

fn generate(addr: SocketAddr, prompt: &str, max_tokens: usize) -> Result<Reply, HttpError> {
    let body = serde_json::json!({"prompt": prompt, "max_tokens": max_tokens}).to_string();
    post_json(addr, "/api/generate", &body, DEADLINE)
}

#[test]
fn http_json_start_passes_the_enclaves_json_and_resets_a_long_body() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let _ = lagic(&["lab", "down", "--name", NAME]);
    let spec = workspace().join("examples/stream/http_json_start.json");
    lagic_ok(&[
        "lab",
        "up",
        "--diode",
        spec.to_str().unwrap(),
        "--subnet",
        SUBNET,
        "--name",
        NAME,
        "--enclave-bin",
        enclave_bin().to_str().unwrap(),
    ]);
    let _down = Down;
    let addr: SocketAddr = "172.30.161.11:8080".parse().unwrap();

    // Clean answers: JSON bodies well under 1400 bytes.
    for (prompt, tokens) in [("Once upon a time", 12), ("The end", 4)] {
        match generate(addr, prompt, tokens) {
            Ok(Reply::Complete(r)) => {
                assert_eq!(r.status, 200);
                assert!(r.body.starts_with(b"{") && r.body.len() < 1400);
                let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
                assert!(v["response"].as_str().unwrap().starts_with(prompt));
            }
            other => panic!("{prompt}: expected the whole response, got {other:?}"),
        }
    }

    // A body of 1400 bytes or more violates `len < 1400`: the segment that
    // reaches it becomes a RST. A control of the same request with a short
    // generation passes, so it is the length that is refused.
    let started = Instant::now();
    match generate(addr, "Once upon a time", 400) {
        Err(HttpError::Receive { source, .. }) => {
            assert_eq!(source.kind(), ErrorKind::ConnectionReset, "{source}");
        }
        other => panic!("expected a connection reset, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "the reset took {took:?}");

    // The lab still serves clean requests.
    assert!(matches!(
        generate(addr, "Again", 8),
        Ok(Reply::Complete(ref r)) if r.status == 200
    ));

    let status = lagic_ok(&["status"]);
    assert!(
        status.contains("predicate 1"),
        "one predicate reset counted: {status}"
    );
}
