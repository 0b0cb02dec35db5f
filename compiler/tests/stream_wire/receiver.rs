//! The receiving application: a plain `std::net::TcpStream` in the client's namespace that
//! records exactly the bytes its reads return, and how the connection ended.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How a connection ended for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A read returned 0: the peer's FIN.
    Fin,
    /// A read failed with ECONNRESET: a RST.
    Reset,
    /// Neither within the deadline.
    Timeout,
    /// Anything else (the message says what).
    Error(String),
}

/// What the application read.
#[derive(Debug, Clone)]
pub struct Received {
    /// Every byte the reads returned, in order.
    pub bytes: Vec<u8>,
    /// How the connection ended.
    pub end: End,
    /// From connect to the end.
    pub took: Duration,
}

impl Received {
    /// The bytes as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Connects to `addr` and reads until FIN, RST or `deadline`. A refused connect is an error
/// (the sender never answered), not a verdict; a connection reset before `connect` returned
/// (established, then a RST at once) ended by RST with nothing read.
pub fn receive(addr: SocketAddr, deadline: Duration) -> Received {
    let start = Instant::now();
    let mut stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(stream) => stream,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {
            return Received {
                bytes: Vec::new(),
                end: End::Reset,
                took: start.elapsed(),
            }
        }
        Err(e) => panic!("the client cannot connect to {addr}: {e}"),
    };
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        let left = deadline.saturating_sub(start.elapsed());
        if left.is_zero() {
            break End::Timeout;
        }
        stream
            .set_read_timeout(Some(left))
            .expect("setting the read timeout");
        match stream.read(&mut buf) {
            Ok(0) => break End::Fin,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => match e.kind() {
                ErrorKind::ConnectionReset => break End::Reset,
                ErrorKind::WouldBlock | ErrorKind::TimedOut => break End::Timeout,
                ErrorKind::Interrupted => continue,
                _ => break End::Error(e.to_string()),
            },
        }
    };
    Received {
        bytes,
        end,
        took: start.elapsed(),
    }
}
