//! The dashboard's server without a kernel: an interface with no diode, an
//! enclave nobody serves, and a compiler that refuses everything. Checks
//! what holds before any diode is involved: the page is self-contained,
//! prompts are not sent without an active diode (fail closed), requests from
//! another origin or under another host name are refused, an upload as
//! large as a spec may be reaches the compiler whole, and the picker takes
//! only names it lists; and with `--decisions FILE`, the feed follows the
//! lines a `lagic watch --tee` appends (new lines only, a partial line
//! once complete, from the start again after the file is emptied).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lagic_dashboard::{CompileRefused, Config, EnclaveAddr, SpecCompiler};
use lagic_loader::attach::Direction;

/// Refuses every spec, and remembers how many bytes each one had.
#[derive(Default)]
struct Refuses(Mutex<Vec<usize>>);

impl SpecCompiler for Refuses {
    fn compile(&self, origin: &str, bytes: &[u8]) -> Result<Vec<u8>, CompileRefused> {
        self.0.lock().unwrap().push(bytes.len());
        Err(CompileRefused(format!("{origin}: refused by the test")))
    }
}

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), lagic_dashboard::DashboardError>>>,
    compiler: Arc<Refuses>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(None)
    }

    fn start_with(decisions: Option<std::path::PathBuf>) -> Server {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            lab: None,
            // Port 9 (discard): nobody answers there.
            enclave: EnclaveAddr::parse("http://127.0.0.1:9").unwrap(),
            iface: "lgh-nodiode".into(),
            direction: Direction::Ingress,
            examples: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")),
            decisions,
        };
        let compiler = Arc::new(Refuses::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let for_server: Arc<dyn SpecCompiler> = compiler.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(lagic_dashboard::serve(
                config,
                for_server,
                move |addr| addr_tx.send(addr).unwrap(),
                async move {
                    let _ = stop_rx.await;
                },
            ))
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server listens");
        Server {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            compiler,
        }
    }

    /// Sends `head` (request line and headers, without the blank line) and
    /// `body`; returns the status and the body.
    fn request(&self, head: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut out = format!(
            "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        stream.write_all(&out).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn post(&self, path: &str, extra: &str, json: &str) -> (u16, String) {
        self.request(
            &format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json{extra}",
                self.addr
            ),
            json.as_bytes(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn the_page_is_self_contained() {
    let s = Server::start();
    let (status, page) = s.request(&format!("GET / HTTP/1.1\r\nHost: {}", s.addr), b"");
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"/app.js\">"), "{page}");
    for asset in ["/", "/app.js", "/style.css"] {
        let (status, text) = s.request(&format!("GET {asset} HTTP/1.1\r\nHost: {}", s.addr), b"");
        assert_eq!(status, 200, "{asset}");
        // Nothing is loaded from another server.
        assert!(!text.contains("://"), "{asset} names another server");
    }
}

#[test]
fn no_prompt_is_sent_without_an_active_diode() {
    let s = Server::start();
    let (status, body) = s.post(
        "/api/generate",
        "",
        r#"{"prompt": "Once upon a time", "wait_time": 1}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("no lagic diode is active on lgh-nodiode ingress"),
        "{body}"
    );
}

#[test]
fn other_origins_and_host_names_are_refused() {
    let s = Server::start();
    let (status, body) = s.post(
        "/api/diode",
        "\r\nOrigin: http://evil.example",
        r#"{"example": "hateless"}"#,
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = s.request("GET /api/state HTTP/1.1\r\nHost: evil.example:8501", b"");
    assert_eq!(status, 421, "{body}");
    assert!(s.compiler.0.lock().unwrap().is_empty(), "nothing compiled");
    // The page's own origin is accepted (and the refusing compiler answers).
    let (status, body) = s.post(
        "/api/diode",
        &format!("\r\nOrigin: http://{}", s.addr),
        r#"{"example": "hateless"}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("refused by the test"), "{body}");
}

#[test]
fn the_picker_takes_only_listed_names() {
    let s = Server::start();
    for name in ["../examples/hateless", "/etc/passwd", "cases", "nosuch"] {
        let (status, body) = s.post("/api/diode", "", &format!(r#"{{"example": "{name}"}}"#));
        assert_eq!(status, 404, "{name}: {body}");
    }
    assert!(s.compiler.0.lock().unwrap().is_empty(), "nothing compiled");
    let (status, body) = s.post("/api/diode", "", r#"{"example": "hateless", "spec": "{}"}"#);
    assert_eq!(status, 400, "{body}");
}

#[test]
fn an_upload_as_large_as_a_spec_reaches_the_compiler_whole() {
    let s = Server::start();
    let max = predicate_ir::spec::MAX_SPEC_BYTES;
    // Quotes are escaped in JSON: the request is larger than the spec.
    let spec = "\"".repeat(max);
    let json = serde_json::json!({"upload": "big.json", "spec": spec}).to_string();
    let (status, body) = s.post("/api/diode", "", &json);
    assert_eq!(status, 422, "{body}");
    assert_eq!(*s.compiler.0.lock().unwrap(), vec![max]);
    // One byte more is refused before compiling.
    let json = serde_json::json!({"upload": "big.json", "spec": "a".repeat(max + 1)}).to_string();
    let (status, body) = s.post("/api/diode", "", &json);
    assert_eq!(status, 413, "{body}");
    assert_eq!(s.compiler.0.lock().unwrap().len(), 1);
}

/// A `lagic watch --tee` line: `hateless` dropped the enclave's answer on
/// `iface`, at second `second` of the test's fixed minute.
fn tee_line(iface: &str, second: u32) -> String {
    format!(
        r#"{{"decided_by":{{"atom":0,"construct":"scan 0 (dfa over payload[0..n])","path":"$.predicate.arg","scan":0}},"diode":"hateless","direction":"ingress","excerpt":"I hate","excerpt_start":64,"flow":{{"dest_ip":"10.77.0.1","dest_port":41000,"proto":6,"src_ip":"10.77.0.2","src_port":8080}},"frame_len":241,"iface":"{iface}","offset":66,"offset_span":4,"payload_len":175,"reason":"predicate","timestamp":"2026-12-04T20:00:{second:02}.000000Z","verdict":"drop"}}"#
    )
}

/// The `time_ms` of the recent drops in `/api/state`, once `want` of them are
/// there (within 10 s), else whatever is there then.
fn recent_times(s: &Server, want: usize) -> Vec<u64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) =
            s.request(&format!("GET /api/state HTTP/1.1\r\nHost: {}", s.addr), b"");
        assert_eq!(status, 200, "{body}");
        let state: serde_json::Value = serde_json::from_str(&body).unwrap();
        let recent = state["recent"].as_array().unwrap();
        for d in recent {
            assert_eq!(
                d["iface"], "lgh-nodiode",
                "a drop of another interface: {d}"
            );
            assert_eq!(
                d["decided_by"],
                "$.predicate.arg (scan 0 (dfa over payload[0..n]))"
            );
            assert_eq!(d["flow"]["src_port"], 8080);
            assert_eq!(d["excerpt"], "I hate");
        }
        let times: Vec<u64> = recent
            .iter()
            .map(|d| d["time_ms"].as_u64().unwrap())
            .collect();
        if times.len() >= want || std::time::Instant::now() > deadline {
            return times;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_feed_follows_a_tee_file() {
    let path = std::env::temp_dir().join(format!("lagic-dashboard-tee-{}", std::process::id()));
    let append = |text: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap()
    };
    let _ = std::fs::remove_file(&path);
    // Before the dashboard starts: not replayed.
    append(&format!("{}\n", tee_line("lgh-nodiode", 1)));
    let s = Server::start_with(Some(path.clone()));
    let at = |second: u64| 1_796_414_400_000 + second * 1000; // 2026-12-04T20:00:SSZ
                                                              // Another interface's line, and half a line: nothing yet.
    let line = tee_line("lgh-nodiode", 2);
    let (head, tail) = line.split_at(line.len() / 2);
    append(&format!("{}\n{head}", tee_line("lgh-other", 3)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(recent_times(&s, 0), Vec::<u64>::new());
    append(&format!("{tail}\n"));
    assert_eq!(recent_times(&s, 1), [at(2)]);
    // Emptied (the tee's bound) and started again: read from byte 0.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&format!("{}\n", tee_line("lgh-nodiode", 4)));
    assert_eq!(recent_times(&s, 2), [at(2), at(4)]);
    drop(s);
    std::fs::remove_file(&path).unwrap();
}
