//! End to end: real HTTP over a real veth, through a real diode attached by `lagic lab up`.
//!
//! Each test builds its own lab (name `e2eN`, subnet 172.30.10N.0/24) so the tests run in
//! parallel, and a guard runs `lagic lab down` even when the test panics. They need root;
//! without it they skip loudly, or fail when the environment variable `CI` is set.
//!
//! "Blocked" is defined in `common` ([`common::run_pairs`]: pass controls of the same shape
//! complete within [`DEADLINE`] in some time `T`, then the blocked response is still
//! incomplete after twice `T` plus a margin, and what arrived stops before the forbidden
//! bytes). What the enclave sent is known exactly: the echo generator is
//! deterministic, and `lagic-enclave complete` runs it outside the lab ([`expected_text`]);
//! each control checks that prediction against what the enclave in the lab really sent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lagic_lab::LabNames;

mod common;
use common::{
    assert_stopped_before, enclave_bin, find_ignoring_case, first_non_text, generate, lagic,
    lagic_ok, passes, response_body, run_pairs, workspace, Arrived, Pair,
};

/// The deadline of every request that must pass (the blocked checks' controls included):
/// the enclave answers these in milliseconds, so this is generous.
const DEADLINE: Duration = Duration::from_secs(10);
/// The deadline of the 1 MB response (nothing is blocked in that test).
const LARGE_PASS_WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Environment.

/// The text the lab's enclave generates for a request: the same echo generator with the
/// same default seed, run outside the lab.
fn expected_text(prompt: &str, max_tokens: usize) -> String {
    let out = Command::new(enclave_bin())
        .args(["complete", "--prompt", prompt, "--max-tokens"])
        .arg(max_tokens.to_string())
        .output()
        .expect("running lagic-enclave complete");
    assert!(
        out.status.success(),
        "lagic-enclave complete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(text.pop(), Some('\n'));
    text
}

/// Checks every pair (controls pass, blocked requests do not, all under [`DEADLINE`]) and
/// what arrived of each blocked response: a prefix of the body the enclave sent, ending
/// before the first byte `forbidden` finds in it. Each control's text must be what the
/// generator makes, which shows [`expected_text`] predicts the enclave in the lab.
fn check_pairs(
    addr: SocketAddr,
    pairs: &[Pair],
    forbidden: impl Fn(&[u8]) -> Option<usize>,
) -> Vec<Arrived> {
    let results = run_pairs(addr, pairs, DEADLINE);
    pairs
        .iter()
        .zip(results)
        .map(|(p, r)| {
            assert!(
                r.control_text == expected_text(&p.control, p.max_tokens),
                "{}: the control's text is not what the generator makes",
                p.what
            );
            let sent = response_body(&expected_text(&p.blocked, p.max_tokens));
            let at = forbidden(&sent).unwrap_or_else(|| {
                panic!("{}: the blocked response has nothing forbidden", p.what)
            });
            let arrived = assert_stopped_before(&r.blocked_received, &sent, at, &p.what);
            eprintln!(
                "{}: {} of {} body bytes arrived (head {}), the forbidden byte is at {at}",
                p.what,
                arrived.body,
                sent.len(),
                if arrived.head { "whole" } else { "not whole" }
            );
            arrived
        })
        .collect()
}

fn hate(body: &[u8]) -> Option<usize> {
    find_ignoring_case(body, b"hate")
}

/// Nothing of a small response arrives: the enclave writes head and body in one segment,
/// and that segment carries the forbidden bytes.
fn nothing_arrived(arrived: &[Arrived]) {
    for a in arrived {
        assert_eq!(
            *a,
            Arrived {
                head: false,
                body: 0
            }
        );
    }
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
    names: LabNames,
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
            names: LabNames::new(&name).expect("a valid lab name"),
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

    /// The largest packet the enclave's side may hand the diode in one piece (its veth's
    /// GSO limit): a response's bytes before its last such piece must get through.
    fn enclave_gso_max(&self) -> usize {
        let out = Command::new("ip")
            .args(["-n", &self.names.netns, "-d", "-j", "link", "show", "dev"])
            .arg(&self.names.enclave_if)
            .output()
            .expect("running ip");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
        ["gso_max_size", "gso_ipv4_max_size"]
            .iter()
            .filter_map(|k| v[0][k].as_u64())
            .max()
            .expect("ip -d shows the GSO limit") as usize
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

/// The start of a lab test: `None` (the test skips, or fails under `CI`) without root; else
/// the test's diodes and lab `n`, up with the diode `diode` compiles.
fn lab_up(n: u8, diode: impl FnOnce(&Diodes) -> PathBuf) -> Option<(Diodes, Lab)> {
    if !common::require_root("network namespaces, veth, BPF") {
        return None;
    }
    let diodes = Diodes::new();
    let lab = Lab::up(n, &diode(&diodes));
    Some((diodes, lab))
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
    let started = Instant::now();
    let Some((_diodes, lab)) = lab_up(1, |d| d.example("hateless")) else {
        return;
    };

    let text = passes(
        &generate(lab.addr, "Once upon a time", 64, DEADLINE),
        "Once upon a time",
    );
    assert!(text.starts_with("Once upon a time "), "{text}");
    assert!(text.split(' ').count() >= 64, "{text}");

    // Any case mix of the word is caught.
    let arrived = check_pairs(
        lab.addr,
        &[
            Pair::new("hateless", "I like bananas", "I hate bananas", 16),
            Pair::new(
                "hateless, mixed case",
                "I LiKe bananas",
                "I HaTe bananas",
                16,
            ),
        ],
        hate,
    );
    nothing_arrived(&arrived);
    // The lab still serves clean requests after blocked ones.
    passes(&generate(lab.addr, "The end", 4, DEADLINE), "The end");
    eprintln!("e2e1 took {} ms", started.elapsed().as_millis());
}

#[test]
fn e2e_hate_in_the_last_kilobyte_of_a_large_response_is_blocked() {
    let started = Instant::now();
    let Some((_diodes, lab)) = lab_up(2, |d| d.example("hateless")) else {
        return;
    };

    // With max_tokens 0 the response is the prompt: ~100 KB of clean text ending in " hate",
    // so the word sits in the last of many segments (of at most the MTU, since the lab's
    // enclave end completes checksums in software: docs/lab.md; the bound below also holds
    // for the GSO skbs a device with offload sends). The control is the same size ending
    // in " tame": size alone blocks nothing.
    let clean = clean_text(100 * 1024);
    let pair = Pair::new(
        "100 KB ending in hate",
        &format!("{clean} tame"),
        &format!("{clean} hate"),
        0,
    );
    let arrived = check_pairs(lab.addr, std::slice::from_ref(&pair), hate)[0];
    let sent = response_body(&pair.blocked);
    let word_at = hate(&sent).expect("the word is in the body");
    assert!(
        word_at > sent.len() - 1024,
        "the word is in the last kilobyte"
    );
    // Every piece before the one carrying the word is clean and passes, and one piece holds
    // at most the veth's GSO limit (at most the MTU here): so most of the response arrived,
    // all but its tail.
    let gso = lab.enclave_gso_max();
    assert!(arrived.head, "the head leaves in the first, clean piece");
    assert!(
        arrived.body >= sent.len().saturating_sub(gso),
        "only {} of {} body bytes arrived; all but the last piece ({gso} bytes at most) must",
        arrived.body,
        sent.len()
    );
    eprintln!(
        "e2e2: {} of {} body bytes arrived (the word at {word_at}, GSO limit {gso}); took {} ms",
        arrived.body,
        sent.len(),
        started.elapsed().as_millis()
    );
}

#[test]
fn e2e_a_one_megabyte_clean_response_arrives_whole() {
    let started = Instant::now();
    let Some((_diodes, lab)) = lab_up(3, |d| d.example("hateless")) else {
        return;
    };

    let prompt = "Once upon a time";
    let max_tokens = 200_000;
    // What the generator must return: the same echo generator, same default seed, run
    // outside the lab.
    let expected = expected_text(prompt, max_tokens);
    assert!(expected.len() >= 1_000_000, "{} bytes", expected.len());

    let t = Instant::now();
    let text = passes(
        &generate(lab.addr, prompt, max_tokens, LARGE_PASS_WAIT),
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
    let started = Instant::now();
    let Some((_diodes, lab)) = lab_up(4, |d| d.all_text()) else {
        return;
    };

    passes(
        &generate(lab.addr, "Once upon a time", 32, DEADLINE),
        "ASCII story",
    );
    // JSON escapes control characters, but sends non-ASCII UTF-8 raw: é is 0xC3 0xA9.
    let clean = clean_text(50 * 1024);
    let arrived = check_pairs(
        lab.addr,
        &[
            Pair::new("all_text: café", "cafes", "café", 8),
            // Deep in a large response too.
            Pair::new(
                "all_text: 50 KB ending in naïve",
                &format!("{clean}naive!"),
                &format!("{clean}naïve"),
                0,
            ),
        ],
        first_non_text,
    );
    nothing_arrived(&arrived[..1]);
    // The first flight of a new connection is bounded by the initial congestion window
    // (10 segments, about 14 KB, Linux's default), far less than this response, so the head
    // leaves in a clean piece of its own and gets through.
    assert!(arrived[1].head, "the large response's clean head arrived");
    eprintln!("e2e4 took {} ms", started.elapsed().as_millis());
}

#[test]
fn e2e_replacing_the_diode_changes_verdicts_without_restarting_the_enclave() {
    let started = Instant::now();
    let Some((diodes, lab)) = lab_up(5, |d| d.example("hateless")) else {
        return;
    };
    let pid = lab.enclave_pid();

    let arrived = check_pairs(
        lab.addr,
        &[Pair::new(
            "hateless: I hate bananas",
            "I like bananas",
            "I hate bananas",
            8,
        )],
        hate,
    );
    nothing_arrived(&arrived);
    passes(&generate(lab.addr, "café", 8, DEADLINE), "hateless: café");

    let out = lagic_ok(&[
        "attach",
        diodes.all_text().to_str().unwrap(),
        "--iface",
        &lab.host_if,
    ]);
    assert!(out.contains("replaced program"), "{out}");

    passes(
        &generate(lab.addr, "I hate bananas", 8, DEADLINE),
        "all_text: I hate bananas",
    );
    let arrived = check_pairs(
        lab.addr,
        &[Pair::new("all_text: café", "cafes", "café", 8)],
        first_non_text,
    );
    nothing_arrived(&arrived);

    let status = lab.status_json();
    assert_eq!(status["diode"]["diode"], "all_text");
    assert_eq!(status["enclave"]["pid"].as_u64(), Some(pid));
    assert_eq!(status["enclave"]["running"], true);
    eprintln!("e2e5 took {} ms", started.elapsed().as_millis());
}

#[test]
fn e2e_detach_lets_traffic_flow_and_lab_down_leaves_nothing() {
    let started = Instant::now();
    let Some((_diodes, lab)) = lab_up(6, |d| d.example("hateless")) else {
        return;
    };
    let name = lab.name.clone();
    let host_if = lab.host_if.clone();

    let arrived = check_pairs(
        lab.addr,
        &[Pair::new(
            "attached: I hate bananas",
            "I like bananas",
            "I hate bananas",
            8,
        )],
        hate,
    );
    nothing_arrived(&arrived);
    let out = lagic_ok(&["detach", "--iface", &host_if]);
    assert!(out.contains("detached hateless"), "{out}");
    let text = passes(
        &generate(lab.addr, "I hate bananas", 8, DEADLINE),
        "detached: I hate bananas",
    );
    assert_eq!(text, expected_text("I hate bananas", 8));
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
    assert!(!Path::new(lagic_lab::STATE_ROOT).join(&name).exists());
    // Down is idempotent.
    let again = lagic_ok(&["lab", "down", "--name", &name]);
    assert!(again.contains("nothing to remove"), "{again}");
    eprintln!("e2e6 took {} ms", started.elapsed().as_millis());
}

#[test]
fn e2e_lab_up_refuses_a_taken_name_and_cleans_up_after_a_failure() {
    let Some((diodes, lab)) = lab_up(7, |d| d.example("hateless")) else {
        return;
    };
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
    passes(&generate(lab.addr, "Still here", 2, DEADLINE), "first lab");
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

/// Removes a namespace and a link this test made by hand, also on panic.
struct Foreign {
    netns: String,
    link: String,
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

#[test]
fn e2e_lab_up_refuses_names_someone_else_holds_and_leaves_them_alone() {
    if !common::require_root("network namespaces, veth, BPF") {
        return;
    }
    let diodes = Diodes::new();
    let names = LabNames::new("e2e9").unwrap();
    let foreign = Foreign {
        netns: names.netns.clone(),
        link: names.host_if.clone(),
    };
    // A namespace and a host link that carry the lab's names but that lagic did not make.
    drop(Foreign {
        netns: names.netns.clone(),
        link: names.host_if.clone(),
    });
    for args in [
        vec!["netns", "add", &foreign.netns],
        // A veth (not every kernel has the dummy driver); deleting one end removes both.
        vec![
            "link",
            "add",
            &foreign.link,
            "type",
            "veth",
            "peer",
            "name",
            "lgf-e2e9",
        ],
    ] {
        let out = Command::new("ip").args(&args).output().expect("running ip");
        assert!(out.status.success(), "ip {}: {out:?}", args.join(" "));
    }
    let out = lagic(&[
        "lab",
        "up",
        "--diode",
        diodes.example("hateless").to_str().unwrap(),
        "--name",
        "e2e9",
        "--subnet",
        "172.30.109.0/24",
        "--enclave-bin",
        enclave_bin().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "lab `e2e9` is already up or left over (namespace lagic-e2e9, link lgh-e2e9)"
        ),
        "{stderr}"
    );
    // Not made by `lab up`, so the advice is not `lab down` (which would delete them).
    assert!(stderr.contains("choose another --name"), "{stderr}");
    assert!(!stderr.contains("lab down"), "{stderr}");
    // Refused, not clobbered: both are still there, and `up` made nothing of its own.
    assert!(Path::new("/run/netns").join(&foreign.netns).exists());
    let link = std::fs::read_to_string(format!("/sys/class/net/{}/type", foreign.link));
    assert!(link.is_ok(), "the hand-made link survives");
    assert!(!Path::new(lagic_lab::STATE_ROOT).join("e2e9").exists());
    let ns_links = Command::new("ip")
        .args(["-n", &foreign.netns, "-o", "link", "show"])
        .output()
        .expect("running ip");
    assert!(
        !String::from_utf8_lossy(&ns_links.stdout).contains("lge-e2e9"),
        "no veth was made into the foreign namespace"
    );
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
