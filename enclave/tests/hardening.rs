//! Attacks on the HTTP server, on loopback with bounded load: slow clients
//! holding every connection slot (slowloris) and terminal control bytes in
//! the request reaching the log. Request memory is in `request_memory.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lagic_enclave::http::{Server, ServerConfig};
use lagic_enclave::EchoGenerator;

fn start(config: ServerConfig) -> SocketAddr {
    let server = Server::bind("127.0.0.1:0", Arc::new(EchoGenerator::new(1)), config).unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || server.run().unwrap());
    addr
}

/// Status of `GET /health`, or None when the server gave no answer within `limit`.
fn health(addr: SocketAddr, limit: Duration) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let line = raw.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// Open `n` connections that each send a request one byte per `every`, half
/// of them stuck in the head, half in a POST body, until `stop`. Connections the
/// server closes are reopened, so the attack keeps its full width.
fn slowloris(addr: SocketAddr, n: usize, every: Duration, stop: Arc<AtomicBool>) {
    let opening = |i: usize| -> Vec<u8> {
        if i.is_multiple_of(2) {
            b"GET /health HTTP/1.1\r\nX-Slow: ".to_vec()
        } else {
            b"POST /api/generate HTTP/1.1\r\nContent-Length: 100000\r\n\r\n{\"prompt\": \"".to_vec()
        }
    };
    let connect = |i: usize| -> Option<TcpStream> {
        let mut s = TcpStream::connect(addr).ok()?;
        // Each connection's first bytes arrive at once; from then on it trickles.
        s.write_all(&opening(i)).ok()?;
        Some(s)
    };
    let mut conns: Vec<Option<TcpStream>> = (0..n).map(connect).collect();
    while !stop.load(Ordering::SeqCst) {
        for (i, c) in conns.iter_mut().enumerate() {
            let alive = c.as_mut().is_some_and(|s| s.write_all(b"a").is_ok());
            if !alive {
                *c = connect(i);
            }
        }
        std::thread::sleep(every);
    }
}

/// 96 slow connections against 64 slots: /health keeps answering 200 promptly.
/// Before the fix every slot was held until the 60 s request deadline and
/// /health got 503 for as long as the attack ran.
#[test]
fn slowloris_does_not_starve_health() {
    let addr = start(ServerConfig {
        log_requests: false,
        ..ServerConfig::default()
    });
    assert_eq!(health(addr, Duration::from_secs(5)), Some(200));
    let stop = Arc::new(AtomicBool::new(false));
    let attack = {
        let stop = stop.clone();
        std::thread::spawn(move || slowloris(addr, 96, Duration::from_millis(500), stop))
    };
    // Let the attack fill the slots before polling.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let mut answers = Vec::new();
    while started.elapsed() < Duration::from_secs(6) {
        answers.push(health(addr, Duration::from_secs(3)));
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    attack.join().unwrap();
    assert!(answers.len() >= 10, "{answers:?}");
    assert!(
        answers.iter().all(|a| *a == Some(200)),
        "/health under a slowloris attack answered {answers:?}"
    );
}

/// Slow heads are cut at the head deadline, not the whole-request one.
#[test]
fn slow_head_is_cut_at_the_head_deadline() {
    let addr = start(ServerConfig {
        log_requests: false,
        head_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = Instant::now();
    let mut raw = Vec::new();
    // One byte every 200 ms keeps every single read short of the io timeout.
    for b in b"GET /health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).is_err() || t.elapsed() > Duration::from_secs(6) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = s.read_to_end(&mut raw);
    assert!(
        raw.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

/// A child process killed and reaped when dropped, so a failing assertion
/// cannot leave a server running (it would hold its port and, under the
/// test suite's kernel lock, the lock's file descriptor).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ESC and CR from a request path are escaped in the server's log line.
#[test]
fn control_bytes_in_requests_are_escaped_in_the_log() {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_lagic-enclave"))
            .args(["--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut err = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = Vec::new();
    err.read_until(b'\n', &mut line).unwrap();
    let text = String::from_utf8_lossy(&line).to_string();
    let addr: SocketAddr = text
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /\x1b[2J\x1b]0;owned\x07x\ry\x7f\xc2\x9b HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 404 "));
    let mut logged = Vec::new();
    while !String::from_utf8_lossy(&logged).contains("-> 404") {
        line.clear();
        if err.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        logged.extend_from_slice(&line);
    }
    drop(child);
    let log = String::from_utf8_lossy(&logged).to_string();
    assert!(log.contains("-> 404"), "{log}");
    let body = log.trim_end_matches('\n');
    assert!(
        !body.chars().any(|c| c.is_control()),
        "raw control characters in the log: {log:?}"
    );
    assert!(log.contains(r"\x1b[2J"), "{log}");
    assert!(log.contains(r"\r") && log.contains(r"\x07"), "{log}");
}
