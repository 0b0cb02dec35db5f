//! End to end: real HTTP over a real veth, through a real diode attached by `lagic lab up`.
//!
//! Each test builds its own lab (name `e2eN`, subnet 172.30.10N.0/24) so the tests run in
//! parallel, and a guard runs `lagic lab down` even when the test panics. They need root;
//! without it they skip loudly, or fail when the environment variable `CI` is set.
//!
//! "Blocked" means the client sees no complete response (status line, head and all
//! `Content-Length` body bytes) within [`BLOCKED_WAIT`]: the diode drops the enclave's data
//! segments, so TCP retransmits into the diode until the enclave gives up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;
use common::{generate, workspace, Reply};

const LAGIC: &str = env!("CARGO_BIN_EXE_lagic");
/// How long a client waits before calling a request blocked.
const BLOCKED_WAIT: Duration = Duration::from_secs(3);
/// How long a client waits for a response that must arrive.
const PASS_WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Environment.

/// lagi-enclave from the same target directory as lagic, built on first use if missing.
fn enclave_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = Path::new(LAGIC).parent().expect("lagic has a directory");
        let bin = profile_dir.join("lagi-enclave");
        if bin.is_file() {
            return bin;
        }
        let target_root = profile_dir.parent().expect("a target directory");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "-p", "lagi-enclave"])
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", target_root);
        if release {
            command.arg("--release");
        }
        let status = command.status().expect("running cargo");
        assert!(
            status.success() && bin.is_file(),
            "lagi-enclave is missing at {} and building it failed; build it with \
             `cargo build -p lagi-enclave{}` (same CARGO_TARGET_DIR as the tests)",
            bin.display(),
            if release { " --release" } else { "" }
        );
        bin
    })
    .clone()
}

fn lagic(args: &[&str]) -> Output {
    Command::new(LAGIC)
        .args(args)
        .output()
        .expect("running lagic")
}

fn lagic_ok(args: &[&str]) -> String {
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

/// A per-test scratch directory with compiled diodes.
struct Diodes {
    dir: tempfile::TempDir,
}

impl Diodes {
    fn new() -> Diodes {
        Diodes {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Compiles `examples/NAME.json`.
    fn example(&self, name: &str) -> PathBuf {
        let spec = workspace().join("examples").join(format!("{name}.json"));
        self.compile(&spec, name)
    }

    /// A diode of our own: every payload byte, to the end, is text.
    fn all_text(&self) -> PathBuf {
        let spec = self.dir.path().join("all_text.json");
        std::fs::write(
            &spec,
            r#"{
  "version": 1,
  "name": "all_text",
  "description": "Every payload byte is text (printable ASCII, TAB, LF, CR).",
  "policy": {"arp": "pass", "ipv6_nd": "pass", "other_ip": "drop", "non_ip": "drop"},
  "predicate": {
    "op": "all",
    "window": {"start": 0, "end": null},
    "class": [[9, 10], [13, 13], [32, 126]]
  }
}"#,
        )
        .expect("writing the spec");
        self.compile(&spec, "all_text")
    }

    fn compile(&self, spec: &Path, name: &str) -> PathBuf {
        let out = self.dir.path().join(format!("{name}.o"));
        lagic_ok(&[
            "compile",
            spec.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The lab.

/// A running lab; dropping it runs `lagic lab down`, also on panic.
struct Lab {
    name: String,
    addr: SocketAddr,
    host_if: String,
}

impl Lab {
    fn up(n: u8, diode: &Path) -> Lab {
        let name = format!("e2e{n}");
        let subnet = format!("172.30.{}.0/24", 100 + u32::from(n));
        // A lab of this name left by an earlier, killed run must not fail this one.
        let _ = lagic(&["lab", "down", "--name", &name]);
        let bin = enclave_bin();
        let lab = Lab {
            addr: format!("172.30.{}.11:8080", 100 + u32::from(n))
                .parse()
                .unwrap(),
            host_if: format!("lgh-{name}"),
            name,
        };
        lagic_ok(&[
            "lab",
            "up",
            "--diode",
            diode.to_str().unwrap(),
            "--subnet",
            &subnet,
            "--name",
            &lab.name,
            "--enclave-bin",
            bin.to_str().unwrap(),
        ]);
        lab
    }

    fn status_json(&self) -> serde_json::Value {
        let out = lagic(&["lab", "status", "--name", &self.name, "--json"]);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("lab status --json prints JSON");
        v[0].clone()
    }

    fn enclave_pid(&self) -> u64 {
        self.status_json()["enclave"]["pid"]
            .as_u64()
            .expect("a pid")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = lagic(&["lab", "down", "--name", &self.name]);
        if !out.status.success() {
            eprintln!(
                "lab down --name {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A small HTTP client.

/// The `response` string of a complete 200 reply; panics otherwise.
fn passes(reply: Reply, what: &str) -> String {
    match reply {
        Reply::Complete { status: 200, body } => {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
            v["response"].as_str().expect("a response field").to_owned()
        }
        other => panic!("{what}: expected 200 with a body, got {other:?}"),
    }
}

fn blocked(reply: Reply, what: &str) {
    match reply {
        Reply::Incomplete { .. } => {}
        Reply::Complete { status, body } => panic!(
            "{what}: expected to be blocked, got {status} with {} body bytes",
            body.len()
        ),
    }
}

/// Clean filler of at least `len` bytes: words of the echo generator's vocabulary.
fn clean_text(len: usize) -> String {
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        s.push_str("once upon a time the girl went to the park ");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn e2e_hateless_passes_a_story_and_blocks_hate() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let started = Instant::now();
    let diodes = Diodes::new();
    let lab = Lab::up(1, &diodes.example("hateless"));

    let text = passes(
        generate(lab.addr, "Once upon a time", 64, PASS_WAIT),
        "Once upon a time",
    );
    assert!(text.starts_with("Once upon a time "), "{text}");
    assert!(text.split(' ').count() >= 64, "{text}");

    let t = Instant::now();
    blocked(
        generate(lab.addr, "I hate bananas", 16, BLOCKED_WAIT),
        "I hate bananas",
    );
    assert!(t.elapsed() < BLOCKED_WAIT + Duration::from_secs(1));
    // Any case mix of the word is caught.
    blocked(
        generate(lab.addr, "I HaTe bananas", 16, BLOCKED_WAIT),
        "I HaTe bananas",
    );
    // The lab still serves clean requests after blocked ones.
    passes(generate(lab.addr, "The end", 4, PASS_WAIT), "The end");
    eprintln!("e2e1 took {} ms", started.elapsed().as_millis());
}

#[test]
fn e2e_hate_in_the_last_kilobyte_of_a_large_response_is_blocked() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let started = Instant::now();
    let diodes = Diodes::new();
    let lab = Lab::up(2, &diodes.example("hateless"));

    // Control: the same size without the word passes whole, so size alone blocks nothing.
    let clean = clean_text(100 * 1024);
    let text = passes(
        generate(lab.addr, &clean, 0, PASS_WAIT),
        "100 KB clean prompt",
    );
    assert_eq!(text, clean);

    // With max_tokens 0 the response is the prompt: ~100 KB of clean text ending in " hate",
    // so the word sits in the last segment of large (GSO, non-linear) skbs.
    let prompt = format!("{clean} hate");
    assert!(prompt.len() > 100 * 1024);
    match generate(lab.addr, &prompt, 0, BLOCKED_WAIT) {
        Reply::Incomplete { received } => {
            eprintln!(
                "e2e2: {received} bytes arrived of a {}-byte body before the diode cut it",
                prompt.len()
            );
        }
        other => panic!("a 100 KB response ending in hate got through: {other:?}"),
    }
    eprintln!("e2e2 took {} ms", started.elapsed().as_millis());
}

#[test]
fn e2e_a_one_megabyte_clean_response_arrives_whole() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let started = Instant::now();
    let diodes = Diodes::new();
    let lab = Lab::up(3, &diodes.example("hateless"));

    let prompt = "Once upon a time";
    let max_tokens = 200_000;
    // What the generator must return: the same echo generator, same default seed, run
    // outside the lab.
    let expected = Command::new(enclave_bin())
        .args([
            "complete",
            "--prompt",
            prompt,
            "--max-tokens",
            &max_tokens.to_string(),
        ])
        .output()
        .expect("running lagi-enclave complete");
    assert!(expected.status.success());
    let mut expected = String::from_utf8(expected.stdout).expect("UTF-8");
    assert_eq!(expected.pop(), Some('\n'));
    assert!(expected.len() >= 1_000_000, "{} bytes", expected.len());

    let t = Instant::now();
    let text = passes(
        generate(lab.addr, prompt, max_tokens, PASS_WAIT),
        "1 MB story",
    );
    let took = t.elapsed();
    assert_eq!(text.len(), expected.len());
    assert!(
        text == expected,
        "the 1 MB response differs from the generator's output"
    );
    eprintln!(
        "e2e3: {} bytes through the diode in {} ms; test took {} ms",
        text.len(),
        took.as_millis(),
        started.elapsed().as_millis()
    );
}

#[test]
fn e2e_all_text_diode_blocks_bytes_outside_text() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let started = Instant::now();
    let diodes = Diodes::new();
    let lab = Lab::up(4, &diodes.all_text());

    passes(
        generate(lab.addr, "Once upon a time", 32, PASS_WAIT),
        "ASCII story",
    );
    // JSON escapes control characters, but sends non-ASCII UTF-8 raw: é is 0xC3 0xA9.
    blocked(generate(lab.addr, "café", 8, BLOCKED_WAIT), "café");
    // Deep in a large response too.
    let prompt = format!("{}naïve", clean_text(50 * 1024));
    blocked(
        generate(lab.addr, &prompt, 0, BLOCKED_WAIT),
        "50 KB ending in naïve",
    );
    eprintln!("e2e4 took {} ms", started.elapsed().as_millis());
}

#[test]
fn e2e_replacing_the_diode_changes_verdicts_without_restarting_the_enclave() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let started = Instant::now();
    let diodes = Diodes::new();
    let lab = Lab::up(5, &diodes.example("hateless"));
    let pid = lab.enclave_pid();

    blocked(
        generate(lab.addr, "I hate bananas", 8, BLOCKED_WAIT),
        "hateless: I hate bananas",
    );
    passes(generate(lab.addr, "café", 8, PASS_WAIT), "hateless: café");

    let out = lagic_ok(&[
        "attach",
        diodes.all_text().to_str().unwrap(),
        "--iface",
        &lab.host_if,
    ]);
    assert!(out.contains("replaced program"), "{out}");

    passes(
        generate(lab.addr, "I hate bananas", 8, PASS_WAIT),
        "all_text: I hate bananas",
    );
    blocked(
        generate(lab.addr, "café", 8, BLOCKED_WAIT),
        "all_text: café",
    );

    let status = lab.status_json();
    assert_eq!(status["diode"]["diode"], "all_text");
    assert_eq!(status["enclave"]["pid"].as_u64(), Some(pid));
    assert_eq!(status["enclave"]["running"], true);
    eprintln!("e2e5 took {} ms", started.elapsed().as_millis());
}

#[test]
fn e2e_detach_lets_traffic_flow_and_lab_down_leaves_nothing() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let started = Instant::now();
    let diodes = Diodes::new();
    let lab = Lab::up(6, &diodes.example("hateless"));
    let name = lab.name.clone();
    let host_if = lab.host_if.clone();

    blocked(
        generate(lab.addr, "I hate bananas", 8, BLOCKED_WAIT),
        "attached: I hate bananas",
    );
    let out = lagic_ok(&["detach", "--iface", &host_if]);
    assert!(out.contains("detached hateless"), "{out}");
    let text = passes(
        generate(lab.addr, "I hate bananas", 8, PASS_WAIT),
        "detached: I hate bananas",
    );
    assert!(text.starts_with("I hate bananas"));
    // Detaching twice: nothing is attached (exit 1).
    assert_eq!(
        lagic(&["detach", "--iface", &host_if]).status.code(),
        Some(1)
    );

    drop(lab);
    let sh = |cmd: &str, args: &[&str]| {
        let out = Command::new(cmd).args(args).output().expect(cmd);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!sh("ip", &["netns", "list"]).contains(&format!("lagic-{name}")));
    assert!(!sh("ip", &["link", "show"]).contains(&host_if));
    assert!(!sh("tc", &["qdisc", "show"]).contains(&host_if));
    // No pins left: status (which reads them all) no longer knows the interface.
    assert!(!lagic_ok(&["status", "--json"]).contains(&format!("\"{host_if}\"")));
    assert!(!Path::new("/run/lagic/lab").join(&name).exists());
    // Down is idempotent.
    let again = lagic_ok(&["lab", "down", "--name", &name]);
    assert!(again.contains("nothing to remove"), "{again}");
    eprintln!("e2e6 took {} ms", started.elapsed().as_millis());
}

#[test]
fn e2e_lab_up_refuses_a_taken_name_and_cleans_up_after_a_failure() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let diodes = Diodes::new();
    let lab = Lab::up(7, &diodes.example("hateless"));
    // The same name again: refused (2), and the running lab is untouched.
    let out = lagic(&[
        "lab",
        "up",
        "--diode",
        diodes.example("hateless").to_str().unwrap(),
        "--name",
        &lab.name,
        "--subnet",
        "172.30.117.0/24",
        "--enclave-bin",
        enclave_bin().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already up"));
    passes(generate(lab.addr, "Still here", 2, PASS_WAIT), "first lab");
    drop(lab);

    // An enclave that cannot start: up fails (2) and leaves nothing behind.
    let out = lagic(&[
        "lab",
        "up",
        "--diode",
        diodes.example("hateless").to_str().unwrap(),
        "--name",
        "e2e8",
        "--subnet",
        "172.30.108.0/24",
        "--enclave-bin",
        "/bin/false",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!Path::new("/run/netns/lagic-e2e8").exists());
    assert!(!Path::new("/sys/class/net/lgh-e2e8").exists());
    assert!(!Path::new("/run/lagic/lab/e2e8").exists());
}

#[test]
fn e2e_attach_detach_status_exit_codes() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let diodes = Diodes::new();
    let hateless = diodes.example("hateless");
    let hateless = hateless.to_str().unwrap();
    // No such interface: 2, and the message says how to list interfaces.
    let out = lagic(&["attach", hateless, "--iface", "nosuchif9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ip link"));
    // Nothing attached: 1.
    let out = lagic(&["detach", "--iface", "nosuchif9", "--direction", "egress"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lagic diode is attached"));
    // Usage errors: 2.
    assert_eq!(
        lagic(&[
            "attach",
            hateless,
            "--iface",
            "lo",
            "--direction",
            "sideways"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(lagic(&["attach", hateless]).status.code(), Some(2));
    // Status: 0, and --json is an array.
    let out = lagic(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(v.is_array());
}
