//! The one HTTP/1.1 client of the lab, the end-to-end tests and the benchmark: one request
//! per connection (`Connection: close`), every step under one deadline for the whole
//! exchange, over `std::net::TcpStream`.
//!
//! Invariants:
//! - An exchange ends in exactly one [`Reply`]: `Complete` when the status line, the head
//!   and every `Content-Length` body byte arrived (or, without `Content-Length`, the server
//!   closed after the head); `TimedOut` when the deadline passed first; `Closed` when the
//!   server closed before the response was complete. The two incomplete kinds keep every
//!   byte that did arrive, so a caller can say what crossed, not only that something failed.
//! - A read interrupted by a signal is retried, never counted as an end.
//! - Errors that are neither a deadline nor an orderly close (refused connection, reset) are
//!   [`HttpError`]s.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Why an exchange failed outright (a timeout or an early close is a [`Reply`], not this).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The TCP connection could not be made.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The server.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Sending the request failed.
    #[error("sending the request to {addr}: {source}")]
    Send {
        /// The server.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading the response failed (other than by the deadline).
    #[error("reading the response from {addr} after {received} bytes: {source}")]
    Receive {
        /// The server.
        addr: SocketAddr,
        /// Bytes received before the error.
        received: usize,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A response head: status and the body length it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Length`, if the head has one.
    pub content_length: Option<usize>,
    /// Bytes of the head, its closing blank line included: the body starts here.
    pub len: usize,
}

/// A whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body (exactly `Content-Length` bytes when the head announces a length).
    pub body: Vec<u8>,
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The whole response arrived.
    Complete(Response),
    /// The deadline passed before the response was complete; what arrived so far.
    TimedOut {
        /// Every byte received, head included.
        received: Vec<u8>,
    },
    /// The server closed the connection before the response was complete.
    Closed {
        /// Every byte received, head included.
        received: Vec<u8>,
    },
}

impl Reply {
    /// The complete response, if it is one.
    pub fn complete(&self) -> Option<&Response> {
        match self {
            Reply::Complete(r) => Some(r),
            _ => None,
        }
    }

    /// The bytes received when the response is incomplete (`None` when complete).
    pub fn incomplete_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Complete(_) => None,
            Reply::TimedOut { received } | Reply::Closed { received } => Some(received),
        }
    }
}

/// Parses the head at the start of `raw`, if all of it is there.
pub fn parse_head(raw: &[u8]) -> Option<Head> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let content_length = lines.find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    });
    Some(Head {
        status,
        content_length,
        len: end + 4,
    })
}

/// The response in `raw` if it is complete; `closed` says the server has closed.
fn complete(raw: &[u8], closed: bool) -> Option<Response> {
    let head = parse_head(raw)?;
    let body = &raw[head.len..];
    match head.content_length {
        Some(n) if body.len() >= n => Some(Response {
            status: head.status,
            body: body[..n].to_vec(),
        }),
        None if closed => Some(Response {
            status: head.status,
            body: body.to_vec(),
        }),
        _ => None,
    }
}

/// Sends `method path` with `body` (typed `content_type` when given) and waits for the
/// response until `deadline` after the call.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    deadline: Duration,
) -> Result<Reply, HttpError> {
    let until = Instant::now() + deadline;
    let mut stream = TcpStream::connect_timeout(&addr, deadline)
        .map_err(|source| HttpError::Connect { addr, source })?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(ct) = content_type {
        request.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut out = request.into_bytes();
    out.extend_from_slice(body);
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(Reply::TimedOut {
            received: Vec::new(),
        });
    }
    stream
        .set_write_timeout(Some(left))
        .and_then(|()| stream.write_all(&out))
        .map_err(|source| HttpError::Send { addr, source })?;

    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(response) = complete(&raw, false) {
            return Ok(Reply::Complete(response));
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Reply::TimedOut { received: raw });
        }
        if let Err(source) = stream.set_read_timeout(Some(left)) {
            return Err(HttpError::Receive {
                addr,
                received: raw.len(),
                source,
            });
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                return Ok(match complete(&raw, true) {
                    Some(response) => Reply::Complete(response),
                    None => Reply::Closed { received: raw },
                })
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A signal (a child process exiting) interrupts a read that has a timeout.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Reply::TimedOut { received: raw })
            }
            Err(source) => {
                return Err(HttpError::Receive {
                    addr,
                    received: raw.len(),
                    source,
                })
            }
        }
    }
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str, deadline: Duration) -> Result<Reply, HttpError> {
    exchange(addr, "GET", path, None, &[], deadline)
}

/// `POST path` with a JSON body.
pub fn post_json(
    addr: SocketAddr,
    path: &str,
    json: &str,
    deadline: Duration,
) -> Result<Reply, HttpError> {
    exchange(
        addr,
        "POST",
        path,
        Some("application/json"),
        json.as_bytes(),
        deadline,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server on loopback that reads the request head and then runs `answer`.
    fn serve_once(answer: impl FnOnce(TcpStream) + Send + 'static) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    return;
                }
                req.extend_from_slice(&buf[..n]);
            }
            answer(s);
        });
        addr
    }

    #[test]
    fn heads_parse_with_and_without_length() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\ncontent-LENGTH: 5\r\n\r\nhello").unwrap();
        assert_eq!(
            h,
            Head {
                status: 200,
                content_length: Some(5),
                len: 38
            }
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 404 Not Found\r\n\r\n")
                .unwrap()
                .content_length,
            None
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
            None
        );
        assert_eq!(parse_head(b"SSH-2.0 x\r\n\r\n"), None);
    }

    #[test]
    fn a_whole_response_is_complete_before_the_server_closes() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let addr = serve_once(move |mut s| {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            // Hold the connection open: completeness comes from Content-Length.
            let _ = rx.recv_timeout(Duration::from_secs(5));
        });
        let reply = get(addr, "/", Duration::from_secs(5)).unwrap();
        tx.send(()).unwrap();
        assert_eq!(
            reply,
            Reply::Complete(Response {
                status: 200,
                body: b"ok".to_vec()
            })
        );
    }

    #[test]
    fn a_stalled_response_times_out_with_what_arrived() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let addr = serve_once(move |mut s| {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
                .unwrap();
            let _ = rx.recv_timeout(Duration::from_secs(5));
        });
        let started = Instant::now();
        let reply = get(addr, "/", Duration::from_millis(300)).unwrap();
        tx.send(()).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        let received = reply.incomplete_bytes().expect("incomplete");
        assert!(matches!(reply, Reply::TimedOut { .. }));
        assert!(received.ends_with(b"\r\n\r\nhalf"));
    }

    #[test]
    fn an_early_close_is_closed_not_complete() {
        let addr = serve_once(|mut s| {
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
                .unwrap();
        });
        let reply = get(addr, "/", Duration::from_secs(5)).unwrap();
        assert!(matches!(reply, Reply::Closed { ref received } if received.ends_with(b"half")));
        // Without a length, the close ends the body.
        let addr = serve_once(|mut s| {
            s.write_all(b"HTTP/1.1 200 OK\r\n\r\nall of it").unwrap();
        });
        let reply = get(addr, "/", Duration::from_secs(5)).unwrap();
        assert_eq!(reply.complete().unwrap().body, b"all of it");
    }

    #[test]
    fn posts_carry_type_and_length() {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"{\"a\":1}") {
                let n = s.read(&mut buf).unwrap();
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            tx.send(req).unwrap();
        });
        let reply = post_json(addr, "/x", "{\"a\":1}", Duration::from_secs(5)).unwrap();
        assert_eq!(reply.complete().unwrap().status, 200);
        let req = String::from_utf8(rx.recv().unwrap()).unwrap();
        assert!(req.starts_with("POST /x HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains("\r\nContent-Type: application/json\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nContent-Length: 7\r\n"), "{req}");
    }

    #[test]
    fn nobody_listening_is_a_connect_error() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(matches!(
            get(addr, "/", Duration::from_secs(2)),
            Err(HttpError::Connect { .. })
        ));
    }
}
