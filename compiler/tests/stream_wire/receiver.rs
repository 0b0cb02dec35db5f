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
    let stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
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
    read_all(stream, start, deadline)
}

/// Reads `stream` until FIN, RST or `deadline` (counted from `start`).
fn read_all(mut stream: TcpStream, start: Instant, deadline: Duration) -> Received {
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

/// [`receive`] from the fixed local port `local_port` (`SO_REUSEADDR`), so that
/// consecutive calls reuse one 4-tuple. The socket is closed with a RST (`SO_LINGER` 0), so
/// nothing of it is left for the next call: the adversarial sender never acknowledges the
/// client's FIN.
pub fn receive_from_port(addr: SocketAddr, local_port: u16, deadline: Duration) -> Received {
    use std::os::fd::{FromRawFd, OwnedFd};
    let start = Instant::now();
    let (domain, local) = match addr {
        SocketAddr::V4(_) => (libc::AF_INET, SocketAddr::from(([0, 0, 0, 0], local_port))),
        SocketAddr::V6(_) => (libc::AF_INET6, SocketAddr::from(([0u16; 8], local_port))),
    };
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let set = |level: i32, name: i32, value: &[u8]| {
        // SAFETY: `value` is a valid buffer of its length for the option.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                value.as_ptr().cast(),
                value.len() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
    };
    set(libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32.to_ne_bytes());
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a plain C struct viewed as its bytes.
    let linger_bytes = unsafe {
        std::slice::from_raw_parts(
            (&linger as *const libc::linger).cast::<u8>(),
            std::mem::size_of::<libc::linger>(),
        )
    };
    set(libc::SOL_SOCKET, libc::SO_LINGER, linger_bytes);
    // connect(2) gives up after SO_SNDTIMEO.
    let timeout = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: as above.
    let timeout_bytes = unsafe {
        std::slice::from_raw_parts(
            (&timeout as *const libc::timeval).cast::<u8>(),
            std::mem::size_of::<libc::timeval>(),
        )
    };
    set(libc::SOL_SOCKET, libc::SO_SNDTIMEO, timeout_bytes);
    let (local, local_len) = sockaddr(local);
    // SAFETY: `local` is a valid socket address of `local_len` bytes.
    let r = unsafe { libc::bind(fd, (&raw const local).cast(), local_len) };
    assert_eq!(
        r,
        0,
        "bind to port {local_port}: {}",
        std::io::Error::last_os_error()
    );
    let (remote, remote_len) = sockaddr(addr);
    // SAFETY: as above.
    let r = unsafe { libc::connect(fd, (&raw const remote).cast(), remote_len) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == ErrorKind::ConnectionReset {
            return Received {
                bytes: Vec::new(),
                end: End::Reset,
                took: start.elapsed(),
            };
        }
        panic!("the client cannot connect from port {local_port} to {addr}: {e}");
    }
    read_all(TcpStream::from(owned), start, deadline)
}

/// `addr` as a C socket address and its length.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&raw mut storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}
