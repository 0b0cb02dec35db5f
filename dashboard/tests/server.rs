//! The dashboard's server without a kernel: an interface with no diode, an
//! enclave nobody serves, and a compiler that refuses everything. Checks
//! what holds before any diode is involved: the page is self-contained,
//! prompts are not sent without an active diode (fail closed), requests from
//! another origin or under another host name are refused, an upload as
//! large as a spec may be reaches the compiler whole, and the picker takes
//! only names it lists.

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
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            lab: None,
            // Port 9 (discard): nobody answers there.
            enclave: EnclaveAddr::parse("http://127.0.0.1:9").unwrap(),
            iface: "lgh-nodiode".into(),
            direction: Direction::Ingress,
            examples: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")),
            decisions: None,
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
