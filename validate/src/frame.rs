//! A minimal Ethernet/IPv4/TCP frame builder for the checks' probe packets
//! (no options, no VLAN tags), kept here so validation needs nothing from
//! the loader or the emitter.

/// Bytes before the payload: Ethernet (14), IPv4 (20), TCP (20).
pub const HEADERS: usize = 54;

/// A well-formed IPv4/TCP frame carrying `payload` (at most 65,481 bytes,
/// so the frame stays within 65,535).
pub fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADERS + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
    let total = (40 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[
        0x1f, 0x90, 0xc0, 0x00, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    f.extend_from_slice(payload);
    f
}
