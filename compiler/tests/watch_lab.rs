//! `lagic watch --json` and `lagic status` against a lab with traffic: the
//! blocked response's drop event arrives with the right reason, flow,
//! deciding scan and offset, and the counters count it; `--tee FILE` gets
//! every line the watch printed, the same. Needs root (skips
//! loudly, or fails under CI); run under `flock /tmp/lagic-kernel.lock`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::{
    enclave_bin, generate, lagic, lagic_ok, passes, require_root, workspace, LabGuard, LAGIC,
};

const NAME: &str = "watch1";
const SUBNET: &str = "172.30.150.0/24";
const ENCLAVE: &str = "172.30.150.11:8080";

#[test]
fn watch_reports_the_blocked_response_and_status_counts_it() {
    if !require_root("a lab: namespaces, veth, BPF") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec = workspace().join("examples/hateless.json");
    let object = dir.path().join("hateless.o");
    lagic_ok(&[
        "compile",
        spec.to_str().unwrap(),
        "-o",
        object.to_str().unwrap(),
    ]);
    let _ = lagic(&["lab", "down", "--name", NAME]);
    let bin = enclave_bin();
    lagic_ok(&[
        "lab",
        "up",
        "--diode",
        object.to_str().unwrap(),
        "--subnet",
        SUBNET,
        "--name",
        NAME,
        "--enclave-bin",
        bin.to_str().unwrap(),
    ]);
    let _lab = LabGuard(NAME);
    let iface = format!("lgh-{NAME}");

    // Events wait in the ring buffer until read, so watch may start late.
    let tee = dir.path().join("decisions.jsonl");
    let mut watch = Command::new(LAGIC)
        .args(["watch", "--json", "--iface", &iface, "--spec"])
        .arg(&spec)
        .arg("--tee")
        .arg(&tee)
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

    let addr: SocketAddr = ENCLAVE.parse().unwrap();
    let story = generate(addr, "Once upon a time", 12, Duration::from_secs(10));
    passes(&story, "a clean story");
    let blocked = generate(addr, "I hate bananas", 12, Duration::from_secs(3));
    assert!(
        !matches!(blocked, common::Reply::Complete(_)),
        "the hateful response must not arrive"
    );

    // The first predicate drop of the enclave's answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut printed = Vec::new();
    let event = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("a predicate drop event within 10 s");
        printed.push(line.clone());
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        if v["reason"] == "predicate" {
            break v;
        }
    };
    assert_eq!(event["verdict"], "drop");
    assert_eq!(event["iface"], iface.as_str());
    assert_eq!(event["direction"], "ingress");
    assert_eq!(event["diode"], "hateless");
    let flow = &event["flow"];
    assert_eq!(flow["src_ip"], "172.30.150.11");
    assert_eq!(flow["src_port"], 8080);
    assert_eq!(flow["dest_ip"], "172.30.150.1");
    assert_eq!(flow["proto"], 6);
    assert_eq!(event["decided_by"]["atom"], 0);
    assert_eq!(event["decided_by"]["scan"], 0);
    assert_eq!(event["decided_by"]["path"], "$.predicate.arg");
    assert_eq!(
        event["decided_by"]["construct"],
        "scan 0 (dfa over payload[0..n])"
    );
    // The offset is the exact deciding byte: the `e` that completes "hate",
    // found independently in the excerpt (which starts at the chunk the
    // scan stopped in and covers it).
    let offset = event["offset"].as_u64().expect("an offset");
    assert_eq!(event["offset_span"].as_u64(), Some(1), "{event}");
    assert_eq!(event["offset_exact"].as_bool(), Some(true), "{event}");
    let start = event["excerpt_start"].as_u64().expect("an excerpt start");
    let excerpt = unescape(event["excerpt"].as_str().unwrap()).to_ascii_lowercase();
    let hate_at = excerpt
        .windows(4)
        .position(|w| w == b"hate")
        .expect("the excerpt shows the word") as u64;
    assert_eq!(
        offset,
        start + hate_at + 3,
        "the last byte of the first \"hate\" in {excerpt:?} from {start}"
    );
    assert!(offset < event["payload_len"].as_u64().unwrap());

    // SIGINT ends watch cleanly.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(watch.id() as libc::pid_t, libc::SIGINT) };
    let status = watch.wait().expect("waiting for watch");
    assert_eq!(status.code(), Some(0), "watch exits 0 on Ctrl-C");
    // The reader thread ends at EOF: every printed line is in `printed` now.
    printed.extend(lines.iter());
    let teed = std::fs::read_to_string(&tee).expect("the --tee file");
    assert_eq!(
        teed.lines().collect::<Vec<_>>(),
        printed,
        "--tee holds exactly the JSON lines the watch printed"
    );

    let status: serde_json::Value =
        serde_json::from_str(&lagic_ok(&["status", "--json"])).expect("JSON");
    let ours = status
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["interface"] == iface.as_str())
        .expect("the lab's attachment");
    let c = &ours["counters"];
    assert!(c["pass"].as_u64().unwrap() >= 1, "{c}");
    assert!(c["predicate"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(c["lost_events"], 0, "{c}");
}

/// An excerpt as `lagic watch` escapes it (docs/watch.md) back to bytes.
fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() {
            out.push(u8::from_str_radix(&text[i + 2..i + 4], 16).expect("\\xNN"));
            i += 4;
        } else if b[i] == b'\\' && i + 1 < b.len() {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
