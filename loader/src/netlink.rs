//! The rtnetlink requests lagic issues itself for clsact mode (Aya adds the qdisc and the
//! filter): listing the filters on a hook with their program ids (to verify an attachment and
//! to find lagic's own filter after a crash), deleting a filter, deleting the clsact qdisc.
//!
//! Each request opens its own `NETLINK_ROUTE` socket, so it acts in the network namespace of
//! the calling thread. Messages follow `include/uapi/linux/{netlink,rtnetlink,pkt_sched}.h`:
//! `struct nlmsghdr`, `struct tcmsg`, then `struct rtattr` attributes, 4-byte aligned.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::attach::Direction;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const RTM_DELQDISC: u16 = 37;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_ID: u16 = 11;
/// `TC_H_CLSACT` (= `TC_H_INGRESS`): the clsact qdisc's parent.
const TC_H_CLSACT: u32 = 0xffff_fff1;
/// `TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)` and `..._EGRESS`.
const HOOK_INGRESS: u32 = 0xffff_fff2;
const HOOK_EGRESS: u32 = 0xffff_fff3;
/// `ETH_P_ALL`, the protocol Aya (and `tc ... protocol all`) files lagic's filter under.
const ETH_P_ALL: u16 = 0x0003;

/// One filter on a clsact hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub priority: u16,
    pub handle: u32,
    /// `bpf`, `u32`, `flower`, ...
    pub kind: String,
    /// The program id, for `bpf` filters.
    pub program_id: Option<u32>,
    /// The name `cls_bpf` keeps (the object's section or program name), for `bpf` filters.
    pub name: Option<String>,
}

fn hook(direction: Direction) -> u32 {
    match direction {
        Direction::Ingress => HOOK_INGRESS,
        Direction::Egress => HOOK_EGRESS,
    }
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// `nlmsghdr` + `tcmsg` + attributes, with the length filled in.
fn message(
    kind: u16,
    flags: u16,
    ifindex: u32,
    handle: u32,
    parent: u32,
    info: u32,
    attrs: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence number
    m.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    m.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    m.extend_from_slice(&handle.to_ne_bytes());
    m.extend_from_slice(&parent.to_ne_bytes());
    m.extend_from_slice(&info.to_ne_bytes());
    for (k, p) in attrs {
        push_attr(&mut m, *k, p);
    }
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m
}

fn send(fd: &OwnedFd, msg: &[u8]) -> io::Result<()> {
    // SAFETY: the buffer is valid for its length; the kernel is the destination (zeroed
    // sockaddr_nl is filled in by the kernel for a netlink socket without an address).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `msg` and `addr` outlive the call.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads replies until `DONE` or an error/ack; calls `each` with every other message body
/// (after the `nlmsghdr`).
fn receive(fd: &OwnedFd, mut each: impl FnMut(u16, &[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut rest = &buf[..n as usize];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
            if len < 16 || len > rest.len() {
                return Err(io::Error::other("truncated netlink reply"));
            }
            let body = &rest[16..len];
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let errno = body
                        .get(0..4)
                        .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                        .unwrap_or(-libc::EIO);
                    return if errno == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-errno))
                    };
                }
                _ => each(kind, body),
            }
            rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        }
    }
}

/// Attributes in `buf` as (type, payload).
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

fn c_string(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// The filters on the clsact hook of `ifindex` in `direction` (none when there is no clsact
/// qdisc).
pub(crate) fn filters(ifindex: u32, direction: Direction) -> io::Result<Vec<Filter>> {
    let fd = socket()?;
    send(
        &fd,
        &message(
            RTM_GETTFILTER,
            NLM_F_REQUEST | NLM_F_DUMP,
            ifindex,
            0,
            hook(direction),
            0,
            &[],
        ),
    )?;
    let mut out = Vec::new();
    let result = receive(&fd, |_, body| {
        if body.len() < 20 {
            return;
        }
        let handle = u32::from_ne_bytes(body[8..12].try_into().unwrap());
        let info = u32::from_ne_bytes(body[16..20].try_into().unwrap());
        // A message without a handle describes the priority's classifier, not a filter.
        if handle == 0 {
            return;
        }
        let mut filter = Filter {
            priority: (info >> 16) as u16,
            handle,
            kind: String::new(),
            program_id: None,
            name: None,
        };
        for (kind, payload) in attrs(&body[20..]) {
            match kind {
                TCA_KIND => filter.kind = c_string(payload),
                TCA_OPTIONS => {
                    for (k, p) in attrs(payload) {
                        match k {
                            TCA_BPF_ID if p.len() >= 4 => {
                                filter.program_id =
                                    Some(u32::from_ne_bytes(p[0..4].try_into().unwrap()))
                            }
                            TCA_BPF_NAME => filter.name = Some(c_string(p)),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(filter);
    });
    match result {
        Ok(()) => Ok(out),
        // No clsact qdisc (or no such hook): no filters.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Deletes the `bpf` filter at `priority` and `handle` on the clsact hook.
pub(crate) fn delete_filter(
    ifindex: u32,
    direction: Direction,
    priority: u16,
    handle: u32,
) -> io::Result<()> {
    let fd = socket()?;
    let info = (u32::from(priority) << 16) | u32::from(ETH_P_ALL.to_be());
    send(
        &fd,
        &message(
            RTM_DELTFILTER,
            NLM_F_REQUEST | NLM_F_ACK,
            ifindex,
            handle,
            hook(direction),
            info,
            &[(TCA_KIND, b"bpf\0")],
        ),
    )?;
    receive(&fd, |_, _| {})
}

/// Deletes the clsact qdisc of `ifindex` (and with it any filter left on it).
pub(crate) fn delete_clsact(ifindex: u32) -> io::Result<()> {
    let fd = socket()?;
    send(
        &fd,
        &message(
            RTM_DELQDISC,
            NLM_F_REQUEST | NLM_F_ACK,
            ifindex,
            0xffff_0000,
            TC_H_CLSACT,
            0,
            &[(TCA_KIND, b"clsact\0")],
        ),
    )?;
    receive(&fd, |_, _| {})
}
