//! End to end on Docker: the compose stack of docker-compose.yml (docs/compose.md), built by
//! scripts/images and started with Debian's `docker-compose` 1.29, and with Compose V2
//! (`docker compose`) too when that is installed.
//!
//! What it checks, per Compose implementation:
//! - fail closed at start-up: the enclave started alone (no sentry) does not serve (and,
//!   as a control for the traffic checks below, bytes it sends then do arrive unjudged);
//! - `up -d`: the seed's two requests, "Once upon a time" passes and "I hate bananas" is
//!   blocked; the sentry's log shows the attach and, after the blocked request, the block
//!   decision (a `lagic watch` line: the enclave's flow, the spec path that decided), and
//!   the dashboard, running all along, shows the same decision in its feed (`/api/state`:
//!   the sentry's watch tees to the file the dashboard follows); the diode is on the
//!   enclave's veth and on the bridge;
//! - the dashboard answers `GET /` on 127.0.0.1:8501 (and not on the bridge address) and
//!   shows the diode on the enclave's veth, also after the enclave is recreated (new veth);
//! - `docker stop` of the sentry leaves the same program attached (the answer stays
//!   blocked); `docker start` does not re-attach, and its log shows the drop recorded while
//!   it was stopped and the next block decision, which the dashboard's feed shows too;
//! - switching the diode (`DIODE=printable64 ... up -d sentry`) replaces it atomically: the
//!   program id on the enclave's veth changes, a poller never sees the veth without a diode,
//!   and a sender inside the enclave that keeps sending forbidden bytes through the restart
//!   gets none of them to a listener on the host (while its clean messages keep arriving);
//!   the new sentry's log shows printable64 dropping them;
//! - with the veth's diode detached by hand, the bridge's still judges what the enclave
//!   sends;
//! - `docker kill` of the sentry leaves the diode attached: forbidden bytes still never
//!   arrive;
//! - `down` leaves no containers, network, bridge, veth, TC attachment (`lagic status`,
//!   `bpftool net`) or pin (the pin directories `lagic status --json` reported) behind;
//!   a sentry killed before `down -v` leaves interface-gone pins, which the next one removes;
//! - the enclave VM variant (docker-compose.vm.yml over docker-compose.yml): the container
//!   boots the enclave VM after the gate, the guest serves, the seed's requests pass and
//!   block, the sentry logs the block decision and the dashboard's feed shows it, a killed
//!   sentry leaves the diode on, and `down -v` leaves no container, network, volume, interface, TC program or pin.
//!
//! Needs root and a Docker engine (scripts/install-docker installs Debian's docker.io and
//! docker-compose where missing and starts dockerd). Without root, or when Docker cannot
//! run, it skips loudly; with `CI` set it fails instead. Uses fixed names and addresses
//! (lagic-enclave, lagic-sentry, lagic0, 172.30.0.0/24): run it under the kernel lock, and
//! not while a compose stack or `lagic lab up` of your own uses them.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::{find_ignoring_case, generate, run_pairs, workspace, Pair, Reply, Response};

const LAGIC: &str = env!("CARGO_BIN_EXE_lagic");
const ENCLAVE: &str = "lagic-enclave";
const SENTRY: &str = "lagic-sentry";
const DASHBOARD: &str = "lagic-dashboard";
/// Where the dashboard serves: the host's loopback only.
const DASHBOARD_ADDR: &str = "127.0.0.1:8501";
const BRIDGE: &str = "lagic0";
const PROJECT: &str = "lagictest";
const HOST_ADDR: &str = "172.30.0.1";
/// How long a client waits for a response that must arrive.
const PASS_WAIT: Duration = Duration::from_secs(30);
/// Generous deadline for containers to become healthy.
const HEALTHY_WAIT: Duration = Duration::from_secs(90);

fn enclave_addr() -> SocketAddr {
    "172.30.0.11:8080".parse().unwrap()
}

/// Skips (or, with `CI` set, fails) with a reason.
fn unavailable(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("compose test: {reason}, and CI is set, so it fails instead of skipping");
    }
    eprintln!("SKIPPED: compose test: {reason}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(program: &str, args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut command = Command::new(program);
    command.args(args).current_dir(workspace());
    for (key, value) in env {
        match value {
            Some(v) => command.env(key, v),
            None => command.env_remove(key),
        };
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn run_ok(program: &str, args: &[&str], env: &[(&str, Option<&str>)]) -> String {
    let out = run(program, args, env);
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// One Compose implementation (`docker-compose` or `docker compose`) with its compose files.
struct Compose {
    argv: Vec<&'static str>,
    /// Compose files in the workspace, in order (later ones override).
    files: Vec<&'static str>,
}

impl Compose {
    fn new(argv: Vec<&'static str>) -> Compose {
        Compose {
            argv,
            files: vec!["docker-compose.yml"],
        }
    }

    fn name(&self) -> String {
        format!("{} ({})", self.argv.join(" "), self.files.join(" + "))
    }

    fn args<'a>(&'a self, rest: &[&'a str]) -> (String, Vec<&'a str>) {
        let mut args: Vec<&str> = self.argv[1..].to_vec();
        for file in &self.files {
            let path = workspace().join(file);
            args.extend(["-f", Box::leak(path.display().to_string().into_boxed_str())]);
        }
        args.extend(["-p", PROJECT]);
        args.extend_from_slice(rest);
        (self.argv[0].to_owned(), args)
    }

    /// Runs a compose command with `DIODE` set to `diode` (None: unset, the default diode).
    fn ok(&self, rest: &[&str], diode: Option<&str>) -> String {
        let (program, args) = self.args(rest);
        run_ok(&program, &args, &[("DIODE", diode)])
    }

    fn quiet(&self, rest: &[&str]) -> Output {
        let (program, args) = self.args(rest);
        run(&program, &args, &[("DIODE", None)])
    }
}

/// Runs `down -v` when dropped, so a failing test leaves no stack behind.
struct DownGuard<'a>(&'a Compose);

impl Drop for DownGuard<'_> {
    fn drop(&mut self) {
        let out = self.0.quiet(&["down", "-v", "--timeout", "5"]);
        if !out.status.success() {
            eprintln!("compose test cleanup: down failed: {}", text(&out.stderr));
        }
    }
}

fn docker(args: &[&str]) -> String {
    run_ok("docker", args, &[])
}

fn container_exists(name: &str) -> bool {
    run("docker", &["container", "inspect", name], &[])
        .status
        .success()
}

fn health(container: &str) -> String {
    let out = run(
        "docker",
        &["inspect", "-f", "{{.State.Health.Status}}", container],
        &[],
    );
    text(&out.stdout).trim().to_owned()
}

fn wait_healthy(container: &str) {
    let deadline = Instant::now() + HEALTHY_WAIT;
    loop {
        let status = health(container);
        if status == "healthy" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{container} is not healthy after {HEALTHY_WAIT:?} (health: {status:?}); logs:\n{}",
            logs(container)
        );
        thread::sleep(Duration::from_millis(250));
    }
}

fn logs(container: &str) -> String {
    let out = run("docker", &["logs", container], &[]);
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// The host-side veth of the enclave container: (name, ifindex).
fn enclave_veth() -> (String, u32) {
    let index: u32 = docker(&["exec", ENCLAVE, "cat", "/sys/class/net/eth0/iflink"])
        .trim()
        .parse()
        .expect("eth0's iflink is a number");
    for entry in std::fs::read_dir("/sys/class/net").unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().join("ifindex");
        if std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == index.to_string()) {
            return (entry.file_name().to_string_lossy().into_owned(), index);
        }
    }
    panic!("no host interface has ifindex {index} (the enclave's eth0 peer)");
}

/// What `lagic status --json` says about `iface`: (diode, program id, state), if anything.
fn attachment(iface: &str) -> Option<(String, u64, String)> {
    status_of(iface).map(|a| {
        (
            a["diode"].as_str().unwrap_or_default().to_owned(),
            a["program_id"].as_u64().unwrap_or(0),
            a["state"].as_str().unwrap_or_default().to_owned(),
        )
    })
}

/// The ingress entry of `iface` in `lagic status --json`.
fn status_of(iface: &str) -> Option<serde_json::Value> {
    let out = run_ok(LAGIC, &["status", "--json"], &[]);
    let list: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    list.as_array()?
        .iter()
        .find(|a| a["interface"] == iface && a["direction"] == "ingress")
        .cloned()
}

/// Where the loader pinned the diode on `iface` (`pin_dir` of `lagic status --json`).
fn pin_dir(iface: &str) -> PathBuf {
    let entry = status_of(iface).unwrap_or_else(|| panic!("no diode on {iface}"));
    let dir = PathBuf::from(
        entry["pin_dir"]
            .as_str()
            .expect("status --json has pin_dir"),
    );
    assert!(dir.starts_with("/sys/fs/bpf/"), "{}", dir.display());
    assert!(
        dir.exists(),
        "{iface}'s pin dir {} does not exist",
        dir.display()
    );
    dir
}

/// Every pin directory in `dirs` that still exists.
fn pins_left(dirs: &[PathBuf]) -> Vec<&PathBuf> {
    dirs.iter().filter(|d| d.exists()).collect()
}

/// The sentry's log lines that report a drop on `iface` (`lagic watch`'s text format).
fn drop_lines(iface: &str) -> Vec<String> {
    let prefix = format!(" {iface} ingress DROP ");
    logs(SENTRY)
        .lines()
        .filter(|l| l.contains(&prefix))
        .map(str::to_owned)
        .collect()
}

/// Waits until the sentry's log holds more than `before` drop lines on `iface` from the
/// enclave's port 8080 that `hateless` decided on the word; returns the first new one.
fn wait_block_line(iface: &str, before: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = drop_lines(iface);
        let new: Vec<&String> = lines
            .iter()
            .skip(before)
            .filter(|l| {
                l.contains(&format!(
                    "DROP predicate {} -> {HOST_ADDR}:",
                    enclave_addr()
                )) && l.contains("by $.predicate.arg")
                    && l.contains("hate")
            })
            .collect();
        if let Some(line) = new.first() {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the sentry's log shows no block decision on {iface} within 20 s of the blocked \
             request (drop lines before it: {before}); log:\n{}",
            logs(SENTRY)
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// `GET path` on `addr` (HTTP/1.0): (status, body).
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let addr: SocketAddr = addr.parse().expect("a socket address");
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = text(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The dashboard answers `GET /` with its page, on the host's loopback only, and its
/// state names the diode on `veth` (within 30 s: it restarts when the enclave's veth
/// changes).
fn assert_dashboard(veth: &str, diode: &str) {
    wait_healthy(DASHBOARD);
    let (status, page) = http_get(DASHBOARD_ADDR, "/").expect("GET / of the dashboard");
    assert_eq!(status, 200, "GET / of the dashboard: {page}");
    assert!(page.contains("<html"), "GET / is not the page: {page}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = http_get(DASHBOARD_ADDR, "/api/state")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok());
        let shown = state
            .as_ref()
            .map(|s| (s["diode"]["iface"].clone(), s["diode"]["diode"].clone()));
        if shown == Some((veth.into(), diode.into())) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard does not show {diode} on {veth} within 30 s: {state:?}\nlog:\n{}",
            logs(DASHBOARD)
        );
        thread::sleep(Duration::from_millis(250));
    }
    let outside = format!("{HOST_ADDR}:8501");
    assert!(
        http_get(&outside, "/").is_err(),
        "the dashboard answers on {outside}: it must listen on the loopback only"
    );
}

/// Wall-clock now, Unix milliseconds.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64
}

/// Waits until the dashboard's feed (`GET /api/state`, its recent drops) holds a drop on
/// `iface` at or after `since_ms` of the enclave's port 8080 that `hateless` decided on the
/// word; returns it. The sentry's single `lagic watch` reads the ring buffer and tees each
/// decision to the file the dashboard follows, so both see every drop.
fn wait_dashboard_block(iface: &str, since_ms: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let enclave = enclave_addr();
    loop {
        let state = http_get(DASHBOARD_ADDR, "/api/state")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok());
        let found = state.as_ref().and_then(|s| {
            s["recent"].as_array()?.iter().rev().find(|d| {
                d["iface"] == iface
                    && d["reason"] == "predicate"
                    && d["diode"] == "hateless"
                    // Drop times come from the kernel's clock: a second of slack.
                    && d["time_ms"].as_u64().is_some_and(|t| t + 1000 >= since_ms)
                    && d["flow"]["src_ip"] == enclave.ip().to_string().as_str()
                    && d["flow"]["src_port"] == enclave.port()
                    && d["flow"]["dest_ip"] == HOST_ADDR
                    && d["decided_by"]
                        .as_str()
                        .is_some_and(|b| b.starts_with("$.predicate.arg"))
                    && d["excerpt"].as_str().is_some_and(|e| e.contains("hate"))
            })
        });
        if let Some(d) = found {
            return d.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard's feed shows no block decision on {iface} within 20 s of the \
             blocked request: {state:?}\ndashboard log:\n{}\nsentry log:\n{}",
            logs(DASHBOARD),
            logs(SENTRY)
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn assert_passes(prompt: &str) {
    match generate(enclave_addr(), prompt, 16, PASS_WAIT) {
        Reply::Complete(Response { status: 200, body }) => assert!(
            text(&body).contains(prompt),
            "the response to {prompt:?} lacks the prompt: {}",
            text(&body)
        ),
        other => panic!("{prompt:?} should pass the diode, got {other:?}"),
    }
}

/// `prompt` (which holds "hate") is blocked: a control of the same shape ("like" in its
/// place) completes first, then the blocked request is still incomplete after twice the
/// control's time (`common::run_pairs`), and not one byte of the word arrived.
fn assert_blocked(prompt: &str) {
    let control = prompt.replace("hate", "like");
    assert_ne!(control, prompt, "a blocked prompt holds the word");
    let pair = Pair::new("compose", &control, prompt, 16);
    let results = run_pairs(enclave_addr(), &[pair], PASS_WAIT);
    let received = &results[0].blocked_received;
    assert!(
        find_ignoring_case(received, b"hate").is_none(),
        "{prompt:?}: the word crossed the diode: {}",
        text(received)
    );
}

/// What a listener received: when each connection ended, and its bytes.
type Received = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// A TCP listener on the host end of the bridge that records what each connection sent.
/// The listener closes each connection after a short read, so a sender whose data the
/// diode drops moves on.
struct Listener {
    port: u16,
    received: Received,
    stop: Arc<AtomicBool>,
}

impl Listener {
    fn start() -> Listener {
        let socket = TcpListener::bind((HOST_ADDR, 0)).expect("binding on the bridge address");
        socket.set_nonblocking(true).unwrap();
        let port = socket.local_addr().unwrap().port();
        let received: Received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, st) = (received.clone(), stop.clone());
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match socket.accept() {
                    Ok((mut stream, _)) => {
                        let rx = rx.clone();
                        thread::spawn(move || {
                            stream.set_nonblocking(false).unwrap();
                            stream
                                .set_read_timeout(Some(Duration::from_millis(800)))
                                .unwrap();
                            let mut data = Vec::new();
                            let mut buf = [0u8; 4096];
                            while let Ok(n) = stream.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                data.extend_from_slice(&buf[..n]);
                            }
                            rx.lock().unwrap().push((Instant::now(), data));
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Listener {
            port,
            received,
            stop,
        }
    }

    /// Clean messages received since `t`.
    fn clean_since(&self, t: Instant) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, data)| *at >= t && data.starts_with(b"clean "))
            .count()
    }

    /// Every received message that holds a forbidden byte or word.
    fn forbidden(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, data)| {
                data.contains(&1u8) || data.windows(4).any(|w| w.eq_ignore_ascii_case(b"hate"))
            })
            .map(|(_, data)| format!("{:?}", text(data)))
            .collect()
    }

    /// Waits until at least `n` clean messages arrived after `t`.
    fn wait_clean(&self, t: Instant, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.clean_since(t) < n {
            assert!(
                Instant::now() < deadline,
                "{what}: fewer than {n} clean messages from the enclave's sender arrived in 30 s \
                 (got {}); the sender or the path is broken, so the forbidden-bytes check would \
                 prove nothing",
                self.clean_since(t)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts, inside the enclave container, a loop that alternately sends a clean message and a
/// forbidden one ("\x01hate N": dropped by hateless for the word, by printable64 for the
/// control byte), each on its own connection to the host listener, until [`stop_sender`].
fn start_sender(port: u16) {
    let script = format!(
        "i=0; while [ ! -e /tmp/stop-{port} ]; do i=$((i+1)); \
         printf 'clean %d\\n' $i | nc -w 2 {HOST_ADDR} {port}; \
         printf '\\001hate %d\\n' $i | nc -w 2 {HOST_ADDR} {port}; \
         done"
    );
    docker(&["exec", "-d", ENCLAVE, "sh", "-c", &script]);
}

fn stop_sender(port: u16) {
    docker(&["exec", ENCLAVE, "touch", &format!("/tmp/stop-{port}")]);
}

/// Polls `lagic status` on each of `ifaces` until `stop` is set; returns the samples
/// ("IFACE DIODE", with an empty DIODE when nothing was attached).
fn poll_attachments(ifaces: Vec<String>, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for iface in &ifaces {
                let diode = attachment(iface).map(|a| a.0).unwrap_or_default();
                samples.push(format!("{iface} {diode}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        samples
    })
}

/// Removes the leftovers of an interrupted earlier run of this test (its own project only)
/// and checks that no other stack holds the fixed names.
fn fresh_start(compose: &Compose) {
    compose.quiet(&["down", "-v", "--timeout", "5"]);
    for container in [ENCLAVE, SENTRY, DASHBOARD] {
        assert!(
            !container_exists(container),
            "a container named {container} already exists: another lagic compose stack runs \
             (docker-compose down it first); only one stack runs per host"
        );
    }
    assert!(
        !Path::new("/sys/class/net").join(BRIDGE).exists(),
        "{BRIDGE} already exists: another lagic compose stack runs (docker-compose down it first)"
    );
}

fn scenario(compose: &Compose) {
    let name = compose.name();
    eprintln!("== compose test with {name}");
    fresh_start(compose);
    let _guard = DownGuard(compose);

    // Fail closed at start-up: the enclave alone (no sentry) waits and does not serve.
    compose.ok(&["up", "-d", "--no-deps", "enclave"], None);
    thread::sleep(Duration::from_secs(3));
    let (veth, _) = enclave_veth();
    assert!(
        attachment(&veth).is_none(),
        "a diode is on {veth} though no sentry ran"
    );
    assert!(
        std::net::TcpStream::connect_timeout(&enclave_addr(), Duration::from_secs(3)).is_err(),
        "the enclave accepted a connection before any diode was attached"
    );
    assert!(
        logs(ENCLAVE).contains("waiting for the sentry"),
        "the enclave's log does not say it waits: {}",
        logs(ENCLAVE)
    );
    assert_ne!(health(ENCLAVE), "healthy");
    // Control: with no sentry, nothing judges what the enclave container sends, so the
    // listener does see forbidden bytes (the checks below would catch a crossing).
    let control = Listener::start();
    start_sender(control.port);
    let deadline = Instant::now() + Duration::from_secs(30);
    while control.forbidden().is_empty() {
        assert!(
            Instant::now() < deadline,
            "control: no forbidden message arrived from an enclave with no diode in 30 s; the \
             sender or listener is broken"
        );
        thread::sleep(Duration::from_millis(100));
    }
    stop_sender(control.port);
    drop(control);

    // The whole stack: the sentry attaches hateless, the enclave starts serving.
    let started = Instant::now();
    compose.ok(&["up", "-d"], None);
    wait_healthy(SENTRY);
    wait_healthy(ENCLAVE);
    eprintln!("{name}: up -d to healthy in {:?}", started.elapsed());
    let (veth_now, _) = enclave_veth();
    assert_eq!(veth, veth_now, "up -d recreated the enclave");
    let (diode, first_program, state) = attachment(&veth).expect("a diode on the enclave veth");
    assert_eq!(diode, "hateless");
    assert_eq!(state, "active");
    let (diode, _, state) = attachment(BRIDGE).expect("a diode on the bridge");
    assert_eq!((diode.as_str(), state.as_str()), ("hateless", "active"));
    let mut pins = vec![pin_dir(&veth), pin_dir(BRIDGE)];
    assert_dashboard(&veth, "hateless");
    assert_passes("Once upon a time");
    let before = drop_lines(&veth).len();
    let since = now_ms();
    assert_blocked("I hate bananas");
    let line = wait_block_line(&veth, before);
    eprintln!("{name}: the sentry logged: {line}");
    let shown = wait_dashboard_block(&veth, since);
    eprintln!("{name}: the dashboard showed: {shown}");
    let sentry_log = logs(SENTRY);
    assert!(
        sentry_log.contains(&format!("attached hateless on {veth}")),
        "the sentry's log does not show the attach on {veth}:\n{sentry_log}"
    );
    for iface in [veth.as_str(), BRIDGE] {
        assert!(
            sentry_log.contains(&format!("streaming hateless's decisions on {iface}")),
            "the sentry does not say it watches {iface}:\n{sentry_log}"
        );
    }

    // A stopped sentry leaves the diode on: the answer stays blocked. Started again, it
    // keeps the same program (no re-attach), and its new watch prints the drops recorded
    // while it was down (the ring buffer kept them: nobody else read it), then new ones.
    let before = drop_lines(&veth).len();
    docker(&["stop", "--time", "5", SENTRY]);
    let stopped_log = logs(SENTRY);
    assert!(
        stopped_log.contains(&format!("leaving hateless attached on {veth} (pinned)")),
        "the stopped sentry does not say it left the diode on {veth}:\n{stopped_log}"
    );
    assert_eq!(
        attachment(&veth),
        Some(("hateless".to_owned(), first_program, "active".to_owned())),
        "stopping the sentry changed the diode on {veth}"
    );
    assert_blocked("I hate bananas");
    assert_eq!(drop_lines(&veth).len(), before, "a stopped sentry logged");
    docker(&["start", SENTRY]);
    wait_healthy(SENTRY);
    assert_eq!(
        attachment(&veth).map(|a| a.1),
        Some(first_program),
        "the restart changed the diode on {veth}"
    );
    // Docker's times and the log's are RFC 3339 UTC; to the microsecond (26 characters)
    // they compare as text.
    let at = |field: &str| {
        let t = docker(&["inspect", "-f", &format!("{{{{.State.{field}}}}}"), SENTRY]);
        t.trim().get(..26).expect("an RFC 3339 time").to_owned()
    };
    let (stopped, started) = (at("FinishedAt"), at("StartedAt"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !drop_lines(&veth).iter().skip(before).any(|l| {
        l.get(..26)
            .is_some_and(|t| t > stopped.as_str() && t < started.as_str())
    }) {
        assert!(
            Instant::now() < deadline,
            "the restarted sentry's log shows no drop recorded while it was down ({stopped} \
             to {started}):\n{}",
            logs(SENTRY)
        );
        thread::sleep(Duration::from_millis(200));
    }
    let before = drop_lines(&veth).len();
    let since = now_ms();
    assert_blocked("I hate bananas");
    wait_block_line(&veth, before);
    wait_dashboard_block(&veth, since);

    // Switch the diode while the enclave keeps sending forbidden bytes.
    let listener = Listener::start();
    start_sender(listener.port);
    let t0 = Instant::now();
    listener.wait_clean(t0, 3, "before the switch");
    let stop = Arc::new(AtomicBool::new(false));
    let poller = poll_attachments(vec![veth.clone(), BRIDGE.to_owned()], stop.clone());
    compose.ok(&["up", "-d", "sentry"], Some("printable64"));
    wait_healthy(SENTRY);
    let t1 = Instant::now();
    listener.wait_clean(t1, 3, "after the switch");
    stop.store(true, Ordering::Relaxed);
    let samples = poller.join().unwrap();
    let seen: BTreeSet<&str> = samples.iter().map(String::as_str).collect();
    for iface in [veth.as_str(), BRIDGE] {
        assert!(
            !seen.contains(format!("{iface} ").as_str()),
            "{iface} was seen without a diode during the switch: {seen:?}"
        );
        assert!(
            seen.contains(format!("{iface} printable64").as_str()),
            "{iface} never showed printable64: {seen:?}"
        );
    }
    assert!(samples.len() > 20, "only {} samples", samples.len());
    let (diode, second_program, _) = attachment(&veth).expect("a diode after the switch");
    assert_eq!(diode, "printable64");
    assert_ne!(first_program, second_program, "the program did not change");
    assert_eq!(attachment(BRIDGE).expect("bridge diode").0, "printable64");
    assert!(
        logs(SENTRY).contains(&format!("attached printable64 on {veth}")),
        "{}",
        logs(SENTRY)
    );
    pins.extend([pin_dir(&veth), pin_dir(BRIDGE)]);
    // The recreated sentry's log (a new container) shows printable64 dropping the sender's
    // control byte.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !drop_lines(&veth)
        .iter()
        .any(|l| l.contains("DROP predicate") && l.contains("\\x01hate"))
    {
        assert!(
            Instant::now() < deadline,
            "no printable64 drop of the sender's \\x01 in the sentry's log:\n{}",
            logs(SENTRY)
        );
        thread::sleep(Duration::from_millis(200));
    }
    // printable64 lets the echoed word through (it judges only bytes), hateless did not.
    assert_passes("I hate bananas");
    assert_passes("Once upon a time");
    let forbidden = listener.forbidden();
    assert!(
        forbidden.is_empty(),
        "forbidden bytes crossed: {forbidden:?}"
    );

    // Kill the sentry: the pinned diode stays on, traffic stays filtered.
    docker(&["kill", SENTRY]);
    let t2 = Instant::now();
    listener.wait_clean(t2, 3, "after docker kill");
    thread::sleep(Duration::from_secs(2));
    let (diode, program, state) = attachment(&veth).expect("a diode after the kill");
    assert_eq!(
        (diode.as_str(), program, state.as_str()),
        ("printable64", second_program, "active")
    );
    let (diode, _, state) = attachment(BRIDGE).expect("a bridge diode after the kill");
    assert_eq!((diode.as_str(), state.as_str()), ("printable64", "active"));
    let forbidden = listener.forbidden();
    assert!(
        forbidden.is_empty(),
        "forbidden bytes crossed after the kill: {forbidden:?}"
    );

    // The bridge's diode alone: detach the veth's by hand (no sentry runs to mind it);
    // forbidden bytes still stay out.
    run_ok(
        LAGIC,
        &["detach", "--iface", &veth, "--direction", "ingress"],
        &[],
    );
    assert!(attachment(&veth).is_none(), "{veth} still has a diode");
    let t_bridge = Instant::now();
    listener.wait_clean(t_bridge, 3, "with only the bridge's diode");
    let forbidden = listener.forbidden();
    assert!(
        forbidden.is_empty(),
        "forbidden bytes crossed with only the bridge's diode: {forbidden:?}"
    );

    // Bring the sentry back (default diode again), then down.
    compose.ok(&["up", "-d"], None);
    wait_healthy(SENTRY);
    assert_eq!(attachment(&veth).expect("veth diode").0, "hateless");
    assert_eq!(attachment(BRIDGE).expect("bridge diode").0, "hateless");
    assert_blocked("I hate bananas");
    let forbidden = listener.forbidden();
    assert!(
        forbidden.is_empty(),
        "forbidden bytes crossed: {forbidden:?}"
    );
    drop(listener);

    // A recreated enclave has a new veth: the sentry covers it before the enclave serves,
    // and the dashboard follows it.
    compose.ok(
        &["up", "-d", "--no-deps", "--force-recreate", "enclave"],
        None,
    );
    wait_healthy(ENCLAVE);
    let old_veth = veth;
    let (veth, _) = enclave_veth();
    assert_ne!(old_veth, veth, "the recreated enclave kept its veth");
    assert_eq!(attachment(&veth).expect("new veth diode").0, "hateless");
    pins.push(pin_dir(&veth));
    assert_dashboard(&veth, "hateless");
    assert_blocked("I hate bananas");

    compose.ok(&["down"], None);
    for container in [ENCLAVE, SENTRY, DASHBOARD] {
        assert!(
            !container_exists(container),
            "{container} is left after down"
        );
    }
    let networks = docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks.lines().any(|n| n.starts_with(PROJECT)),
        "a network is left after down: {networks}"
    );
    for iface in [BRIDGE, veth.as_str(), old_veth.as_str()] {
        assert!(
            !Path::new("/sys/class/net").join(iface).exists(),
            "{iface} is left after down"
        );
    }
    for iface in [veth.as_str(), old_veth.as_str(), BRIDGE] {
        assert!(
            attachment(iface).is_none(),
            "lagic status still lists {iface}"
        );
    }
    assert!(
        pins_left(&pins).is_empty(),
        "pins left: {:?}",
        pins_left(&pins)
    );
    assert_no_tc(&[&veth, &old_veth, BRIDGE]);

    // A sentry killed before `down -v` leaves interface-gone pins; the next sentry clears them.
    compose.ok(&["up", "-d"], None);
    wait_healthy(SENTRY);
    wait_healthy(ENCLAVE);
    let (old_veth, _) = enclave_veth();
    let stale_pins = vec![pin_dir(&old_veth), pin_dir(BRIDGE)];
    docker(&["kill", SENTRY]);
    compose.ok(&["down", "-v"], None);
    for iface in [old_veth.as_str(), BRIDGE] {
        let (_, _, state) = attachment(iface).expect("a pin left by the killed sentry");
        assert_eq!(state, "interface-gone", "{iface}");
    }
    assert_eq!(pins_left(&stale_pins).len(), 2, "the killed sentry's pins");
    compose.ok(&["up", "-d"], None);
    wait_healthy(SENTRY);
    wait_healthy(ENCLAVE);
    assert!(
        attachment(&old_veth).is_none(),
        "{old_veth}'s stale pin stayed"
    );
    assert!(
        pins_left(&stale_pins).is_empty(),
        "stale pins stayed: {:?}",
        pins_left(&stale_pins)
    );
    let (diode, _, state) = attachment(BRIDGE).expect("a diode on the new bridge");
    assert_eq!((diode.as_str(), state.as_str()), ("hateless", "active"));
    assert_blocked("I hate bananas");
    let (new_veth, _) = enclave_veth();
    let pins = vec![pin_dir(&new_veth), pin_dir(BRIDGE)];
    compose.ok(&["down", "-v"], None);
    assert_nothing_left(&[&old_veth, &new_veth, BRIDGE], &pins);
}

/// `lagic status`, bpftool and tc show nothing of the stack on `ifaces` (gone by now).
fn assert_no_tc(ifaces: &[&str]) {
    let net = run_ok("bpftool", &["net"], &[]);
    for iface in ifaces {
        assert!(
            !net.contains(iface),
            "bpftool net still shows {iface}:\n{net}"
        );
    }
}

/// After `down -v`: no container, network, volume, interface, attachment, TC program or
/// pin of the stack is left.
fn assert_nothing_left(ifaces: &[&str], pins: &[PathBuf]) {
    for container in [ENCLAVE, SENTRY, DASHBOARD] {
        assert!(
            !container_exists(container),
            "{container} is left after down"
        );
    }
    let networks = docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks.lines().any(|n| n.starts_with(PROJECT)),
        "a network is left after down: {networks}"
    );
    let volumes = docker(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(
        !volumes.lines().any(|n| n.starts_with(PROJECT)),
        "a volume is left after down -v: {volumes}"
    );
    for iface in ifaces {
        assert!(
            !Path::new("/sys/class/net").join(iface).exists(),
            "{iface} is left after down"
        );
        assert!(
            attachment(iface).is_none(),
            "lagic status lists {iface} after down"
        );
    }
    assert!(
        pins_left(pins).is_empty(),
        "pins left: {:?}",
        pins_left(pins)
    );
    assert_no_tc(ifaces);
}

/// The enclave VM variant (docker-compose.vm.yml): the guest serves behind the same gate and
/// diode, the sentry logs its block decision, a killed sentry leaves the diode on, `down -v`
/// leaves nothing.
fn vm_scenario(compose: &Compose) {
    let name = compose.name();
    eprintln!("== compose test with {name}");
    fresh_start(compose);
    let _guard = DownGuard(compose);

    let started = Instant::now();
    compose.ok(&["up", "-d"], None);
    wait_healthy(SENTRY);
    wait_healthy(ENCLAVE);
    eprintln!(
        "{name}: up -d to healthy (enclave VM booted) in {:?}",
        started.elapsed()
    );
    let enclave_log = logs(ENCLAVE);
    assert!(
        enclave_log.contains("booting the enclave VM (tcg,")
            || enclave_log.contains("booting the enclave VM (kvm,"),
        "the enclave container did not boot the VM after the gate:\n{enclave_log}"
    );
    // The guest's console: lagic-enclave is the VM's /init and serves inside it.
    assert!(
        enclave_log.contains("lagic-enclave init: serving: lagic-enclave --listen 10.0.2.15:8080"),
        "the guest's console does not show lagic-enclave serving:\n{enclave_log}"
    );
    let (veth, _) = enclave_veth();
    let (diode, program, state) = attachment(&veth).expect("a diode on the enclave veth");
    assert_eq!((diode.as_str(), state.as_str()), ("hateless", "active"));
    let pins = vec![pin_dir(&veth), pin_dir(BRIDGE)];
    assert_dashboard(&veth, "hateless");

    assert_passes("Once upon a time");
    let before = drop_lines(&veth).len();
    let since = now_ms();
    assert_blocked("I hate bananas");
    let line = wait_block_line(&veth, before);
    eprintln!("{name}: the sentry logged: {line}");
    let shown = wait_dashboard_block(&veth, since);
    eprintln!("{name}: the dashboard showed: {shown}");
    assert!(
        logs(ENCLAVE).contains("POST /api/generate -> 200"),
        "the guest did not log the requests it answered:\n{}",
        logs(ENCLAVE)
    );

    // A killed sentry leaves the diode on: the guest's answer stays blocked.
    docker(&["kill", SENTRY]);
    assert_eq!(
        attachment(&veth),
        Some(("hateless".to_owned(), program, "active".to_owned()))
    );
    assert_blocked("I hate bananas");
    assert_passes("Once upon a time");

    // Back up (the sentry minds the diode again, the same program), then down.
    compose.ok(&["up", "-d"], None);
    wait_healthy(SENTRY);
    assert_eq!(attachment(&veth).map(|a| a.1), Some(program));
    compose.ok(&["down", "-v"], None);
    assert_nothing_left(&[&veth, BRIDGE], &pins);
}

#[test]
fn compose_stack_up_switch_kill_down() {
    if !common::require_root("a Docker engine, veth, TC and bpffs") {
        return;
    }
    let ws = workspace();
    let install = run(
        &ws.join("scripts/install-docker").display().to_string(),
        &[],
        &[],
    );
    if !install.status.success() {
        unavailable(&format!(
            "scripts/install-docker failed (Docker cannot run here): {}",
            text(&install.stderr)
        ));
        return;
    }
    let images = Instant::now();
    run_ok(
        &ws.join("scripts/images").display().to_string(),
        &["--vm"],
        &[],
    );
    eprintln!(
        "compose test: scripts/images --vm took {:?}",
        images.elapsed()
    );

    let mut implementations = vec![vec!["docker-compose"]];
    if run("docker", &["compose", "version"], &[]).status.success() {
        implementations.push(vec!["docker", "compose"]);
    } else {
        eprintln!("compose test: Compose V2 (`docker compose`) is not installed; testing docker-compose only");
    }
    for argv in &implementations {
        scenario(&Compose::new(argv.clone()));
        let mut vm = Compose::new(argv.clone());
        vm.files.push("docker-compose.vm.yml");
        vm_scenario(&vm);
    }
}
