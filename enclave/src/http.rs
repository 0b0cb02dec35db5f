//! A small HTTP/1.1 server for the hackathon's API, on std::net and threads.
//!
//! Routes: `POST /api/generate` (JSON `{"prompt", "max_tokens"?, "wait_time"?,
//! "seed"?}` -> `{"response"}`) and `GET /health`. Every response carries
//! `Content-Type: application/json`, `Content-Length` and `Connection:
//! close`, and the connection is closed after it: one request per
//! connection, which keeps each TCP stream the diode sees to one response.
//!
//! Robustness invariants:
//! - every failure is answered with a 4xx/5xx JSON `{"error": ...}` body when
//!   the socket still allows it, and never takes the server down (a panic in
//!   a generator is caught and answered 500);
//! - a request head is at most [`MAX_HEAD`] bytes, a body at most
//!   `max_body`; both are checked before anything is allocated for them;
//! - every read and write has a timeout, and the whole request must arrive
//!   within `request_timeout`, so slow or vanished clients free their thread;
//! - at most `max_connections` connections are served at once; the next one
//!   is answered 503 right away.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::generator::{GenerateError, GenerationRequest, Generator};

/// Largest accepted request line plus headers.
pub const MAX_HEAD: usize = 16 * 1024;

/// Tunables of the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body in bytes.
    pub max_body: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Timeout of each socket read or write.
    pub io_timeout: Duration,
    /// Time allowed to receive a whole request (head and body).
    pub request_timeout: Duration,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_cap: usize,
    /// Generation time limit when a request gives no `wait_time`, and the
    /// ceiling of any `wait_time`.
    pub max_wait: Duration,
    /// Log one line per request to stderr.
    pub log_requests: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body: 8 * 1024 * 1024,
            max_connections: 64,
            io_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            default_max_tokens: 64,
            max_tokens_cap: 1_000_000,
            max_wait: Duration::from_secs(300),
            log_requests: true,
        }
    }
}

/// A bound listening socket with the generator it serves.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

struct Shared {
    generator: Arc<dyn Generator>,
    config: ServerConfig,
    active: AtomicUsize,
    stop: AtomicBool,
}

/// Stops a running [`Server`] from another thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl ShutdownHandle {
    /// Ask the accept loop to return; connections in flight finish on their own.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

impl Server {
    /// Bind `addr` (port 0 picks a free port).
    pub fn bind<A: ToSocketAddrs>(
        addr: A,
        generator: Arc<dyn Generator>,
        config: ServerConfig,
    ) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr)?,
            shared: Arc::new(Shared {
                generator,
                config,
                active: AtomicUsize::new(0),
                stop: AtomicBool::new(false),
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that stops [`Server::run`].
    pub fn shutdown_handle(&self) -> io::Result<ShutdownHandle> {
        let mut addr = self.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        Ok(ShutdownHandle {
            shared: self.shared.clone(),
            addr,
        })
    }

    /// Accept and serve connections until shut down.
    pub fn run(self) -> io::Result<()> {
        for conn in self.listener.incoming() {
            if self.shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let stream = match conn {
                Ok(s) => s,
                // Transient (EMFILE, ECONNABORTED, ...): back off, keep serving.
                Err(e) => {
                    eprintln!("lagi-enclave: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let shared = self.shared.clone();
            if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.config.max_connections {
                shared.active.fetch_sub(1, Ordering::SeqCst);
                reject_busy(stream);
                continue;
            }
            let spawned = std::thread::Builder::new()
                .name("lagi-conn".into())
                .spawn(move || {
                    let _slot = Slot(&shared.active);
                    handle_connection(stream, &shared);
                });
            if spawned.is_err() {
                self.shared.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

/// Releases a connection slot when the connection thread ends, even by panic.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn reject_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = write_response(
        &mut stream,
        &Response::error(503, "too many connections; retry later"),
    );
    let _ = stream.shutdown(Shutdown::Both);
}

/// A response about to be written.
#[derive(Debug)]
struct Response {
    status: u16,
    body: String,
    allow: Option<&'static str>,
}

impl Response {
    fn json(status: u16, value: &Value) -> Response {
        Response {
            status,
            body: value.to_string(),
            allow: None,
        }
    }

    fn error(status: u16, message: &str) -> Response {
        Response::json(status, &json!({ "error": message, "status": status }))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

fn write_response(stream: &mut TcpStream, r: &Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.body.len()
    );
    if let Some(allow) = r.allow {
        head.push_str("Allow: ");
        head.push_str(allow);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    // One buffer, so small responses leave in one segment.
    let mut out = Vec::with_capacity(head.len() + r.body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(r.body.as_bytes());
    stream.write_all(&out)?;
    stream.flush()
}

/// What went wrong while reading a request, and how to answer it.
#[derive(Debug)]
struct Reject {
    status: u16,
    message: String,
    /// Methods for the `Allow` header of a 405.
    allow: Option<&'static str>,
}

fn reject(status: u16, message: impl Into<String>) -> Reject {
    Reject {
        status,
        message: message.into(),
        allow: None,
    }
}

fn wrong_method(allow: &'static str, message: &str) -> Reject {
    Reject {
        allow: Some(allow),
        ..reject(405, message)
    }
}

/// The parts of a request head the server uses.
#[derive(Debug)]
struct Head {
    method: String,
    path: String,
    content_length: Option<usize>,
    expect_continue: bool,
}

fn handle_connection(mut stream: TcpStream, shared: &Shared) {
    let config = &shared.config;
    let _ = stream.set_read_timeout(Some(config.io_timeout));
    let _ = stream.set_write_timeout(Some(config.io_timeout));
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let peer = stream.peer_addr().ok();

    let (response, body_unread, label) = match serve(&mut stream, shared, started) {
        Ok((resp, label)) => (resp, false, label),
        Err(Served::Reject(r, label)) => {
            let mut resp = Response::error(r.status, &r.message);
            resp.allow = r.allow;
            (resp, true, label)
        }
        // The client is gone or silent: nothing useful can be written.
        Err(Served::Dead(label)) => {
            if config.log_requests {
                eprintln!("lagi-enclave: {label} from {peer:?}: connection lost");
            }
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    };
    let written = write_response(&mut stream, &response);
    if config.log_requests {
        eprintln!(
            "lagi-enclave: {label} -> {} ({} bytes, {} ms){}",
            response.status,
            response.body.len(),
            started.elapsed().as_millis(),
            if written.is_err() {
                " write failed"
            } else {
                ""
            }
        );
    }
    let _ = stream.shutdown(Shutdown::Write);
    if body_unread {
        // Closing with unread input makes the kernel send RST, which can
        // destroy the response before the client reads it: drain a while.
        drain(
            &mut stream,
            config.max_body.saturating_mul(2),
            Duration::from_secs(2),
        );
    }
}

enum Served {
    Reject(Reject, String),
    Dead(String),
}

fn serve(
    stream: &mut TcpStream,
    shared: &Shared,
    started: Instant,
) -> Result<(Response, String), Served> {
    let config = &shared.config;
    let deadline = started
        .checked_add(config.request_timeout)
        .unwrap_or(started + Duration::from_secs(3600));
    let mut buf = Vec::with_capacity(4096);
    let head_end = match read_head(stream, &mut buf, deadline) {
        Ok(end) => end,
        Err(ReadFail::Io) => return Err(Served::Dead("request".into())),
        Err(ReadFail::Reject(r)) => return Err(Served::Reject(r, "request".into())),
    };
    let head = parse_head(&buf[..head_end]).map_err(|r| Served::Reject(r, "request".into()))?;
    let label = format!("{} {}", head.method, head.path);
    let fail = |r: Reject| Served::Reject(r, label.clone());

    let route = head.path.split('?').next().unwrap_or("");
    match (route, head.method.as_str()) {
        ("/health", "GET") => {
            let body = json!({ "status": "ok", "generator": shared.generator.describe() });
            Ok((Response::json(200, &body), label))
        }
        ("/health", _) => Err(fail(wrong_method("GET", "use GET /health"))),
        ("/api/generate", "POST") => {
            let len = head
                .content_length
                .ok_or_else(|| fail(reject(411, "POST /api/generate needs a Content-Length")))?;
            if len > config.max_body {
                return Err(fail(reject(
                    413,
                    format!("body is {len} bytes, the limit is {}", config.max_body),
                )));
            }
            if head.expect_continue && buf.len() == head_end {
                let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            let body = match read_body(stream, &buf, head_end, len, deadline) {
                Ok(b) => b,
                Err(ReadFail::Io) => return Err(Served::Dead(label)),
                Err(ReadFail::Reject(r)) => return Err(fail(r)),
            };
            let response = generate(shared, body).map_err(&fail)?;
            Ok((response, label))
        }
        ("/api/generate", _) => Err(fail(wrong_method("POST", "use POST /api/generate"))),
        _ => Err(fail(reject(404, format!("no route for {route}")))),
    }
}

enum ReadFail {
    Io,
    Reject(Reject),
}

/// Read until the blank line ending the head; returns the index just past it.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, ReadFail> {
    let mut chunk = [0u8; 4096];
    let mut scanned = 0;
    loop {
        if let Some(end) = find_head_end(buf, scanned) {
            return Ok(end);
        }
        scanned = buf.len().saturating_sub(3);
        if buf.len() > MAX_HEAD {
            return Err(ReadFail::Reject(reject(
                431,
                format!("request head exceeds {MAX_HEAD} bytes"),
            )));
        }
        if Instant::now() > deadline {
            return Err(ReadFail::Reject(reject(408, "request head took too long")));
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return if buf.is_empty() {
                    Err(ReadFail::Io)
                } else {
                    Err(ReadFail::Reject(reject(
                        400,
                        "connection closed inside the request head",
                    )))
                }
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                return Err(ReadFail::Reject(reject(
                    408,
                    "timed out waiting for the request head",
                )))
            }
            Err(_) => return Err(ReadFail::Io),
        }
    }
}

fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let hay = &buf[from.min(buf.len())..];
    hay.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
        .or_else(|| {
            hay.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| from + i + 2)
        })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn parse_head(raw: &[u8]) -> Result<Head, Reject> {
    let text = std::str::from_utf8(raw).map_err(|_| reject(400, "request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(
            400,
            format!("malformed request line {request_line:?}"),
        ));
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !path.starts_with('/')
    {
        return Err(reject(
            400,
            format!("malformed request line {request_line:?}"),
        ));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(reject(
            505,
            format!("unsupported protocol {version:?}; speak HTTP/1.1"),
        ));
    }
    let mut head = Head {
        method: method.to_string(),
        path: path.to_string(),
        content_length: None,
        expect_continue: false,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| reject(400, format!("malformed header line {line:?}")))?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| reject(400, format!("bad Content-Length {value:?}")))?;
                if head.content_length.is_some_and(|old| old != n) {
                    return Err(reject(400, "conflicting Content-Length headers"));
                }
                head.content_length = Some(n);
            }
            "transfer-encoding" => {
                return Err(reject(
                    501,
                    "Transfer-Encoding is not supported; send a Content-Length",
                ))
            }
            "expect" if value.eq_ignore_ascii_case("100-continue") => head.expect_continue = true,
            _ => {}
        }
    }
    Ok(head)
}

/// The `len`-byte body: what followed the head in `buf`, then the rest from the socket.
fn read_body(
    stream: &mut TcpStream,
    buf: &[u8],
    head_end: usize,
    len: usize,
    deadline: Instant,
) -> Result<Vec<u8>, ReadFail> {
    let mut body = Vec::with_capacity(len);
    let already = &buf[head_end..];
    body.extend_from_slice(&already[..already.len().min(len)]);
    let mut chunk = vec![0u8; 64 * 1024];
    while body.len() < len {
        if Instant::now() > deadline {
            return Err(ReadFail::Reject(reject(408, "request body took too long")));
        }
        let want = (len - body.len()).min(chunk.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) => {
                return Err(ReadFail::Reject(reject(
                    400,
                    format!("body ended after {} of {len} bytes", body.len()),
                )))
            }
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                return Err(ReadFail::Reject(reject(
                    408,
                    "timed out waiting for the request body",
                )))
            }
            Err(_) => return Err(ReadFail::Io),
        }
    }
    Ok(body)
}

fn drain(stream: &mut TcpStream, limit: usize, time: Duration) {
    let until = Instant::now() + time;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut chunk = [0u8; 16 * 1024];
    let mut total = 0;
    while total < limit && Instant::now() < until {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Validated fields of a generate request.
#[derive(Debug, PartialEq)]
pub struct GenerateParams {
    /// Text to continue.
    pub prompt: String,
    /// Tokens to add.
    pub max_tokens: usize,
    /// Time limit.
    pub wait: Duration,
    /// Per-request seed.
    pub seed: Option<u64>,
}

/// Parse and validate a `POST /api/generate` body. Unknown fields are
/// ignored (older clients send extra ones); `null` means absent.
pub fn parse_generate_body(body: &[u8], config: &ServerConfig) -> Result<GenerateParams, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("the body must be a JSON object".into());
    };
    let field = |name: &str| map.get(name).filter(|v| !v.is_null());
    let prompt = match field("prompt") {
        None => return Err("missing field \"prompt\"".into()),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("\"prompt\" must be a string".into()),
    };
    let max_tokens = match field("max_tokens") {
        None => config.default_max_tokens,
        Some(v) => {
            let n = v
                .as_u64()
                .ok_or("\"max_tokens\" must be a non-negative integer")?;
            if n > config.max_tokens_cap as u64 {
                return Err(format!(
                    "\"max_tokens\" is {n}, the limit is {}",
                    config.max_tokens_cap
                ));
            }
            n as usize
        }
    };
    let wait = match field("wait_time") {
        None => config.max_wait,
        Some(v) => {
            let secs = v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or("\"wait_time\" must be a non-negative number of seconds")?;
            Duration::try_from_secs_f64(secs).map_or(config.max_wait, |d| d.min(config.max_wait))
        }
    };
    let seed = match field("seed") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or("\"seed\" must be a non-negative integer")?,
        ),
    };
    Ok(GenerateParams {
        prompt,
        max_tokens,
        wait,
        seed,
    })
}

fn generate(shared: &Shared, body: Vec<u8>) -> Result<Response, Reject> {
    let params = parse_generate_body(&body, &shared.config).map_err(|m| reject(400, m))?;
    drop(body);
    let request = GenerationRequest {
        prompt: &params.prompt,
        max_tokens: params.max_tokens,
        // An unrepresentable instant (absurd --max-wait) means no deadline.
        deadline: Instant::now().checked_add(params.wait),
        seed: params.seed,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        shared.generator.generate_request(&request)
    }));
    match outcome {
        Ok(Ok(text)) => Ok(Response::json(200, &json!({ "response": text }))),
        Ok(Err(e)) => {
            let status = match &e {
                GenerateError::PromptTooLong { .. } | GenerateError::InvalidRequest(_) => 400,
                GenerateError::Internal(_) => 500,
            };
            Err(reject(status, e.to_string()))
        }
        Err(_) => Err(reject(500, "the generator panicked; see the server log")),
    }
}
