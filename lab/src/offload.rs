//! Transmit checksum offload of the enclave's side of the link.
//!
//! A stream diode drops every segment whose TCP checksum is left to be
//! completed after it (`CHECKSUM_PARTIAL`, reason `partial_checksum`,
//! docs/stream.md, "Checksums left to offload"): the completion writes
//! where the sender said, into bytes already judged. An honest local
//! stack sends exactly that over a veth that offers checksum offload, and
//! so does a VM guest through tap and a bridge. With transmit checksum
//! offload off on the device the enclave's frames leave by (the veth end
//! beside the enclave, which the lab owns, not the VM), the kernel
//! completes each checksum before the frame crosses the link, where the
//! sender's offset can only change bytes the diode then judges. The
//! kernel also turns TCP segmentation offload off with it, so the stack
//! segments in software.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `SIOCETHTOOL`, from `linux/sockios.h`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_STXCSUM`, from `linux/ethtool.h`: set transmit checksumming.
const ETHTOOL_STXCSUM: u32 = 0x17;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Turns transmit checksum offload of `dev` (in the calling thread's
/// network namespace) off, as `ethtool -K DEV tx off` does.
pub fn disable_tx_checksum(dev: &str) -> io::Result<()> {
    // SAFETY: all-zero bytes are a valid ifreq.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if dev.is_empty() || dev.len() >= ifr.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{dev}` is not an interface name"),
        ));
    }
    for (to, from) in ifr.ifr_name.iter_mut().zip(dev.bytes()) {
        *to = from as libc::c_char;
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    ifr.ifr_ifru.ifru_data = (&raw mut value).cast();
    // SAFETY: plain socket(2); the descriptor is owned at once below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: SIOCETHTOOL with an ifreq naming the device and pointing at
    // `value`, which outlives the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL, &raw mut ifr) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
