//! A packet socket on one interface: whole Ethernet frames out, every frame the interface
//! receives in. Used by the adversarial sender and by the impairing relay.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `SOL_PACKET` option: a `virtio_net_hdr` before every frame, in and out, so GSO and
/// checksum-offload state crosses a relay intact.
const PACKET_VNET_HDR: libc::c_int = 15;
const SOL_PACKET: libc::c_int = 263;
/// `sll_pkttype` of a frame this host sent (seen by `ETH_P_ALL` sockets too).
const PACKET_OUTGOING: u8 = 4;
/// Length of `struct virtio_net_hdr`.
pub const VNET_HDR_LEN: usize = 10;

/// A bound packet socket. Create it on a thread inside the interface's namespace.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

impl PacketSocket {
    /// A socket bound to `dev` of the calling thread's namespace, receiving every protocol,
    /// with receive timeout `timeout`; with `vnet_hdr`, frames carry a virtio header.
    pub fn bind(dev: &str, vnet_hdr: bool, timeout: Duration) -> io::Result<PacketSocket> {
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(all)) };
        check(raw, "socket(AF_PACKET)")?;
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = std::ffi::CString::new(dev).expect("no NUL in an interface name");
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(io::Error::other(format!("no interface {dev} here")));
        }
        let socket = PacketSocket { fd, ifindex };
        if vnet_hdr {
            socket.set_option(SOL_PACKET, PACKET_VNET_HDR, &1i32, "PACKET_VNET_HDR")?;
        }
        // Bursts of a 1 MB transfer must not overflow the relay's queue.
        socket.set_option(
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &(4i32 << 20),
            "SO_RCVBUF",
        )?;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        socket.set_option(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv, "SO_RCVTIMEO")?;
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = all;
        addr.sll_ifindex = ifindex;
        // SAFETY: addr is a sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        check(rc, "bind(AF_PACKET)")?;
        Ok(socket)
    }

    fn set_option<T>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: &T,
        what: &str,
    ) -> io::Result<()> {
        // SAFETY: `value` points to a T of the given size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                std::mem::size_of::<T>() as u32,
            )
        };
        check(rc, what)
    }

    /// Sends one frame (with its virtio header first on a `vnet_hdr` socket).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: a buffer of the given length.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if sent < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("send on a packet socket: {e}"),
            ));
        }
        if sent as usize != frame.len() {
            return Err(io::Error::other(format!(
                "packet socket sent {sent} of {} bytes",
                frame.len()
            )));
        }
        Ok(())
    }

    /// The next frame the interface received (frames this host sent are skipped): its length
    /// in `buf`, or `None` at the receive timeout. A frame longer than `buf` is an error.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buffers of the given lengths.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(io::Error::new(e.kind(), format!("recvfrom: {e}"))),
                };
            }
            let n = n as usize;
            if n > buf.len() {
                return Err(io::Error::other(format!(
                    "a {n}-byte frame does not fit the {}-byte buffer",
                    buf.len()
                )));
            }
            if from.sll_pkttype == PACKET_OUTGOING || from.sll_ifindex != self.ifindex {
                continue;
            }
            return Ok(Some(n));
        }
    }
}
