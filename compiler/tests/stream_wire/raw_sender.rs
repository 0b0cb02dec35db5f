//! The adversarial enclave: a TCP server written by hand on a packet socket.
//!
//! It owns its whole TCP stack, as a hostile enclave does: it answers the client's SYN with
//! its own SYN-ACK, then sends exactly the segments a [`Script`] lists (any sequence number,
//! order, flags, TTL or checksum), and finally behaves like a persistent TCP sender: it
//! retransmits whatever of the script's intended stream the client has not acknowledged, then
//! a FIN, until the client acknowledges the FIN or resets, or the rounds run out.
//!
//! The sender's namespace has no IP address (see `net`), so its kernel never answers or
//! resets the client's segments; nothing else speaks for `10.77.1.2`.
//!
//! Sequence offsets in a script count from the first data byte (ISN + 1), modulo 2^32.
//! IPv4 or IPv6 ([`Family`]); a segment's `ttl` is the IPv6 hop limit there.

use std::time::{Duration, Instant};

use lagic_frames::{tcp_flags, ExtHeader, Frame};

use super::net::{Family, CLIENT_IP, CLIENT_IP6, ROUTER_IN_MAC, SENDER_IP, SENDER_IP6, SENDER_MAC};
use super::packet::PacketSocket;

/// The port the adversarial server listens on.
pub const PORT: u16 = 8080;
/// The sender's initial sequence number unless a script sets another.
pub const DEFAULT_ISN: u32 = 0x6c73_7700;
/// How long the sender waits for the client's SYN and its ACK.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);
/// How long the sender listens after each scripted segment, so the client's stack has
/// handled it (and acknowledged) before the next: the order of arrival is the script's.
const AFTER_EACH_SEGMENT: Duration = Duration::from_millis(30);
/// How long the sender waits for acknowledgments before a retransmission round.
const ROUND: Duration = Duration::from_millis(200);
/// Retransmission rounds after the script (a few are enough: the client answers at once).
pub const ROUNDS: usize = 8;
/// The largest segment the sender builds (the client's MSS here is 1460).
pub const MAX_SEGMENT: usize = 1400;

/// One crafted segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Sequence offset of the first byte (or of the FIN, when `data` is empty).
    pub offset: u32,
    /// Payload.
    pub data: Vec<u8>,
    /// FIN set.
    pub fin: bool,
    /// URG set with this urgent pointer (Linux reads the byte at `seq + pointer - 1`).
    pub urgent: Option<u16>,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// A wrong TCP checksum (the client's stack discards the segment).
    pub bad_checksum: bool,
    /// How the segment is crafted beyond the fields above.
    pub craft: Craft,
}

/// How a segment leaves the sender, beyond its flags, TTL and checksum (the attacks of
/// `attacks2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Craft {
    /// One ordinary frame.
    Plain,
    /// The IP packet cut into two fragments after the TCP header and the first
    /// `first_data` payload bytes (20 + `first_data` must be a multiple of 8): IPv4
    /// fragments, or an IPv6 Fragment header in each.
    Fragmented { first_data: usize },
    /// Exactly these TCP flags instead of ACK, PSH and FIN as the segment implies.
    Flags(u8),
    /// The acknowledgment number this far past the client's next sequence number (data
    /// the client never sent: Linux discards the segment).
    AckAhead(u32),
    /// These TCP options (padded by the sender to a multiple of 4 bytes).
    TcpOptions(Vec<u8>),
    /// Sent on a `PACKET_VNET_HDR` socket as a partial checksum (`NEEDS_CSUM`) whose
    /// offset names the payload bytes `at..at + 2` instead of the TCP checksum field. Those
    /// two bytes and the checksum field are chosen so that completing the checksum writes
    /// `becomes` there and leaves a valid TCP checksum: the diode sees other bytes than a
    /// receiver behind a software or NIC checksum completion reads.
    PartialChecksumInPayload { at: usize, becomes: [u8; 2] },
}

/// Ones' complement sum of `bytes` as 16-bit big-endian words (odd length: zero-padded),
/// folded to 16 bits.
fn ones_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// `a + b` in ones' complement arithmetic.
fn ones_add(a: u16, b: u16) -> u16 {
    let sum = u32::from(a) + u32::from(b);
    ((sum & 0xffff) + (sum >> 16)) as u16
}

impl Segment {
    /// Data at `offset`, PSH|ACK, TTL 64, correct checksum.
    pub fn data(offset: u32, data: &[u8]) -> Segment {
        Segment {
            offset,
            data: data.to_vec(),
            fin: false,
            urgent: None,
            ttl: 64,
            bad_checksum: false,
            craft: Craft::Plain,
        }
    }

    /// Crafted as `craft` says.
    pub fn craft(mut self, craft: Craft) -> Segment {
        self.craft = craft;
        self
    }

    /// A FIN without data at `offset`.
    pub fn fin(offset: u32) -> Segment {
        Segment {
            fin: true,
            ..Segment::data(offset, b"")
        }
    }

    /// With URG and urgent pointer `pointer`.
    pub fn urgent(mut self, pointer: u16) -> Segment {
        self.urgent = Some(pointer);
        self
    }

    /// With IPv4 TTL or IPv6 hop limit `ttl`.
    pub fn ttl(mut self, ttl: u8) -> Segment {
        self.ttl = ttl;
        self
    }

    /// With a wrong TCP checksum.
    pub fn bad_checksum(mut self) -> Segment {
        self.bad_checksum = true;
        self
    }
}

/// What the adversarial sender does on one connection.
#[derive(Debug, Clone)]
pub struct Script {
    /// The segments, sent in this order.
    pub segments: Vec<Segment>,
    /// The byte at each sequence offset that the sender retransmits after the script (its
    /// "real" stream); the FIN follows it.
    pub stream: Vec<u8>,
    /// The sender's initial sequence number.
    pub isn: u32,
}

/// What the sender saw and did, for the test's messages.
#[derive(Debug, Default)]
pub struct SenderReport {
    /// The client's highest acknowledgment, as an offset (stream length + 1: FIN acked).
    pub acked: u32,
    /// The client reset the connection.
    pub client_reset: bool,
    /// Segments sent after the script: data the client had not acknowledged, or the FIN.
    pub after_script: usize,
    /// Events, in order.
    pub log: Vec<String>,
}

/// A TCP segment from the client, parsed from a frame.
struct ClientSegment {
    src_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
}

/// Parses an untagged IPv4 or IPv6 TCP frame from the client to the sender's port.
fn parse_client_segment(frame: &[u8], family: Family) -> Option<ClientSegment> {
    let tcp = match family {
        Family::V4 => {
            if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
                return None;
            }
            let ip = &frame[14..];
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ip[9] != 6 || ihl < 20 || ip.len() < ihl + 20 {
                return None;
            }
            if ip[12..16] != CLIENT_IP || ip[16..20] != SENDER_IP {
                return None;
            }
            &ip[ihl..]
        }
        Family::V6 => {
            // The client's stack adds no extension headers to these segments.
            if frame.len() < 14 + 40 + 20 || frame[12..14] != [0x86, 0xdd] {
                return None;
            }
            let ip = &frame[14..];
            if ip[0] >> 4 != 6 || ip[6] != 6 {
                return None;
            }
            if ip[8..24] != CLIENT_IP6 || ip[24..40] != SENDER_IP6 {
                return None;
            }
            &ip[40..]
        }
    };
    let be16 = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes([tcp[at], tcp[at + 1], tcp[at + 2], tcp[at + 3]]);
    if be16(2) != PORT {
        return None;
    }
    Some(ClientSegment {
        src_port: be16(0),
        seq: be32(4),
        ack: be32(8),
        flags: tcp[13],
    })
}

/// One connection of the adversarial server.
struct Connection<'a> {
    socket: &'a PacketSocket,
    family: Family,
    client_port: u16,
    /// The client's ISN + 1: every segment of ours acknowledges exactly the SYN.
    rcv_next: u32,
    isn: u32,
    report: SenderReport,
}

impl Connection<'_> {
    fn frame(&self, seq: u32, flags: u8, segment: Option<&Segment>, options: &[u8]) -> Vec<u8> {
        let (data, ttl, urgent, bad_checksum) = match segment {
            Some(s) => (s.data.as_slice(), s.ttl, s.urgent, s.bad_checksum),
            None => (&b""[..], 64, None, false),
        };
        let flags = flags | if urgent.is_some() { tcp_flags::URG } else { 0 };
        let craft = segment.map_or(&Craft::Plain, |s| &s.craft);
        let ack = match craft {
            Craft::AckAhead(by) => self.rcv_next.wrapping_add(*by),
            _ => self.rcv_next,
        };
        let mut crafted_options;
        let options = match craft {
            Craft::TcpOptions(crafted) => {
                crafted_options = crafted.clone();
                // NOP-padded: the data offset counts 4-byte words.
                crafted_options.resize(crafted.len().div_ceil(4) * 4, 1);
                crafted_options.as_slice()
            }
            _ => options,
        };
        let (mut bytes, layout) = match self.family {
            Family::V4 => {
                let mut frame = Frame::ipv4()
                    .src_mac(SENDER_MAC)
                    .dst_mac(ROUTER_IN_MAC)
                    .src(SENDER_IP)
                    .dst(CLIENT_IP)
                    .ttl(ttl)
                    .dont_fragment(true)
                    .ports(PORT, self.client_port)
                    .seq(seq)
                    .ack(ack)
                    .tcp_flags(flags)
                    .tcp_options(options)
                    .payload(data);
                frame.transport.urgent = urgent.unwrap_or(0);
                frame.build_with_layout()
            }
            Family::V6 => {
                let mut frame = Frame::ipv6()
                    .src_mac(SENDER_MAC)
                    .dst_mac(ROUTER_IN_MAC)
                    .src(SENDER_IP6)
                    .dst(CLIENT_IP6)
                    .hop_limit(ttl)
                    .ports(PORT, self.client_port)
                    .seq(seq)
                    .ack(ack)
                    .tcp_flags(flags)
                    .tcp_options(options)
                    .payload(data);
                frame.transport.urgent = urgent.unwrap_or(0);
                frame.build_with_layout()
            }
        };
        if bad_checksum {
            // Any change of the correct sum is wrong; a fixed one keeps runs reproducible.
            bytes[layout.transport + 16] ^= 0x5a;
        }
        bytes
    }

    /// The frames that carry `segment` at `seq` with `flags`: one, or two fragments.
    fn frames(&self, seq: u32, flags: u8, segment: &Segment) -> Vec<Vec<u8>> {
        if let Craft::PartialChecksumInPayload { at, becomes } = segment.craft {
            return vec![self.partial_checksum_frame(seq, flags, segment, at, becomes)];
        }
        let whole = self.frame(seq, flags, Some(segment), &[]);
        let Craft::Fragmented { first_data } = segment.craft else {
            return vec![whole];
        };
        // The TCP segment as built (checksum over the real addresses), cut in two.
        let (tcp, ttl) = match self.family {
            Family::V4 => {
                let total = usize::from(u16::from_be_bytes([whole[16], whole[17]]));
                (whole[14 + 20..14 + total].to_vec(), whole[14 + 8])
            }
            Family::V6 => {
                let len = usize::from(u16::from_be_bytes([whole[18], whole[19]]));
                (whole[14 + 40..14 + 40 + len].to_vec(), whole[14 + 7])
            }
        };
        let cut = 20 + first_data;
        assert!(
            cut.is_multiple_of(8) && cut < tcp.len(),
            "a fragment boundary at {cut} of {}",
            tcp.len()
        );
        // One identification per segment offset, so a retransmitted fragment pair is not
        // mixed with another.
        let id = 0x4c00 | (segment.offset & 0xff);
        [(0, &tcp[..cut], true), (cut, &tcp[cut..], false)]
            .into_iter()
            .map(|(at, part, more)| {
                let units = (at / 8) as u16;
                match self.family {
                    Family::V4 => {
                        let mut frame = Frame::ipv4()
                            .src_mac(SENDER_MAC)
                            .dst_mac(ROUTER_IN_MAC)
                            .src(SENDER_IP)
                            .dst(CLIENT_IP)
                            .ttl(ttl)
                            .dont_fragment(false)
                            .fragment(units, more)
                            .raw_transport(6)
                            .payload(part);
                        frame.network.id = id as u16;
                        frame.build()
                    }
                    Family::V6 => Frame::ipv6()
                        .src_mac(SENDER_MAC)
                        .dst_mac(ROUTER_IN_MAC)
                        .src(SENDER_IP6)
                        .dst(CLIENT_IP6)
                        .hop_limit(ttl)
                        .ext_header(ExtHeader::fragment(units, more, id))
                        .raw_transport(6)
                        .payload(part)
                        .build(),
                }
            })
            .collect()
    }

    /// The frame of [`Craft::PartialChecksumInPayload`], with its `virtio_net_hdr` first.
    ///
    /// Completing a partial checksum writes the complement of the ones' complement sum of
    /// everything from `csum_start` (the TCP header) to the end at `csum_start +
    /// csum_offset`. Here the TCP checksum field is chosen as the correct checksum of the
    /// segment carrying `becomes` at `at` (so the completed segment verifies), and the two
    /// payload bytes `w` at `at` so that the completion writes `becomes` there:
    /// `!(sum_without_w + w) == becomes`.
    fn partial_checksum_frame(
        &self,
        seq: u32,
        flags: u8,
        segment: &Segment,
        at: usize,
        becomes: [u8; 2],
    ) -> Vec<u8> {
        assert!(
            at.is_multiple_of(2) && at + 2 <= segment.data.len(),
            "a word of the payload"
        );
        let mut completed = segment.clone();
        completed.data[at..at + 2].copy_from_slice(&becomes);
        completed.craft = Craft::Plain;
        let mut frame = self.frame(seq, flags, Some(&completed), &[]);
        let tcp = match self.family {
            Family::V4 => 14 + 20,
            Family::V6 => 14 + 40,
        };
        let field = tcp + 20 + at;
        frame[field..field + 2].fill(0);
        let without = ones_sum(&frame[tcp..]);
        let w = ones_add(!u16::from_be_bytes(becomes), !without);
        frame[field..field + 2].copy_from_slice(&w.to_be_bytes());
        // struct virtio_net_hdr (little-endian): flags NEEDS_CSUM, no GSO, csum_start,
        // csum_offset.
        let mut out = vec![1, 0, 0, 0, 0, 0];
        out.extend_from_slice(&(tcp as u16).to_le_bytes());
        out.extend_from_slice(&((20 + at) as u16).to_le_bytes());
        out.extend_from_slice(&frame);
        out
    }

    fn send_segment(&mut self, segment: &Segment, why: &str) {
        let seq = self.isn.wrapping_add(1).wrapping_add(segment.offset);
        let mut flags = tcp_flags::ACK;
        if !segment.data.is_empty() {
            flags |= tcp_flags::PSH;
        }
        if segment.fin {
            flags |= tcp_flags::FIN;
        }
        if let Craft::Flags(crafted) = segment.craft {
            flags = crafted;
        }
        for frame in self.frames(seq, flags, segment) {
            if matches!(segment.craft, Craft::PartialChecksumInPayload { .. }) {
                // Only a socket with virtio headers can hand the kernel a partial checksum.
                PacketSocket::bind(super::net::SENDER_DEV, true, Duration::from_millis(10))
                    .and_then(|socket| socket.send(&frame))
                    .unwrap_or_else(|e| panic!("sending a partial-checksum segment: {e}"));
                continue;
            }
            self.socket
                .send(&frame)
                .unwrap_or_else(|e| panic!("sending a segment: {e}"));
        }
        self.report.log.push(format!(
            "{why}: offset {} {:?}{}{}{}{}{}",
            segment.offset,
            String::from_utf8_lossy(&segment.data),
            if segment.fin { " FIN" } else { "" },
            segment
                .urgent
                .map_or(String::new(), |p| format!(" URG ptr {p}")),
            if segment.ttl != 64 {
                format!(" TTL {}", segment.ttl)
            } else {
                String::new()
            },
            if segment.bad_checksum {
                " bad checksum"
            } else {
                ""
            },
            if segment.craft == Craft::Plain {
                String::new()
            } else {
                format!(" {:?}", segment.craft)
            },
        ));
    }

    /// Reads the client's segments for `duration`, keeping the highest acknowledgment.
    fn observe(&mut self, duration: Duration) {
        let end = Instant::now() + duration;
        let mut buf = vec![0u8; 2048];
        while Instant::now() < end {
            let Some(n) = self
                .socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("receiving: {e}"))
            else {
                continue;
            };
            let Some(seg) = parse_client_segment(&buf[..n], self.family) else {
                continue;
            };
            if seg.src_port != self.client_port {
                continue;
            }
            if seg.flags & tcp_flags::RST != 0 {
                if !self.report.client_reset {
                    self.report.log.push("client reset".to_owned());
                }
                self.report.client_reset = true;
            } else if seg.flags & tcp_flags::ACK != 0 {
                // Offsets are small and positive here; a wrapping difference read as signed
                // keeps an old acknowledgment from looking like a huge one.
                let acked = seg.ack.wrapping_sub(self.isn.wrapping_add(1)) as i32;
                if acked > self.report.acked as i32 {
                    self.report.acked = acked as u32;
                }
            }
        }
    }
}

/// Serves one connection on `socket` (bound to the sender's interface) over `family`:
/// handshake, script, retransmissions. Panics if no client connects within the handshake
/// deadline.
pub fn serve(socket: &PacketSocket, script: &Script, family: Family) -> SenderReport {
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let syn = loop {
        assert!(
            start.elapsed() < HANDSHAKE_WITHIN,
            "the adversarial sender saw no SYN within {HANDSHAKE_WITHIN:?}"
        );
        let Some(n) = socket.recv(&mut buf).expect("receiving the SYN") else {
            continue;
        };
        if let Some(seg) = parse_client_segment(&buf[..n], family) {
            if seg.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN {
                break seg;
            }
        }
    };
    let mut conn = Connection {
        socket,
        family,
        client_port: syn.src_port,
        rcv_next: syn.seq.wrapping_add(1),
        isn: script.isn,
        report: SenderReport::default(),
    };
    // MSS 1460: the only option; no window scaling, no timestamps, no SACK.
    let syn_ack = conn.frame(
        script.isn,
        tcp_flags::SYN | tcp_flags::ACK,
        None,
        &[2, 4, 0x05, 0xb4],
    );
    socket.send(&syn_ack).expect("sending the SYN-ACK");
    conn.report.log.push("SYN-ACK".to_owned());
    // Wait for the ACK of our SYN (the client resends its SYN if our SYN-ACK was lost).
    loop {
        assert!(
            start.elapsed() < HANDSHAKE_WITHIN,
            "the client never acknowledged the SYN-ACK: {:?}",
            conn.report.log
        );
        let Some(n) = socket.recv(&mut buf).expect("receiving the ACK") else {
            continue;
        };
        let Some(seg) = parse_client_segment(&buf[..n], family) else {
            continue;
        };
        if seg.src_port != conn.client_port {
            continue;
        }
        if seg.flags & tcp_flags::SYN != 0 {
            socket.send(&syn_ack).expect("resending the SYN-ACK");
        } else if seg.flags & tcp_flags::ACK != 0 && seg.ack == script.isn.wrapping_add(1) {
            break;
        }
    }
    conn.report.log.push("established".to_owned());

    for segment in &script.segments {
        conn.send_segment(segment, "script");
        conn.observe(AFTER_EACH_SEGMENT);
    }

    // A persistent sender: fill what the client has not acknowledged, then close.
    let len = script.stream.len() as u32;
    for _ in 0..ROUNDS {
        conn.observe(ROUND);
        if conn.report.client_reset || conn.report.acked > len {
            break;
        }
        let from = conn.report.acked;
        let segment = if from < len {
            let end = (from as usize + MAX_SEGMENT).min(script.stream.len());
            Segment::data(from, &script.stream[from as usize..end])
        } else {
            Segment::fin(len)
        };
        conn.send_segment(&segment, "retransmit");
        conn.report.after_script += 1;
    }
    conn.report
}
