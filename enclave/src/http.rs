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
//!   `max_body`; both are checked before anything is allocated for them, and
//!   the body buffer grows with the bytes that actually arrive;
//! - the body's JSON is parsed without building a tree: only the four API
//!   fields are kept, everything else is skipped as it is read, so a request
//!   costs at most about 3x its body in memory (body buffer, prompt, response
//!   of the prompt), whatever the ignored fields hold;
//! - every read and write has a timeout; the head must arrive within
//!   `head_timeout` of the connection, the body within `body_timeout` plus
//!   one second per `body_min_rate` bytes of its length after the head;
//! - at most `max_connections` connections are served at once. When all are
//!   taken, a new connection evicts the one that has been receiving its
//!   request longest (a slow client cannot hold a slot against newcomers);
//!   when none is receiving (all are generating), up to `health_reserve`
//!   more connections are read, and answered only for `GET /health` (503
//!   otherwise), so `/health` is always answered;
//! - client-supplied text reaches the log only through [`log_safe`], which
//!   escapes control and non-ASCII characters (no raw ESC or CR on a terminal).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Connections served beyond `max_connections` when every served one is
    /// busy generating; they answer `GET /health` only (503 otherwise).
    pub health_reserve: usize,
    /// Timeout of each socket read or write.
    pub io_timeout: Duration,
    /// Time allowed to receive the request head, from the connection's start.
    pub head_timeout: Duration,
    /// Time allowed to receive a body, after the head, on top of its
    /// length divided by `body_min_rate`.
    pub body_timeout: Duration,
    /// Slowest accepted body upload in bytes per second (for the body deadline).
    pub body_min_rate: usize,
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
            health_reserve: 8,
            io_timeout: Duration::from_secs(30),
            head_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            body_min_rate: 1024 * 1024,
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
    slots: Mutex<Slots>,
    stop: AtomicBool,
}

/// What a connection is doing, for choosing whom to evict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the head or the body: evictable, oldest first.
    Receiving,
    /// Generating or writing the response: never evicted.
    Working,
    /// Answered; reading leftover input so that the close does not reset
    /// the response: evicted first.
    Draining,
}

/// Which allowance a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    /// The `max_connections` fully served connections.
    Main,
    /// The `health_reserve`: `GET /health` only.
    Reserve,
}

struct Entry {
    /// A handle on the socket, to shut it down on eviction.
    stream: TcpStream,
    peer: Option<SocketAddr>,
    phase: Phase,
    since: Instant,
    pool: Pool,
    evicted: bool,
}

/// Connections being served. Counts are of non-evicted connections per
/// pool; evicted ones stay listed until their thread ends (promptly: their
/// socket is shut down), and the list is capped so that threads stay bounded.
#[derive(Default)]
struct Slots {
    next_id: u64,
    main: usize,
    reserve: usize,
    conns: HashMap<u64, Entry>,
}

impl Slots {
    fn count(&mut self, pool: Pool) -> &mut usize {
        match pool {
            Pool::Main => &mut self.main,
            Pool::Reserve => &mut self.reserve,
        }
    }

    /// Shut down the most evictable connection of `pool`: a draining one,
    /// else the one receiving its request for longest. Returns its peer and age.
    fn evict(&mut self, pool: Pool) -> Option<(Option<SocketAddr>, Duration)> {
        let (_, victim) = self
            .conns
            .iter_mut()
            .filter(|(_, e)| e.pool == pool && !e.evicted && e.phase != Phase::Working)
            .min_by_key(|(_, e)| (e.phase != Phase::Draining, e.since))?;
        victim.evicted = true;
        let _ = victim.stream.shutdown(Shutdown::Both);
        let found = (victim.peer, victim.since.elapsed());
        *self.count(pool) -= 1;
        Some(found)
    }
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
                slots: Mutex::new(Slots::default()),
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
                    eprintln!("lagic-enclave: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let Some((id, pool)) = self.shared.admit(&stream) else {
                reject_busy(stream);
                continue;
            };
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("lagic-conn".into())
                .spawn(move || {
                    let _slot = Slot {
                        shared: &shared,
                        id,
                    };
                    handle_connection(stream, &shared, id, pool);
                });
            if spawned.is_err() {
                self.shared.release(id);
            }
        }
        Ok(())
    }
}

impl Shared {
    /// Give a new connection a slot, evicting if needed; None means 503.
    fn admit(&self, stream: &TcpStream) -> Option<(u64, Pool)> {
        let config = &self.config;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Evicted connections still listed end within moments; this cap only
        // bounds threads if they do not.
        let hard_cap = 2 * (config.max_connections + config.health_reserve);
        if slots.conns.len() >= hard_cap {
            return None;
        }
        let mut evicted = None;
        let pool = if slots.main < config.max_connections {
            Pool::Main
        } else if let Some(v) = slots.evict(Pool::Main) {
            evicted = Some(v);
            Pool::Main
        } else if slots.reserve < config.health_reserve {
            Pool::Reserve
        } else if let Some(v) = slots.evict(Pool::Reserve) {
            evicted = Some(v);
            Pool::Reserve
        } else {
            return None;
        };
        let handle = stream.try_clone().ok()?;
        let id = slots.next_id;
        slots.next_id += 1;
        *slots.count(pool) += 1;
        slots.conns.insert(
            id,
            Entry {
                stream: handle,
                peer: stream.peer_addr().ok(),
                phase: Phase::Receiving,
                since: Instant::now(),
                pool,
                evicted: false,
            },
        );
        drop(slots);
        if let (Some((peer, age)), true) = (evicted, config.log_requests) {
            eprintln!(
                "lagic-enclave: all {} slots taken; closed the connection from {} that spent {} ms receiving",
                config.max_connections,
                peer.map_or("?".into(), |p| p.to_string()),
                age.as_millis()
            );
        }
        Some((id, pool))
    }

    fn set_phase(&self, id: u64, phase: Phase) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = slots.conns.get_mut(&id) {
            e.phase = phase;
        }
    }

    fn release(&self, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = slots.conns.remove(&id) {
            if !e.evicted {
                *slots.count(e.pool) -= 1;
            }
        }
    }
}

/// Releases a connection slot when the connection thread ends, even by panic.
struct Slot<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.shared.release(self.id);
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

fn handle_connection(mut stream: TcpStream, shared: &Shared, id: u64, pool: Pool) {
    let config = &shared.config;
    let _ = stream.set_read_timeout(Some(config.io_timeout));
    let _ = stream.set_write_timeout(Some(config.io_timeout));
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let peer = stream.peer_addr().ok();

    let (response, body_unread, label) = match serve(&mut stream, shared, started, id, pool) {
        Ok((resp, label)) => (resp, false, label),
        Err(Served::Reject(r, label)) => {
            let mut resp = Response::error(r.status, &r.message);
            resp.allow = r.allow;
            (resp, true, label)
        }
        // The client is gone or silent: nothing useful can be written.
        Err(Served::Dead(label)) => {
            if config.log_requests {
                eprintln!("lagic-enclave: {label} from {peer:?}: connection lost");
            }
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    };
    shared.set_phase(id, Phase::Working);
    let written = write_response(&mut stream, &response);
    if config.log_requests {
        eprintln!(
            "lagic-enclave: {label} -> {} ({} bytes, {} ms){}",
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
        shared.set_phase(id, Phase::Draining);
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

/// `from + d`, or far in the future when that is unrepresentable.
fn after(from: Instant, d: Duration) -> Instant {
    from.checked_add(d)
        .unwrap_or_else(|| from + Duration::from_secs(3600))
}

fn serve(
    stream: &mut TcpStream,
    shared: &Shared,
    started: Instant,
    id: u64,
    pool: Pool,
) -> Result<(Response, String), Served> {
    let config = &shared.config;
    let mut buf = Vec::with_capacity(4096);
    let head_deadline = after(started, config.head_timeout);
    let head_end = match read_head(stream, &mut buf, head_deadline, config.io_timeout) {
        Ok(end) => end,
        Err(ReadFail::Io) => return Err(Served::Dead("request".into())),
        Err(ReadFail::Reject(r)) => return Err(Served::Reject(r, "request".into())),
    };
    let head = parse_head(&buf[..head_end]).map_err(|r| Served::Reject(r, "request".into()))?;
    let label = format!("{} {}", head.method, log_safe(&head.path));
    let fail = |r: Reject| Served::Reject(r, label.clone());

    let route = head.path.split('?').next().unwrap_or("");
    if pool == Pool::Reserve && (route, head.method.as_str()) != ("/health", "GET") {
        return Err(fail(reject(503, "too many connections; retry later")));
    }
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
            let upload = Duration::from_secs_f64(len as f64 / config.body_min_rate.max(1) as f64);
            let body_deadline = after(Instant::now(), config.body_timeout.saturating_add(upload));
            let body = match read_body(
                stream,
                &buf,
                head_end,
                len,
                body_deadline,
                config.io_timeout,
            ) {
                Ok(b) => b,
                Err(ReadFail::Io) => return Err(Served::Dead(label)),
                Err(ReadFail::Reject(r)) => return Err(fail(r)),
            };
            drop(buf);
            shared.set_phase(id, Phase::Working);
            let response = generate(shared, body).map_err(&fail)?;
            Ok((response, label))
        }
        ("/api/generate", _) => Err(fail(wrong_method("POST", "use POST /api/generate"))),
        _ => Err(fail(reject(404, format!("no route for {route}")))),
    }
}

/// `text` for a log line: printable ASCII as is, a backslash doubled, every
/// other character escaped (`\x1b`, `\r`, `\u{202e}`), so that a client's
/// bytes cannot move the cursor, recolour or retitle a terminal, or forge
/// a line. Cut after 256 characters.
pub fn log_safe(text: &str) -> String {
    const KEEP: usize = 256;
    let mut out = String::with_capacity(text.len().min(KEEP) + 8);
    for (i, c) in text.chars().enumerate() {
        if i == KEEP {
            out.push_str("...");
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out
}

enum ReadFail {
    Io,
    Reject(Reject),
}

/// Wait for input at most until `deadline` (and at most `io_timeout`);
/// false when the deadline has passed.
fn arm_read(stream: &TcpStream, deadline: Instant, io_timeout: Duration) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return false;
    }
    let _ = stream.set_read_timeout(Some(left.min(io_timeout)));
    true
}

/// Read until the blank line ending the head; returns the index just past it.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    io_timeout: Duration,
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
        if !arm_read(stream, deadline, io_timeout) {
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

/// The `len`-byte body: what followed the head in `buf`, then the rest from
/// the socket. The buffer grows (doubling) with what arrives, so a client
/// announcing a large body and sending little holds little memory.
fn read_body(
    stream: &mut TcpStream,
    buf: &[u8],
    head_end: usize,
    len: usize,
    deadline: Instant,
    io_timeout: Duration,
) -> Result<Vec<u8>, ReadFail> {
    const STEP: usize = 64 * 1024;
    let already = &buf[head_end..];
    let already = &already[..already.len().min(len)];
    let mut body = Vec::with_capacity(len.min(already.len().max(STEP)));
    body.extend_from_slice(already);
    let mut chunk = vec![0u8; STEP];
    while body.len() < len {
        if !arm_read(stream, deadline, io_timeout) {
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
            Ok(n) => {
                if body.len() + n > body.capacity() {
                    let target = (body.capacity() * 2).clamp(body.len() + n, len);
                    body.reserve_exact(target - body.len());
                }
                body.extend_from_slice(&chunk[..n]);
            }
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
/// ignored (older clients send extra ones); `null` means absent; a repeated
/// field counts by its last value.
///
/// Memory: no JSON tree is built. The four API fields are kept as scalars
/// (a string at most as long as the body); anything else, and any array or
/// object where a scalar belongs, is skipped as it is read. The parser's
/// only other allocation is its scratch copy of an escaped string, so
/// parsing costs at most about twice the prompt on top of the body.
pub fn parse_generate_body(body: &[u8], config: &ServerConfig) -> Result<GenerateParams, String> {
    let fields: wire::Fields = serde_json::from_slice(body).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            format!("the body must be a JSON object: {e}")
        } else {
            format!("malformed JSON: {e}")
        }
    })?;
    use wire::Scalar;
    let prompt = match fields.prompt {
        Scalar::Null => return Err("missing field \"prompt\"".into()),
        Scalar::Str(s) => s,
        _ => return Err("\"prompt\" must be a string".into()),
    };
    let max_tokens = match fields.max_tokens {
        Scalar::Null => config.default_max_tokens,
        v => {
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
    let wait = match fields.wait_time {
        Scalar::Null => config.max_wait,
        v => {
            let secs = v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or("\"wait_time\" must be a non-negative number of seconds")?;
            Duration::try_from_secs_f64(secs).map_or(config.max_wait, |d| d.min(config.max_wait))
        }
    };
    let seed = match fields.seed {
        Scalar::Null => None,
        v => Some(
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

/// Streaming deserialization of the generate body (see [`parse_generate_body`]).
mod wire {
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// One field's value, kept only as far as the API can use it.
    #[derive(Debug, Default)]
    pub enum Scalar {
        /// `null`, or the field is absent.
        #[default]
        Null,
        Str(String),
        U64(u64),
        I64(i64),
        F64(f64),
        /// A boolean, array or object (its contents skipped, not stored).
        Other,
    }

    impl Scalar {
        pub fn as_u64(&self) -> Option<u64> {
            match *self {
                Scalar::U64(n) => Some(n),
                Scalar::I64(n) => u64::try_from(n).ok(),
                _ => None,
            }
        }

        pub fn as_f64(&self) -> Option<f64> {
            match *self {
                Scalar::U64(n) => Some(n as f64),
                Scalar::I64(n) => Some(n as f64),
                Scalar::F64(x) => Some(x),
                _ => None,
            }
        }
    }

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ScalarVisitor)
        }
    }

    struct ScalarVisitor;

    impl<'de> Visitor<'de> for ScalarVisitor {
        type Value = Scalar;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
            Ok(Scalar::Other)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
            Ok(Scalar::I64(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
            Ok(Scalar::U64(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
            Ok(Scalar::F64(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
            Ok(Scalar::Str(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
            Ok(Scalar::Str(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
            Ok(Scalar::Null)
        }
        fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
            Ok(Scalar::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
            Scalar::deserialize(d)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Scalar::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Scalar::Other)
        }
    }

    /// The API's fields of a generate body.
    #[derive(Debug, Default)]
    pub struct Fields {
        pub prompt: Scalar,
        pub max_tokens: Scalar,
        pub wait_time: Scalar,
        pub seed: Scalar,
    }

    enum Key {
        Prompt,
        MaxTokens,
        WaitTime,
        Seed,
        Unknown,
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl Visitor<'_> for KeyVisitor {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a field name")
                }
                // Borrowed: an unknown key is compared, never copied.
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                    Ok(match v {
                        "prompt" => Key::Prompt,
                        "max_tokens" => Key::MaxTokens,
                        "wait_time" => Key::WaitTime,
                        "seed" => Key::Seed,
                        _ => Key::Unknown,
                    })
                }
            }
            d.deserialize_str(KeyVisitor)
        }
    }

    impl<'de> Deserialize<'de> for Fields {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct FieldsVisitor;
            impl<'de> Visitor<'de> for FieldsVisitor {
                type Value = Fields;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                    let mut fields = Fields::default();
                    while let Some(key) = map.next_key::<Key>()? {
                        let slot = match key {
                            Key::Prompt => &mut fields.prompt,
                            Key::MaxTokens => &mut fields.max_tokens,
                            Key::WaitTime => &mut fields.wait_time,
                            Key::Seed => &mut fields.seed,
                            Key::Unknown => {
                                map.next_value::<IgnoredAny>()?;
                                continue;
                            }
                        };
                        // Drop an earlier value first, so repeats do not add up.
                        *slot = Scalar::Null;
                        *slot = map.next_value()?;
                    }
                    Ok(fields)
                }
            }
            d.deserialize_any(FieldsVisitor)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_safe_escapes_everything_but_printable_ascii() {
        assert_eq!(log_safe("/api/generate?x=1"), "/api/generate?x=1");
        assert_eq!(
            log_safe("/\u{1b}[2J\r\n\t\u{7f}\\é\u{202e}"),
            r"/\x1b[2J\r\n\t\x7f\\\u{e9}\u{202e}"
        );
        let long = log_safe(&"a".repeat(1000));
        assert_eq!(long.len(), 256 + 3);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn repeated_and_nested_fields_parse_without_a_tree() {
        let config = ServerConfig::default();
        let p = parse_generate_body(
            br#"{"prompt":"a","x":{"prompt":"inner","y":[1,{"z":null}]},"prompt":"b","max_tokens":3,"seed":null}"#,
            &config,
        )
        .unwrap();
        assert_eq!(p.prompt, "b");
        assert_eq!(p.max_tokens, 3);
        assert_eq!(p.seed, None);
        for bad in [
            &br#"{"prompt":["a"]}"#[..],
            br#"{"prompt":true}"#,
            br#"{"prompt":"a","max_tokens":[1]}"#,
            br#"{"prompt":"a","wait_time":{}}"#,
            br#"{"prompt":"a"} trailing"#,
            br#"[{"prompt":"a"}]"#,
        ] {
            assert!(
                parse_generate_body(bad, &config).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = parse_generate_body(b"[1]", &config).unwrap_err();
        assert!(e.starts_with("the body must be a JSON object"), "{e}");
        let e = parse_generate_body(b"{nope", &config).unwrap_err();
        assert!(e.starts_with("malformed JSON"), "{e}");
    }
}
