//! `lagic dashboard` in a real headless Chromium, against a real lab: the
//! page loads and shows the diode; the seed's two prompts go through the
//! diode ("Once upon a time" is answered, "I hate bananas" shows "blocked by
//! hateless: predicate at byte N" with the excerpt, ended by the drop event
//! rather than a timeout); the counters move; the picker replaces the diode
//! and the page shows the new name, which the kernel confirms; an invalid
//! upload is refused and a valid one attached. The browser
//! is driven over WebDriver (chromedriver) by the small client below; a
//! screenshot is saved at target/dashboard/dashboard.png.
//!
//! Needs root, chromium and chromium-driver (scripts/install-test-deps
//! installs them); skips loudly without them, or fails when CI is set. Run
//! it under the kernel lock: `flock /tmp/lagic-kernel.lock cargo test -p
//! lagic --test dashboard`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lagic_lab::http::{self, Reply};
use serde_json::{json, Value};

mod common;
use common::{enclave_bin, lagic, lagic_ok, require_root, workspace, LabGuard, LAGIC};

const NAME: &str = "dash1";
const SUBNET: &str = "172.30.151.0/24";
const IFACE: &str = "lgh-dash1";
/// Generous: a loaded 2-core machine still answers well within it.
const WAIT: Duration = Duration::from_secs(30);

/// A child process killed (SIGTERM, then SIGKILL) if the test ends early.
struct Reaped(Child);

impl Reaped {
    /// SIGTERM and the exit code.
    fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: as above.
            unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
            std::thread::sleep(Duration::from_millis(300));
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A WebDriver session (W3C protocol, JSON over HTTP to chromedriver).
struct Browser {
    driver: SocketAddr,
    session: String,
}

/// The key W3C WebDriver names element references by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn webdriver(driver: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let reply = http::exchange(
        driver,
        method,
        path,
        Some("application/json"),
        body.as_bytes(),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
    let Reply::Complete(response) = reply else {
        panic!("WebDriver {method} {path}: no complete answer: {reply:?}");
    };
    let v: Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "WebDriver {method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&response.body)
        )
    });
    assert_eq!(
        response.status, 200,
        "WebDriver {method} {path} failed: {v}"
    );
    v["value"].clone()
}

impl Browser {
    fn start(driver: SocketAddr) -> Browser {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1500"]
            }
        }}});
        let v = webdriver(driver, "POST", "/session", Some(&caps));
        Browser {
            driver,
            session: v["sessionId"].as_str().expect("a session id").to_owned(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        webdriver(self.driver, method, &path, body.as_ref())
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The text of the element with `id`, as the page shows it.
    fn text(&self, id: &str) -> String {
        let v = self.call(
            "POST",
            "/execute/sync",
            Some(json!({
                "script": "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
                "args": [id]
            })),
        );
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the text of `id` satisfies `ok`; panics with it after `WAIT`.
    fn wait_text(&self, id: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + WAIT;
        loop {
            let t = self.text(id);
            if ok(&t) {
                return t;
            }
            assert!(
                Instant::now() < until,
                "#{id} never showed {what} within {WAIT:?}; it shows {t:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, to: &Path) {
        let v = self.call("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http::exchange(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
            &[],
            Duration::from_secs(10),
        );
    }
}

/// Standard base64 (the screenshot), padding and line breaks allowed.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:#x}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !matches!(c, b'=' | b'\n' | b'\r'))
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aA=="), b"h");
}

/// The number a counter shows.
fn count(text: &str) -> u64 {
    text.trim().parse().unwrap_or(0)
}

/// The diode attached to the lab's interface, as `lagic status` reads it from the kernel.
fn attached_diode() -> String {
    let status: Value = serde_json::from_str(&lagic_ok(&["status", "--json"])).expect("JSON");
    status
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["interface"] == IFACE)
        .map(|a| a["diode"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[test]
fn dashboard_in_a_real_browser_answers_blocks_counts_and_switches() {
    if !require_root("a lab: namespaces, veth, BPF") {
        return;
    }
    let install = "scripts/install-test-deps (Debian's chromium and chromium-driver)";
    let Some(chromedriver) = lagic_testkit::require_tool("chromedriver", install) else {
        return;
    };
    if lagic_testkit::require_tool("chromium", install).is_none() {
        return;
    }

    let examples = workspace().join("examples");
    let spec = examples.join("hateless.json");
    let _ = lagic(&["lab", "down", "--name", NAME]);
    let bin = enclave_bin();
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
        bin.to_str().unwrap(),
    ]);
    let _lab = LabGuard(NAME);

    // The dashboard on a free port; its first line says where.
    let mut dashboard = Reaped(
        Command::new(LAGIC)
            .args(["dashboard", "--listen", "127.0.0.1:0", "--lab", NAME])
            .arg("--examples")
            .arg(&examples)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting lagic dashboard"),
    );
    let mut first = String::new();
    BufReader::new(dashboard.0.stdout.take().unwrap())
        .read_line(&mut first)
        .expect("the dashboard's first line");
    let url = first
        .trim()
        .strip_prefix("lagic dashboard: serving ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();

    let driver_port = free_port();
    let _driver = Reaped(
        Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver"),
    );
    let driver: SocketAddr = format!("127.0.0.1:{driver_port}").parse().unwrap();
    let until = Instant::now() + WAIT;
    while !http::get(driver, "/status", Duration::from_secs(2))
        .ok()
        .and_then(|r| r.complete().map(|r| r.status == 200))
        .unwrap_or(false)
    {
        assert!(Instant::now() < until, "chromedriver never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let browser = Browser::start(driver);
    browser.open(&url);

    // At a glance: which diode guards what, the lab, live events.
    browser.wait_text("diode-name", "the diode hateless", |t| t == "hateless");
    browser.wait_text("gate-summary", "the guarding diode", |t| {
        t.contains("hateless guards lgh-dash1 ingress")
    });
    browser.wait_text("connection", "a live event stream", |t| t == "live");
    browser.wait_text("lab-summary", "the lab up", |t| {
        t.starts_with("Lab dash1: up")
    });
    let pass_before = count(&browser.wait_text("counter-pass", "counters", |t| {
        t.trim().parse::<u64>().is_ok()
    }));
    let drop_before = count(&browser.text("counter-drop"));

    // The clean story is answered.
    browser.type_into("#prompt", "Once upon a time");
    browser.type_into("#wait-time", "20");
    browser.click("#send");
    let answered = browser.wait_text("result-title", "an answer", |t| t.starts_with("answered"));
    assert!(answered.contains("HTTP 200"), "{answered}");
    let story = browser.text("result-detail");
    assert!(story.starts_with("Once upon a time"), "{story}");

    // The hateful one is blocked, by the drop event of its own connection,
    // well before the 20 s the enclave was allowed.
    browser.type_into("#prompt", "I hate bananas");
    browser.click("#send");
    let blocked = browser.wait_text("result-title", "a block", |t| {
        // Not "answered": the story's answer is still shown until the click.
        t.starts_with("blocked") || t.starts_with("no answer")
    });
    assert!(
        blocked.starts_with("blocked by hateless: predicate at byte "),
        "{blocked}"
    );
    let detail = browser.text("result-detail");
    assert!(
        detail.contains("decided by $.predicate.arg (scan 0 (dfa over payload[0..n]))"),
        "{detail}"
    );
    assert!(detail.contains("excerpt from byte "), "{detail}");
    let excerpt = detail
        .split("excerpt from byte ")
        .nth(1)
        .unwrap_or_default();
    assert!(
        excerpt.contains("hate"),
        "the excerpt shows the word: {detail}"
    );
    // The byte named is the exact deciding byte: the `e` that completes
    // "hate", found in the excerpt (which starts at the scan's chunk).
    let at: usize = blocked["blocked by hateless: predicate at byte ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a byte offset in {blocked:?}"));
    assert!(
        detail.contains(&format!("the deciding byte is payload[{at}]")),
        "{detail}"
    );
    let start: usize = excerpt
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the excerpt's start in {detail:?}"));
    let quoted = excerpt.split_once(": \"").map_or("", |(_, q)| q);
    let bytes = unescape(quoted.strip_suffix('"').unwrap_or(quoted));
    assert!(
        at >= start + 3 && bytes.get(at - start - 3..=at - start) == Some(&b"hate"[..]),
        "byte {at} ends \"hate\" in the excerpt from {start}: {detail}"
    );

    // The counters moved: the story passed, the block dropped by the predicate.
    browser.wait_text("counter-pass", "more passes", |t| count(t) > pass_before);
    browser.wait_text("counter-drop", "more drops", |t| count(t) > drop_before);
    let predicate = browser.wait_text("reasons-body", "predicate drops", |t| {
        t.contains("predicate")
    });
    assert!(predicate.contains("predicate"), "{predicate}");
    // And the feed shows the drop.
    let feed = browser.wait_text("feed", "the drop in the feed", |t| {
        t.contains("hateless: predicate") && t.contains("hate ")
    });
    assert!(feed.contains(":8080"), "{feed}");

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard/dashboard.png");
    browser.screenshot(&shot);

    // Switch the diode with the picker: compiled, validated, replaced.
    browser.click("#picker option[value='printable64']");
    browser.click("#switch");
    let result = browser.wait_text("picker-result", "the replacement", |t| {
        t.contains("replaced program") || t.contains("not attached")
    });
    assert!(
        result.starts_with("printable64 (program "),
        "the picker replaced the diode: {result}"
    );
    browser.wait_text("diode-name", "the new diode", |t| t == "printable64");
    assert_eq!(
        attached_diode(),
        "printable64",
        "the kernel has the new diode"
    );
    browser.screenshot(&shot.with_file_name("dashboard-switched.png"));

    // An upload that is not a valid spec is refused and leaves the diode in place.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"version\": 1}").unwrap();
    browser.type_into("#upload", bad.to_str().unwrap());
    browser.click("#upload-switch");
    // The page names the file in its answer, so the previous answer cannot match.
    let refused = browser.wait_text("picker-result", "the refusal", |t| {
        t.starts_with("bad.json: ")
    });
    assert!(
        refused.starts_with("bad.json: not attached: lagic: error: 'uploaded bad.json'"),
        "{refused}"
    );
    assert_eq!(
        attached_diode(),
        "printable64",
        "a refused spec changes nothing"
    );

    // An uploaded spec is compiled, attached, and names its scans in drops.
    let mut upload: Value = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    upload["name"] = "hateless_up".into();
    let good = dir.path().join("hateless_up.json");
    std::fs::write(&good, upload.to_string()).unwrap();
    browser.type_into("#upload", good.to_str().unwrap());
    browser.click("#upload-switch");
    browser.wait_text("diode-name", "the uploaded diode", |t| t == "hateless_up");
    assert_eq!(attached_diode(), "hateless_up");
    browser.type_into("#prompt", "I hate bananas");
    browser.click("#send");
    let blocked = browser.wait_text("result-title", "a block by the upload", |t| {
        t.starts_with("blocked by hateless_up") || t.starts_with("no answer")
    });
    assert!(
        blocked.starts_with("blocked by hateless_up: predicate at byte "),
        "{blocked}"
    );
    let detail = browser.text("result-detail");
    assert!(detail.contains("decided by $.predicate.arg"), "{detail}");

    // The page still holds its event stream open: SIGTERM ends the dashboard all the same.
    assert_eq!(
        dashboard.terminate(),
        Some(0),
        "the dashboard ends cleanly on SIGTERM"
    );
    drop(browser);
}

/// Flags that cannot work are exit 2 with a message that says what to do,
/// before anything is served. (Reads attachments, changes nothing.)
#[test]
fn bad_flags_are_exit_2_with_a_clear_message() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = held.local_addr().unwrap().to_string();
    let missing = workspace().join("no-such-examples-dir");
    let examples = workspace().join("examples");
    let cases: [(&[&str], &str); 3] = [
        (
            &["--enclave", "ftp://172.30.0.11"],
            "--enclave `ftp://172.30.0.11`: not an http://HOST[:PORT] URL",
        ),
        (
            &[
                "--enclave",
                "http://127.0.0.1:9",
                "--iface",
                "lgh-nosuch",
                "--examples",
                missing.to_str().unwrap(),
            ],
            "--examples ",
        ),
        (
            &[
                "--enclave",
                "http://127.0.0.1:9",
                "--iface",
                "lgh-nosuch",
                "--listen",
                &busy,
                "--examples",
                examples.to_str().unwrap(),
            ],
            "Address already in use",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["dashboard"];
        all.extend_from_slice(args);
        let out = lagic(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(stderr.contains(says), "{all:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{all:?} served nothing");
    }
}

/// The dashboard's excerpt text back to bytes: `\\`, `\"` and `\xNN`
/// escapes, everything else as is.
fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'x')) if i + 3 < b.len() && text.is_char_boundary(i + 4) => {
                out.push(u8::from_str_radix(&text[i + 2..i + 4], 16).unwrap_or(b'?'));
                i += 4;
            }
            (b'\\', Some(&c)) => {
                out.push(c);
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}
