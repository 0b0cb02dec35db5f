//! `lagic lab up` with a stream diode, as docs/stream.md "Try it" shows it:
//! the clean prompt's JSON arrives whole; the response with "hate" ends at
//! once with a reset (curl's exit 56) instead of hanging, where the
//! per-packet `hateless` (the control) leaves the client waiting until its
//! deadline. `lagic status` counts the predicate RST and the latched
//! segments after it; `lagic watch --json` reports both reasons for the
//! same flow. Needs root (skips loudly, or fails under CI); run under
//! `flock /tmp/lagic-kernel.lock`.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::{enclave_bin, lagic, lagic_ok, passes, require_root, workspace, LabGuard, LAGIC};
use lagic_lab::http::{post_json, HttpError, Reply};

const STREAM_LAB: &str = "strm1";
const STREAM_SUBNET: &str = "172.30.152.0/24";
const STREAM_ENCLAVE: &str = "172.30.152.11:8080";
const PACKET_LAB: &str = "strm2";
const PACKET_SUBNET: &str = "172.30.153.0/24";
const PACKET_ENCLAVE: &str = "172.30.153.11:8080";

/// How long the blocked request may wait: a per-packet diode's hang lasts
/// all of it.
const HANG: Duration = Duration::from_secs(5);

fn lab_up(name: &'static str, subnet: &str, spec: &str) -> LabGuard {
    let _ = lagic(&["lab", "down", "--name", name]);
    let spec = workspace().join(spec);
    let bin = enclave_bin();
    lagic_ok(&[
        "lab",
        "up",
        "--diode",
        spec.to_str().unwrap(),
        "--subnet",
        subnet,
        "--name",
        name,
        "--enclave-bin",
        bin.to_str().unwrap(),
    ]);
    LabGuard(name)
}

/// How a request ended, and after how long.
#[derive(Debug)]
enum Ending {
    Reply(Reply),
    /// The connection was reset after `received` bytes.
    Reset {
        received: usize,
    },
}

fn request(addr: &str, prompt: &str, deadline: Duration) -> (Ending, Duration) {
    let addr: SocketAddr = addr.parse().unwrap();
    let body = serde_json::json!({"prompt": prompt, "max_tokens": 12}).to_string();
    let started = Instant::now();
    let ending = match post_json(addr, "/api/generate", &body, deadline) {
        Ok(reply) => Ending::Reply(reply),
        Err(HttpError::Receive {
            received, source, ..
        }) if source.kind() == io::ErrorKind::ConnectionReset => Ending::Reset { received },
        Err(e) => panic!("POST {prompt:?}: {e}"),
    };
    (ending, started.elapsed())
}

/// The counters of the lab's attachment in `lagic status --json`.
fn counters(iface: &str) -> serde_json::Value {
    let status: serde_json::Value =
        serde_json::from_str(&lagic_ok(&["status", "--json"])).expect("status --json is JSON");
    status
        .as_array()
        .expect("an array of attachments")
        .iter()
        .find(|a| a["interface"] == iface)
        .unwrap_or_else(|| panic!("no attachment on {iface} in {status}"))["counters"]
        .clone()
}

#[test]
fn a_stream_diode_in_the_lab_resets_the_hateful_response_at_once() {
    if !require_root("a lab: namespaces, veth, BPF") {
        return;
    }

    // The control: the per-packet diode drops the segment with the word and
    // the client waits until its deadline.
    let hang = {
        let _lab = lab_up(PACKET_LAB, PACKET_SUBNET, "examples/hateless.json");
        let (clean, _) = request(PACKET_ENCLAVE, "Once upon a time", HANG * 2);
        match &clean {
            Ending::Reply(r) => {
                passes(r, "per-packet: the clean story");
            }
            other => panic!("per-packet: the clean story ended by {other:?}"),
        }
        let (blocked, took) = request(PACKET_ENCLAVE, "I hate bananas", HANG);
        assert!(
            matches!(blocked, Ending::Reply(Reply::TimedOut { .. })),
            "per-packet: the blocked response hangs until the deadline, got {blocked:?}"
        );
        assert!(took >= HANG, "per-packet: waited {took:?}");
        took
    };

    let _lab = lab_up(STREAM_LAB, STREAM_SUBNET, "examples/stream/hateless.json");
    let iface = format!("lgh-{STREAM_LAB}");
    let spec = workspace().join("examples/stream/hateless.json");
    // Events wait in the ring buffer until read, so watch may start late.
    let mut watch = Command::new(LAGIC)
        .args(["watch", "--json", "--iface", &iface, "--spec"])
        .arg(&spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting lagic watch");
    let stdout = watch.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.expect("UTF-8 lines")).is_err() {
                break;
            }
        }
    });

    let (clean, clean_took) = request(STREAM_ENCLAVE, "Once upon a time", HANG * 2);
    let story = match &clean {
        Ending::Reply(r) => passes(r, "stream: the clean story"),
        other => panic!("stream: the clean story ended by {other:?}"),
    };
    assert!(!story.is_empty());
    let (blocked, reset_took) = request(STREAM_ENCLAVE, "I hate bananas", HANG);
    let Ending::Reset { received } = blocked else {
        panic!("stream: the hateful response ends by a reset, got {blocked:?}");
    };
    // Promptly: well inside the deadline the per-packet diode hangs for, and
    // within a clean request's time plus a generous margin.
    assert!(
        reset_took < hang / 2 && reset_took < clean_took + Duration::from_secs(2),
        "stream: reset after {reset_took:?} (clean request {clean_took:?}, per-packet hang {hang:?})"
    );
    eprintln!(
        "stream: reset after {reset_took:?} and {received} bytes; clean request {clean_took:?}; \
         per-packet hang {hang:?}"
    );

    // The counters: the RST of the predicate, then the enclave's
    // retransmissions of the refused segment, latched (they come after its
    // retransmission timeout, so wait for them).
    let deadline = Instant::now() + Duration::from_secs(10);
    let c = loop {
        let c = counters(&iface);
        if c["latched"].as_u64().unwrap_or(0) >= 1 || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(c["predicate"], 1, "{c}");
    assert!(c["latched"].as_u64().unwrap() >= 1, "{c}");
    assert!(c["pass"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(c["lost_events"], 0, "{c}");

    // The events: the predicate RST and a latched one, for the same flow.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut predicate, mut latched) = (None, None);
    while predicate.is_none() || latched.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| {
            panic!("predicate and latched events within 10 s (got predicate {predicate:?}, latched {latched:?})")
        });
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        match v["reason"].as_str() {
            Some("predicate") => predicate = Some(v),
            Some("latched") if latched.is_none() => latched = Some(v),
            _ => {}
        }
    }
    let (predicate, latched) = (predicate.unwrap(), latched.unwrap());
    for event in [&predicate, &latched] {
        assert_eq!(event["iface"], iface.as_str(), "{event}");
        assert_eq!(event["direction"], "ingress", "{event}");
        assert_eq!(event["diode"], "hateless_stream", "{event}");
        assert_eq!(event["flow"]["src_ip"], "172.30.152.11", "{event}");
        assert_eq!(event["flow"]["src_port"], 8080, "{event}");
        assert_eq!(event["flow"]["proto"], 6, "{event}");
    }
    assert_eq!(
        predicate["flow"], latched["flow"],
        "the latched segments are the refused flow's"
    );

    // SIGINT ends watch cleanly.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(watch.id() as libc::pid_t, libc::SIGINT) };
    let status = watch.wait().expect("waiting for watch");
    assert_eq!(status.code(), Some(0), "watch exits 0 on Ctrl-C");
}
