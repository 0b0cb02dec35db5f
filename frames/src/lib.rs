//! lagic-frames: building Ethernet frames for `lagic run`, test runs, equivalence and
//! adversarial tests, and benchmarks.
//!
//! Why a crate of its own: `lagic run --payload` frames a payload and runs it through the
//! diode with `BPF_PROG_TEST_RUN` at run time, so the CLI needs a frame builder as much as
//! the tests do. Running a frame is a kernel access and stays in `lagic-loader` (next to its
//! other bpf(2) calls); building the frame is plain bytes and needs no kernel, so it lives
//! here, outside the loader's public API, and the CLI, the tests and the benchmarks depend on
//! it directly. The skip-or-fail gates of the tests live in `lagic-testkit`, which nothing
//! but tests uses.
//!
//! A [`Frame`] is plain data, one value per layer: an [`Ethernet`] header (with optional VLAN
//! tags), a network layer `N` ([`Ipv4`], [`Ipv6`], [`Arp`] or [`OtherEthertype`]), a transport
//! layer `T` ([`Tcp`], [`Udp`], [`Icmpv6`], [`RawTransport`] or [`NoTransport`]), the payload,
//! trailing bytes after the IP packet (Ethernet padding), and an optional truncation. Chained
//! methods set fields; the layer types select which methods exist, so `ttl` is offered only
//! for IPv4 frames and `tcp_options` only for TCP frames:
//!
//! ```
//! use lagic_frames::Frame;
//! let bytes = Frame::ipv4()
//!     .ip_options(&[0x01, 0x01, 0x01, 0x00])
//!     .tcp()
//!     .tcp_options(&[0x02, 0x04, 0x05, 0xb4])
//!     .payload(b"GET / HTTP/1.1\r\n")
//!     .build();
//! assert_eq!(bytes.len(), 14 + 24 + 24 + 16);
//! ```
//!
//! Invariants of [`Frame::build`]: every length, offset and checksum field is derived from
//! the bytes actually written (so the default frame is well formed) unless an override says
//! otherwise; an override is written verbatim and nothing else is adjusted to match it, which
//! is how malformed frames are made. Fields too narrow for a derived value (a 16-bit length of
//! a larger packet, a 4-bit header length of over-long options) keep its low bits. Truncation
//! applies last, after every checksum.

/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86DD;
/// TPID of an IEEE 802.1Q (customer VLAN) tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// TPID of an IEEE 802.1ad (service VLAN, "QinQ" outer) tag.
pub const ETH_P_8021AD: u16 = 0x88A8;

/// IP protocol / next-header numbers.
pub const IPPROTO_HOPOPTS: u8 = 0;
/// TCP.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IPv6 routing header.
pub const IPPROTO_ROUTING: u8 = 43;
/// IPv6 fragment header.
pub const IPPROTO_FRAGMENT: u8 = 44;
/// IPv6 authentication header.
pub const IPPROTO_AH: u8 = 51;
/// ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 "no next header".
pub const IPPROTO_NONE: u8 = 59;
/// IPv6 destination options header.
pub const IPPROTO_DSTOPTS: u8 = 60;

/// TCP flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

/// Length of an Ethernet II header without tags.
pub const ETH_HLEN: usize = 14;

/// IP version of a TCP frame built by [`tcp_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// A well-formed Ethernet/IP/TCP frame (PSH|ACK, default addresses and ports) carrying
/// `payload`, with no options, tags or padding.
pub fn tcp_frame(payload: &[u8], version: IpVersion) -> Vec<u8> {
    match version {
        IpVersion::V4 => Frame::ipv4().payload(payload).build(),
        IpVersion::V6 => Frame::ipv6().payload(payload).build(),
    }
}

/// One VLAN tag: TPID then TCI (PCP, DEI and VLAN id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// Tag protocol identifier, [`ETH_P_8021Q`] or [`ETH_P_8021AD`].
    pub tpid: u16,
    /// Tag control information.
    pub tci: u16,
}

impl VlanTag {
    /// An 802.1Q tag with VLAN id `vid`.
    pub fn dot1q(vid: u16) -> Self {
        Self {
            tpid: ETH_P_8021Q,
            tci: vid & 0x0FFF,
        }
    }

    /// An 802.1ad (outer, service) tag with VLAN id `vid`.
    pub fn dot1ad(vid: u16) -> Self {
        Self {
            tpid: ETH_P_8021AD,
            tci: vid & 0x0FFF,
        }
    }
}

/// The Ethernet II header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ethernet {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// VLAN tags, outermost first, between the source MAC and the EtherType.
    pub tags: Vec<VlanTag>,
    /// EtherType to write instead of the network layer's own.
    pub ethertype: Option<u16>,
}

impl Default for Ethernet {
    fn default() -> Self {
        Self {
            dst: [0x02, 0, 0, 0, 0, 0x01],
            src: [0x02, 0, 0, 0, 0, 0x02],
            tags: Vec::new(),
            ethertype: None,
        }
    }
}

/// The source and destination addresses a transport checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoHeader {
    /// IPv4 addresses.
    V4 {
        /// Source.
        src: [u8; 4],
        /// Destination.
        dst: [u8; 4],
    },
    /// IPv6 addresses.
    V6 {
        /// Source.
        src: [u8; 16],
        /// Destination.
        dst: [u8; 16],
    },
}

/// A network layer: what follows the EtherType.
pub trait NetworkLayer {
    /// The EtherType announcing this layer.
    fn ethertype(&self) -> u16;
    /// The addresses transport checksums cover; `None` for non-IP layers.
    fn pseudo_header(&self) -> Option<PseudoHeader>;
    /// Appends this layer's header, then `upper` (the transport segment, whose protocol
    /// number is `upper_protocol`), to `out`; returns the header length.
    fn write(&self, upper_protocol: Option<u8>, upper: &[u8], out: &mut Vec<u8>) -> usize;
}

/// A transport layer: what an IP header carries.
pub trait TransportLayer {
    /// The IP protocol number announcing this layer; `None` for no transport layer.
    fn protocol(&self) -> Option<u8>;
    /// Appends this layer's header, then `payload`, to `out`; returns the header length.
    /// `pseudo` gives the addresses for checksums (`None` outside IP: checksum 0).
    fn write(&self, payload: &[u8], pseudo: Option<&PseudoHeader>, out: &mut Vec<u8>) -> usize;
}

/// Internet checksum (RFC 1071) of `bytes`: the ones' complement of the ones' complement sum
/// of big-endian 16-bit words, an odd last byte padded with zero.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Checksum of a transport segment under its pseudo-header (RFC 793 / RFC 8200 §8.1).
fn transport_checksum(pseudo: &PseudoHeader, protocol: u8, segment: &[u8]) -> u16 {
    let mut buf = Vec::with_capacity(40 + segment.len());
    match pseudo {
        PseudoHeader::V4 { src, dst } => {
            buf.extend_from_slice(src);
            buf.extend_from_slice(dst);
            buf.push(0);
            buf.push(protocol);
            buf.extend_from_slice(&len16(segment.len()).to_be_bytes());
        }
        PseudoHeader::V6 { src, dst } => {
            buf.extend_from_slice(src);
            buf.extend_from_slice(dst);
            buf.extend_from_slice(&(segment.len() as u32).to_be_bytes());
            buf.extend_from_slice(&[0, 0, 0, protocol]);
        }
    }
    buf.extend_from_slice(segment);
    internet_checksum(&buf)
}

/// A length as a 16-bit field keeps its low bits (see the module invariants).
fn len16(len: usize) -> u16 {
    (len & 0xFFFF) as u16
}

/// Pads `bytes` with zeros to a multiple of 4.
fn padded4(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.resize(bytes.len().div_ceil(4) * 4, 0);
    out
}

/// The IPv4 header. Defaults: 10.0.0.2 → 10.0.0.1, TTL 64, DF clear, not a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4 {
    /// Version field (4 unless testing a bad one).
    pub version: u8,
    /// IHL to write instead of the header's length in 32-bit words.
    pub ihl: Option<u8>,
    /// Type of service / DSCP+ECN.
    pub tos: u8,
    /// Total length to write instead of header + transport length.
    pub total_len: Option<u16>,
    /// Identification.
    pub id: u16,
    /// The reserved ("evil") flag bit.
    pub reserved_flag: bool,
    /// Don't fragment.
    pub dont_fragment: bool,
    /// More fragments.
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units (13 bits).
    pub fragment_offset: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol to write instead of the transport layer's.
    pub protocol: Option<u8>,
    /// Header checksum to write instead of the correct one.
    pub checksum: Option<u16>,
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Option bytes, zero-padded (EOL) to a multiple of 4 when written.
    pub options: Vec<u8>,
}

impl Default for Ipv4 {
    fn default() -> Self {
        Self {
            version: 4,
            ihl: None,
            tos: 0,
            total_len: None,
            id: 0x1234,
            reserved_flag: false,
            dont_fragment: false,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: None,
            checksum: None,
            src: [10, 0, 0, 2],
            dst: [10, 0, 0, 1],
            options: Vec::new(),
        }
    }
}

impl NetworkLayer for Ipv4 {
    fn ethertype(&self) -> u16 {
        ETH_P_IP
    }

    fn pseudo_header(&self) -> Option<PseudoHeader> {
        Some(PseudoHeader::V4 {
            src: self.src,
            dst: self.dst,
        })
    }

    fn write(&self, upper_protocol: Option<u8>, upper: &[u8], out: &mut Vec<u8>) -> usize {
        let options = padded4(&self.options);
        let header_len = 20 + options.len();
        let ihl = self.ihl.unwrap_or((header_len / 4) as u8) & 0x0F;
        let total_len = self
            .total_len
            .unwrap_or_else(|| len16(header_len + upper.len()));
        let flags_fragment = (u16::from(self.reserved_flag) << 15)
            | (u16::from(self.dont_fragment) << 14)
            | (u16::from(self.more_fragments) << 13)
            | (self.fragment_offset & 0x1FFF);
        // Raw IP with no transport layer: 255 is IANA's "reserved".
        let protocol = self.protocol.or(upper_protocol).unwrap_or(255);

        let start = out.len();
        out.push((self.version << 4) | ihl);
        out.push(self.tos);
        out.extend_from_slice(&total_len.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&flags_fragment.to_be_bytes());
        out.push(self.ttl);
        out.push(protocol);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.src);
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&options);
        let checksum = self
            .checksum
            .unwrap_or_else(|| internet_checksum(&out[start..]));
        out[start + 10..start + 12].copy_from_slice(&checksum.to_be_bytes());
        out.extend_from_slice(upper);
        header_len
    }
}

/// One IPv6 extension header: its type (the Next Header value that announces it) and every
/// byte after its own Next Header byte. [`Frame::build`] fills in the Next Header bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtHeader {
    /// The Next Header value announcing this header ([`IPPROTO_HOPOPTS`], ...).
    pub header_type: u8,
    /// The header's bytes after its Next Header byte, length byte included.
    pub body: Vec<u8>,
}

impl ExtHeader {
    /// A header of type `header_type` with `body` written verbatim after the Next Header byte.
    pub fn raw(header_type: u8, body: &[u8]) -> Self {
        Self {
            header_type,
            body: body.to_vec(),
        }
    }

    /// A Hop-by-Hop Options header holding `options` (TLV bytes), padded with Pad1/PadN to a
    /// multiple of 8 bytes.
    pub fn hop_by_hop(options: &[u8]) -> Self {
        Self::options_header(IPPROTO_HOPOPTS, options)
    }

    /// A Destination Options header holding `options`, padded like [`ExtHeader::hop_by_hop`].
    pub fn destination_options(options: &[u8]) -> Self {
        Self::options_header(IPPROTO_DSTOPTS, options)
    }

    /// A Routing header of `routing_type` with `segments_left` and type-specific `data`,
    /// zero-padded to a multiple of 8 bytes.
    pub fn routing(routing_type: u8, segments_left: u8, data: &[u8]) -> Self {
        let total = (4 + data.len()).div_ceil(8).max(1) * 8;
        let mut body = vec![ext_len_units(total), routing_type, segments_left];
        body.extend_from_slice(data);
        body.resize(total - 1, 0);
        Self {
            header_type: IPPROTO_ROUTING,
            body,
        }
    }

    /// A Fragment header: `offset` in 8-byte units, the M flag, and the identification.
    pub fn fragment(offset: u16, more_fragments: bool, id: u32) -> Self {
        let offset_flags = ((offset & 0x1FFF) << 3) | u16::from(more_fragments);
        let mut body = vec![0];
        body.extend_from_slice(&offset_flags.to_be_bytes());
        body.extend_from_slice(&id.to_be_bytes());
        Self {
            header_type: IPPROTO_FRAGMENT,
            body,
        }
    }

    fn options_header(header_type: u8, options: &[u8]) -> Self {
        let unpadded = 2 + options.len();
        let total = unpadded.div_ceil(8) * 8;
        let mut body = vec![ext_len_units(total)];
        body.extend_from_slice(options);
        match total - unpadded {
            0 => {}
            1 => body.push(0), // Pad1
            pad => {
                body.push(1); // PadN
                body.push((pad - 2) as u8);
                body.resize(body.len() + pad - 2, 0);
            }
        }
        Self { header_type, body }
    }
}

/// The Hdr Ext Len byte: length in 8-octet units, not counting the first 8 octets.
fn ext_len_units(total: usize) -> u8 {
    ((total / 8).saturating_sub(1) & 0xFF) as u8
}

/// The IPv6 header and its chain of extension headers. Defaults: fd00::2 → fd00::1, hop
/// limit 64, no extension headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6 {
    /// Version field (6 unless testing a bad one).
    pub version: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Payload length to write instead of extension headers + transport length.
    pub payload_len: Option<u16>,
    /// First Next Header to write instead of the derived one.
    pub next_header: Option<u8>,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Extension headers in order; each one's Next Header names the following one, the last
    /// one's names the transport layer.
    pub ext_headers: Vec<ExtHeader>,
}

impl Default for Ipv6 {
    fn default() -> Self {
        let mut src = [0u8; 16];
        src[0] = 0xfd;
        src[15] = 2;
        let mut dst = src;
        dst[15] = 1;
        Self {
            version: 6,
            traffic_class: 0,
            flow_label: 0,
            payload_len: None,
            next_header: None,
            hop_limit: 64,
            src,
            dst,
            ext_headers: Vec::new(),
        }
    }
}

impl NetworkLayer for Ipv6 {
    fn ethertype(&self) -> u16 {
        ETH_P_IPV6
    }

    fn pseudo_header(&self) -> Option<PseudoHeader> {
        Some(PseudoHeader::V6 {
            src: self.src,
            dst: self.dst,
        })
    }

    fn write(&self, upper_protocol: Option<u8>, upper: &[u8], out: &mut Vec<u8>) -> usize {
        let upper_protocol = upper_protocol.unwrap_or(IPPROTO_NONE);
        let first = self
            .ext_headers
            .first()
            .map_or(upper_protocol, |h| h.header_type);
        let ext_len: usize = self.ext_headers.iter().map(|h| 1 + h.body.len()).sum();
        let payload_len = self
            .payload_len
            .unwrap_or_else(|| len16(ext_len + upper.len()));
        let word0 = (u32::from(self.version & 0x0F) << 28)
            | (u32::from(self.traffic_class) << 20)
            | (self.flow_label & 0x000F_FFFF);

        out.extend_from_slice(&word0.to_be_bytes());
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.push(self.next_header.unwrap_or(first));
        out.push(self.hop_limit);
        out.extend_from_slice(&self.src);
        out.extend_from_slice(&self.dst);
        for (i, header) in self.ext_headers.iter().enumerate() {
            let next = self
                .ext_headers
                .get(i + 1)
                .map_or(upper_protocol, |h| h.header_type);
            out.push(next);
            out.extend_from_slice(&header.body);
        }
        out.extend_from_slice(upper);
        40 + ext_len
    }
}

/// An Ethernet/IPv4 ARP packet. Defaults: a request from 10.0.0.2 for 10.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arp {
    /// Operation: 1 request, 2 reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: [u8; 4],
    /// Target hardware address.
    pub target_mac: [u8; 6],
    /// Target protocol address.
    pub target_ip: [u8; 4],
}

impl Default for Arp {
    fn default() -> Self {
        Self {
            op: 1,
            sender_mac: [0x02, 0, 0, 0, 0, 0x02],
            sender_ip: [10, 0, 0, 2],
            target_mac: [0; 6],
            target_ip: [10, 0, 0, 1],
        }
    }
}

impl NetworkLayer for Arp {
    fn ethertype(&self) -> u16 {
        ETH_P_ARP
    }

    fn pseudo_header(&self) -> Option<PseudoHeader> {
        None
    }

    fn write(&self, _upper_protocol: Option<u8>, upper: &[u8], out: &mut Vec<u8>) -> usize {
        out.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
        out.extend_from_slice(&ETH_P_IP.to_be_bytes());
        out.push(6);
        out.push(4);
        out.extend_from_slice(&self.op.to_be_bytes());
        out.extend_from_slice(&self.sender_mac);
        out.extend_from_slice(&self.sender_ip);
        out.extend_from_slice(&self.target_mac);
        out.extend_from_slice(&self.target_ip);
        out.extend_from_slice(upper);
        28
    }
}

/// Any other EtherType: the payload is the whole body after the Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherEthertype {
    /// The EtherType.
    pub ethertype: u16,
}

impl NetworkLayer for OtherEthertype {
    fn ethertype(&self) -> u16 {
        self.ethertype
    }

    fn pseudo_header(&self) -> Option<PseudoHeader> {
        None
    }

    fn write(&self, _upper_protocol: Option<u8>, upper: &[u8], out: &mut Vec<u8>) -> usize {
        out.extend_from_slice(upper);
        0
    }
}

/// The TCP header. Defaults: port 40000 → 8080, seq 1, ack 1, PSH|ACK, window 65535.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Data offset to write instead of the header's length in 32-bit words.
    pub data_offset: Option<u8>,
    /// Flag bits ([`tcp_flags`]).
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Checksum to write instead of the correct one.
    pub checksum: Option<u16>,
    /// Urgent pointer.
    pub urgent: u16,
    /// Option bytes, zero-padded (EOL) to a multiple of 4 when written.
    pub options: Vec<u8>,
}

impl Default for Tcp {
    fn default() -> Self {
        Self {
            src_port: 40000,
            dst_port: 8080,
            seq: 1,
            ack: 1,
            data_offset: None,
            flags: tcp_flags::PSH | tcp_flags::ACK,
            window: 65535,
            checksum: None,
            urgent: 0,
            options: Vec::new(),
        }
    }
}

impl TransportLayer for Tcp {
    fn protocol(&self) -> Option<u8> {
        Some(IPPROTO_TCP)
    }

    fn write(&self, payload: &[u8], pseudo: Option<&PseudoHeader>, out: &mut Vec<u8>) -> usize {
        let options = padded4(&self.options);
        let header_len = 20 + options.len();
        let data_offset = self.data_offset.unwrap_or((header_len / 4) as u8) & 0x0F;
        let start = out.len();
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ack.to_be_bytes());
        out.push(data_offset << 4);
        out.push(self.flags);
        out.extend_from_slice(&self.window.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.urgent.to_be_bytes());
        out.extend_from_slice(&options);
        out.extend_from_slice(payload);
        let checksum = self.checksum.unwrap_or_else(|| {
            pseudo.map_or(0, |p| transport_checksum(p, IPPROTO_TCP, &out[start..]))
        });
        out[start + 16..start + 18].copy_from_slice(&checksum.to_be_bytes());
        header_len
    }
}

/// The UDP header. Defaults: port 40000 → 53.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length to write instead of header + payload length.
    pub length: Option<u16>,
    /// Checksum to write instead of the correct one.
    pub checksum: Option<u16>,
}

impl Default for Udp {
    fn default() -> Self {
        Self {
            src_port: 40000,
            dst_port: 53,
            length: None,
            checksum: None,
        }
    }
}

impl TransportLayer for Udp {
    fn protocol(&self) -> Option<u8> {
        Some(IPPROTO_UDP)
    }

    fn write(&self, payload: &[u8], pseudo: Option<&PseudoHeader>, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        let length = self.length.unwrap_or_else(|| len16(8 + payload.len()));
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(payload);
        let checksum = self.checksum.unwrap_or_else(|| {
            pseudo.map_or(0, |p| {
                // A computed 0 is sent as all ones: 0 means "no checksum" in UDP.
                match transport_checksum(p, IPPROTO_UDP, &out[start..]) {
                    0 => 0xFFFF,
                    sum => sum,
                }
            })
        });
        out[start + 6..start + 8].copy_from_slice(&checksum.to_be_bytes());
        8
    }
}

/// An ICMPv6 message: type, code, checksum, then `body` and the frame's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6 {
    /// Type (133–137 are neighbour discovery).
    pub icmp_type: u8,
    /// Code.
    pub code: u8,
    /// Checksum to write instead of the correct one.
    pub checksum: Option<u16>,
    /// Message body after the 4-byte header (before the frame's payload).
    pub body: Vec<u8>,
}

impl Icmpv6 {
    /// A message of `icmp_type`/`code` whose body is zeros of the fixed length that type
    /// requires (RFC 4861 for neighbour discovery; 4 bytes otherwise, as for echo).
    pub fn new(icmp_type: u8, code: u8) -> Self {
        let body_len = match icmp_type {
            133 => 4,        // router solicitation: reserved
            134 => 12,       // router advertisement
            135 | 136 => 20, // neighbour solicitation / advertisement: flags + target
            137 => 36,       // redirect: reserved + target + destination
            _ => 4,
        };
        Self {
            icmp_type,
            code,
            checksum: None,
            body: vec![0; body_len],
        }
    }
}

impl TransportLayer for Icmpv6 {
    fn protocol(&self) -> Option<u8> {
        Some(IPPROTO_ICMPV6)
    }

    fn write(&self, payload: &[u8], pseudo: Option<&PseudoHeader>, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.push(self.icmp_type);
        out.push(self.code);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.body);
        out.extend_from_slice(payload);
        let checksum = self.checksum.unwrap_or_else(|| {
            pseudo.map_or(0, |p| transport_checksum(p, IPPROTO_ICMPV6, &out[start..]))
        });
        out[start + 2..start + 4].copy_from_slice(&checksum.to_be_bytes());
        4 + self.body.len()
    }
}

/// Any other IP protocol: the payload follows the IP header (and extension headers) directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTransport {
    /// The IP protocol number.
    pub protocol: u8,
}

impl TransportLayer for RawTransport {
    fn protocol(&self) -> Option<u8> {
        Some(self.protocol)
    }

    fn write(&self, payload: &[u8], _pseudo: Option<&PseudoHeader>, out: &mut Vec<u8>) -> usize {
        out.extend_from_slice(payload);
        0
    }
}

/// No transport layer (ARP, other EtherTypes): the payload follows the network layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoTransport;

impl TransportLayer for NoTransport {
    fn protocol(&self) -> Option<u8> {
        None
    }

    fn write(&self, payload: &[u8], _pseudo: Option<&PseudoHeader>, out: &mut Vec<u8>) -> usize {
        out.extend_from_slice(payload);
        0
    }
}

/// Where each layer of a built frame starts, before truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the network layer (after the Ethernet header and tags).
    pub network: usize,
    /// Offset of the transport layer.
    pub transport: usize,
    /// Offset of the payload.
    pub payload: usize,
    /// End of the payload, i.e. of the IP packet (where the trailer starts).
    pub payload_end: usize,
    /// Length of the frame as returned (after trailer, padding and truncation).
    pub len: usize,
}

/// A frame under construction: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<N, T> {
    /// The Ethernet header.
    pub ethernet: Ethernet,
    /// The network layer.
    pub network: N,
    /// The transport layer.
    pub transport: T,
    /// The payload after the transport header.
    pub payload: Vec<u8>,
    /// Bytes after the IP packet, inside the frame (Ethernet padding or junk).
    pub trailer: Vec<u8>,
    /// After the trailer, zero bytes up to this frame length (60 is Ethernet's minimum).
    pub pad_to: Option<usize>,
    /// Cut the finished frame to this many bytes.
    pub truncate_to: Option<usize>,
}

impl<N, T> Frame<N, T> {
    fn with_layers(network: N, transport: T) -> Self {
        Self {
            ethernet: Ethernet::default(),
            network,
            transport,
            payload: Vec::new(),
            trailer: Vec::new(),
            pad_to: None,
            truncate_to: None,
        }
    }

    fn map_transport<U>(self, transport: U) -> Frame<N, U> {
        Frame {
            ethernet: self.ethernet,
            network: self.network,
            transport,
            payload: self.payload,
            trailer: self.trailer,
            pad_to: self.pad_to,
            truncate_to: self.truncate_to,
        }
    }
}

impl Frame<Ipv4, Tcp> {
    /// Ethernet / IPv4 / TCP with defaults and an empty payload.
    pub fn ipv4() -> Self {
        Self::with_layers(Ipv4::default(), Tcp::default())
    }
}

impl Frame<Ipv6, Tcp> {
    /// Ethernet / IPv6 / TCP with defaults and an empty payload.
    pub fn ipv6() -> Self {
        Self::with_layers(Ipv6::default(), Tcp::default())
    }
}

impl Frame<Arp, NoTransport> {
    /// Ethernet / ARP request.
    pub fn arp() -> Self {
        Self::with_layers(Arp::default(), NoTransport)
    }

    /// ARP operation (1 request, 2 reply).
    pub fn arp_op(mut self, op: u16) -> Self {
        self.network.op = op;
        self
    }
}

impl Frame<OtherEthertype, NoTransport> {
    /// An Ethernet frame of `ethertype` whose body is the payload.
    pub fn other_ethertype(ethertype: u16) -> Self {
        Self::with_layers(OtherEthertype { ethertype }, NoTransport)
    }
}

/// Marker for network layers that carry IP transports.
pub trait IpNetwork: NetworkLayer {}
impl IpNetwork for Ipv4 {}
impl IpNetwork for Ipv6 {}

impl<N: IpNetwork, T> Frame<N, T> {
    /// Replaces the transport layer with a default TCP header.
    pub fn tcp(self) -> Frame<N, Tcp> {
        self.map_transport(Tcp::default())
    }

    /// Replaces the transport layer with a default UDP header.
    pub fn udp(self) -> Frame<N, Udp> {
        self.map_transport(Udp::default())
    }

    /// Replaces the transport layer with an ICMPv6 message (see [`Icmpv6::new`]).
    pub fn icmpv6(self, icmp_type: u8, code: u8) -> Frame<N, Icmpv6> {
        self.map_transport(Icmpv6::new(icmp_type, code))
    }

    /// Replaces the transport layer with bare payload under IP protocol `protocol`.
    pub fn raw_transport(self, protocol: u8) -> Frame<N, RawTransport> {
        self.map_transport(RawTransport { protocol })
    }
}

impl<T> Frame<Ipv4, T> {
    /// Source address.
    pub fn src(mut self, ip: [u8; 4]) -> Self {
        self.network.src = ip;
        self
    }

    /// Destination address.
    pub fn dst(mut self, ip: [u8; 4]) -> Self {
        self.network.dst = ip;
        self
    }

    /// Time to live.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.network.ttl = ttl;
        self
    }

    /// IPv4 option bytes (zero-padded to a multiple of 4).
    pub fn ip_options(mut self, options: &[u8]) -> Self {
        self.network.options = options.to_vec();
        self
    }

    /// Writes `ihl` as the IHL instead of the real header length.
    pub fn ihl(mut self, ihl: u8) -> Self {
        self.network.ihl = Some(ihl);
        self
    }

    /// Writes `total_len` as the total length instead of the real one.
    pub fn total_len(mut self, total_len: u16) -> Self {
        self.network.total_len = Some(total_len);
        self
    }

    /// Fragment offset (8-byte units) and the MF flag.
    pub fn fragment(mut self, offset: u16, more_fragments: bool) -> Self {
        self.network.fragment_offset = offset;
        self.network.more_fragments = more_fragments;
        self
    }

    /// The DF flag.
    pub fn dont_fragment(mut self, df: bool) -> Self {
        self.network.dont_fragment = df;
        self
    }

    /// Writes `protocol` instead of the transport layer's protocol number.
    pub fn ip_protocol(mut self, protocol: u8) -> Self {
        self.network.protocol = Some(protocol);
        self
    }

    /// Writes `checksum` instead of the correct header checksum.
    pub fn ip_checksum(mut self, checksum: u16) -> Self {
        self.network.checksum = Some(checksum);
        self
    }

    /// Writes `version` as the IP version.
    pub fn ip_version(mut self, version: u8) -> Self {
        self.network.version = version;
        self
    }
}

impl<T> Frame<Ipv6, T> {
    /// Source address.
    pub fn src(mut self, ip: [u8; 16]) -> Self {
        self.network.src = ip;
        self
    }

    /// Destination address.
    pub fn dst(mut self, ip: [u8; 16]) -> Self {
        self.network.dst = ip;
        self
    }

    /// Hop limit.
    pub fn hop_limit(mut self, hop_limit: u8) -> Self {
        self.network.hop_limit = hop_limit;
        self
    }

    /// Appends an extension header to the chain.
    pub fn ext_header(mut self, header: ExtHeader) -> Self {
        self.network.ext_headers.push(header);
        self
    }

    /// Writes `payload_len` as the payload length instead of the real one.
    pub fn payload_len(mut self, payload_len: u16) -> Self {
        self.network.payload_len = Some(payload_len);
        self
    }

    /// Writes `next_header` as the IPv6 header's Next Header instead of the derived one.
    pub fn next_header(mut self, next_header: u8) -> Self {
        self.network.next_header = Some(next_header);
        self
    }

    /// Writes `version` as the IP version.
    pub fn ip_version(mut self, version: u8) -> Self {
        self.network.version = version;
        self
    }
}

impl<N> Frame<N, Tcp> {
    /// Source and destination ports.
    pub fn ports(mut self, src: u16, dst: u16) -> Self {
        self.transport.src_port = src;
        self.transport.dst_port = dst;
        self
    }

    /// Sequence number.
    pub fn seq(mut self, seq: u32) -> Self {
        self.transport.seq = seq;
        self
    }

    /// Acknowledgment number.
    pub fn ack(mut self, ack: u32) -> Self {
        self.transport.ack = ack;
        self
    }

    /// Flag bits ([`tcp_flags`]).
    pub fn tcp_flags(mut self, flags: u8) -> Self {
        self.transport.flags = flags;
        self
    }

    /// TCP option bytes (zero-padded to a multiple of 4).
    pub fn tcp_options(mut self, options: &[u8]) -> Self {
        self.transport.options = options.to_vec();
        self
    }

    /// Writes `data_offset` instead of the real header length in 32-bit words.
    pub fn data_offset(mut self, data_offset: u8) -> Self {
        self.transport.data_offset = Some(data_offset);
        self
    }

    /// Writes `checksum` instead of the correct TCP checksum.
    pub fn tcp_checksum(mut self, checksum: u16) -> Self {
        self.transport.checksum = Some(checksum);
        self
    }
}

impl<N> Frame<N, Udp> {
    /// Source and destination ports.
    pub fn ports(mut self, src: u16, dst: u16) -> Self {
        self.transport.src_port = src;
        self.transport.dst_port = dst;
        self
    }

    /// Writes `length` instead of the real UDP length.
    pub fn udp_len(mut self, length: u16) -> Self {
        self.transport.length = Some(length);
        self
    }
}

impl<N: NetworkLayer, T: TransportLayer> Frame<N, T> {
    /// The payload after the transport header.
    pub fn payload(mut self, payload: impl AsRef<[u8]>) -> Self {
        self.payload = payload.as_ref().to_vec();
        self
    }

    /// Bytes after the IP packet (Ethernet padding that must never be judged as payload).
    pub fn trailer(mut self, trailer: &[u8]) -> Self {
        self.trailer = trailer.to_vec();
        self
    }

    /// Zero-pads the frame (after any trailer) to at least `len` bytes; 60 is Ethernet's
    /// minimum frame without FCS.
    pub fn pad_to(mut self, len: usize) -> Self {
        self.pad_to = Some(len);
        self
    }

    /// Cuts the finished frame to at most `len` bytes.
    pub fn truncate(mut self, len: usize) -> Self {
        self.truncate_to = Some(len);
        self
    }

    /// Destination MAC.
    pub fn dst_mac(mut self, mac: [u8; 6]) -> Self {
        self.ethernet.dst = mac;
        self
    }

    /// Source MAC.
    pub fn src_mac(mut self, mac: [u8; 6]) -> Self {
        self.ethernet.src = mac;
        self
    }

    /// Adds a VLAN tag inside those already present (call outermost first).
    pub fn vlan(mut self, tag: VlanTag) -> Self {
        self.ethernet.tags.push(tag);
        self
    }

    /// Writes `ethertype` instead of the network layer's EtherType.
    pub fn ethertype(mut self, ethertype: u16) -> Self {
        self.ethernet.ethertype = Some(ethertype);
        self
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        self.build_with_layout().0
    }

    /// The frame's bytes and where each layer starts.
    pub fn build_with_layout(&self) -> (Vec<u8>, Layout) {
        let mut segment = Vec::with_capacity(64 + self.payload.len());
        let transport_header = self.transport.write(
            &self.payload,
            self.network.pseudo_header().as_ref(),
            &mut segment,
        );

        let mut out = Vec::with_capacity(ETH_HLEN + 64 + segment.len() + self.trailer.len());
        out.extend_from_slice(&self.ethernet.dst);
        out.extend_from_slice(&self.ethernet.src);
        for tag in &self.ethernet.tags {
            out.extend_from_slice(&tag.tpid.to_be_bytes());
            out.extend_from_slice(&tag.tci.to_be_bytes());
        }
        let ethertype = self
            .ethernet
            .ethertype
            .unwrap_or_else(|| self.network.ethertype());
        out.extend_from_slice(&ethertype.to_be_bytes());
        let network = out.len();
        let network_header = self
            .network
            .write(self.transport.protocol(), &segment, &mut out);
        let payload_end = out.len();
        out.extend_from_slice(&self.trailer);
        if let Some(min) = self.pad_to {
            if out.len() < min {
                out.resize(min, 0);
            }
        }
        if let Some(len) = self.truncate_to {
            out.truncate(len);
        }
        let transport = network + network_header;
        let layout = Layout {
            network,
            transport,
            payload: transport + transport_header,
            payload_end,
            len: out.len(),
        };
        (out, layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent ones' complement fold: sum 16-bit words in u64, fold at the end. A
    /// correct checksum makes the covered bytes (checksum field included) sum to 0xFFFF.
    fn folds_to_all_ones(bytes: &[u8]) -> bool {
        let mut sum: u64 = 0;
        for (i, b) in bytes.iter().enumerate() {
            sum += if i % 2 == 0 {
                u64::from(*b) << 8
            } else {
                u64::from(*b)
            };
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        sum == 0xFFFF
    }

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn v4_pseudo(frame: &[u8], ip: usize, protocol: u8, segment_len: usize) -> Vec<u8> {
        let mut p = frame[ip + 12..ip + 20].to_vec();
        p.extend_from_slice(&[0, protocol]);
        p.extend_from_slice(&(segment_len as u16).to_be_bytes());
        p
    }

    fn v6_pseudo(frame: &[u8], ip: usize, protocol: u8, segment_len: usize) -> Vec<u8> {
        let mut p = frame[ip + 8..ip + 40].to_vec();
        p.extend_from_slice(&(segment_len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, protocol]);
        p
    }

    #[test]
    fn rfc1071_example_checksum() {
        // The worked example of RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), !0xddf2);
        assert_eq!(internet_checksum(&[0xff]), !0xff00);
        assert_eq!(internet_checksum(&[]), 0xFFFF);
    }

    #[test]
    fn ipv4_tcp_frame_fields_and_checksums() {
        let payload = b"hello, world";
        let frame = tcp_frame(payload, IpVersion::V4);
        assert_eq!(frame.len(), 14 + 20 + 20 + payload.len());
        assert_eq!(&frame[0..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&frame[6..12], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(be16(&frame, 12), ETH_P_IP);
        let ip = 14;
        assert_eq!(frame[ip], 0x45);
        assert_eq!(be16(&frame, ip + 2) as usize, 20 + 20 + payload.len());
        assert_eq!(be16(&frame, ip + 6), 0, "no fragment bits");
        assert_eq!(frame[ip + 8], 64);
        assert_eq!(frame[ip + 9], IPPROTO_TCP);
        assert_eq!(&frame[ip + 12..ip + 16], &[10, 0, 0, 2]);
        assert_eq!(&frame[ip + 16..ip + 20], &[10, 0, 0, 1]);
        assert!(folds_to_all_ones(&frame[ip..ip + 20]));

        let tcp = ip + 20;
        assert_eq!(be16(&frame, tcp), 40000);
        assert_eq!(be16(&frame, tcp + 2), 8080);
        assert_eq!(frame[tcp + 12] >> 4, 5);
        assert_eq!(frame[tcp + 13], tcp_flags::PSH | tcp_flags::ACK);
        assert_eq!(&frame[tcp + 20..], payload);
        let mut covered = v4_pseudo(&frame, ip, IPPROTO_TCP, frame.len() - tcp);
        covered.extend_from_slice(&frame[tcp..]);
        assert!(folds_to_all_ones(&covered));
    }

    #[test]
    fn ipv6_tcp_frame_fields_and_checksums() {
        let payload = b"odd";
        let frame = tcp_frame(payload, IpVersion::V6);
        assert_eq!(frame.len(), 14 + 40 + 20 + 3);
        assert_eq!(be16(&frame, 12), ETH_P_IPV6);
        let ip = 14;
        assert_eq!(frame[ip] >> 4, 6);
        assert_eq!(be16(&frame, ip + 4), 23);
        assert_eq!(frame[ip + 6], IPPROTO_TCP);
        assert_eq!(frame[ip + 7], 64);
        let tcp = ip + 40;
        let mut covered = v6_pseudo(&frame, ip, IPPROTO_TCP, frame.len() - tcp);
        covered.extend_from_slice(&frame[tcp..]);
        assert!(folds_to_all_ones(&covered));
    }

    #[test]
    fn options_set_header_lengths_and_are_padded() {
        let (frame, layout) = Frame::ipv4()
            .ip_options(&[0x94, 0x04, 0, 0, 0x01]) // router alert + NOP: 5 bytes -> 8
            .tcp_options(&[0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03]) // 7 bytes -> 8
            .payload(b"x")
            .build_with_layout();
        assert_eq!(frame[14], 0x47, "IHL 7 = 28 bytes");
        assert_eq!(&frame[34..42], &[0x94, 0x04, 0, 0, 0x01, 0, 0, 0]);
        assert_eq!(layout.transport, 14 + 28);
        assert_eq!(
            frame[layout.transport + 12] >> 4,
            7,
            "data offset 7 = 28 bytes"
        );
        assert_eq!(layout.payload, 14 + 28 + 28);
        assert_eq!(&frame[layout.payload..], b"x");
        assert_eq!(be16(&frame, 16) as usize, 28 + 28 + 1);
        assert!(folds_to_all_ones(&frame[14..14 + 28]));
        let tcp = layout.transport;
        let mut covered = v4_pseudo(&frame, 14, IPPROTO_TCP, frame.len() - tcp);
        covered.extend_from_slice(&frame[tcp..]);
        assert!(folds_to_all_ones(&covered));
    }

    #[test]
    fn overrides_are_written_verbatim_and_checksum_still_matches_header() {
        let frame = Frame::ipv4()
            .ihl(4)
            .total_len(9999)
            .fragment(185, true)
            .dont_fragment(true)
            .ip_protocol(99)
            .ttl(1)
            .data_offset(15)
            .payload(b"abc")
            .build();
        assert_eq!(frame[14], 0x44);
        assert_eq!(be16(&frame, 16), 9999);
        assert_eq!(be16(&frame, 20), 0x4000 | 0x2000 | 185);
        assert_eq!(frame[22], 1);
        assert_eq!(frame[23], 99);
        assert!(
            folds_to_all_ones(&frame[14..34]),
            "checksum covers the overrides"
        );
        assert_eq!(frame[34 + 12] >> 4, 15);
        // Overrides of checksums are verbatim too.
        let bad = Frame::ipv4().ip_checksum(0xBEEF).tcp_checksum(0).build();
        assert_eq!(be16(&bad, 24), 0xBEEF);
        assert_eq!(be16(&bad, 34 + 16), 0);
    }

    #[test]
    fn vlan_tags_shift_the_network_layer() {
        let (frame, layout) = Frame::ipv4()
            .vlan(VlanTag::dot1ad(100))
            .vlan(VlanTag::dot1q(5))
            .payload(b"p")
            .build_with_layout();
        assert_eq!(be16(&frame, 12), ETH_P_8021AD);
        assert_eq!(be16(&frame, 14), 100);
        assert_eq!(be16(&frame, 16), ETH_P_8021Q);
        assert_eq!(be16(&frame, 18), 5);
        assert_eq!(be16(&frame, 20), ETH_P_IP);
        assert_eq!(layout.network, 22);
        assert_eq!(frame[22], 0x45);
        assert_eq!(frame.len(), 22 + 20 + 20 + 1);
    }

    #[test]
    fn ipv6_extension_chain_links_next_headers() {
        let (frame, layout) = Frame::ipv6()
            .ext_header(ExtHeader::hop_by_hop(&[]))
            .ext_header(ExtHeader::routing(0, 0, &[]))
            .ext_header(ExtHeader::fragment(0, true, 7))
            .ext_header(ExtHeader::destination_options(&[0x01, 0x01, 0]))
            .payload(b"data")
            .build_with_layout();
        let ip = 14;
        assert_eq!(frame[ip + 6], IPPROTO_HOPOPTS);
        let hbh = ip + 40;
        assert_eq!(frame[hbh], IPPROTO_ROUTING);
        assert_eq!(frame[hbh + 1], 0, "8 bytes");
        assert_eq!(&frame[hbh + 2..hbh + 8], &[1, 4, 0, 0, 0, 0], "PadN of 6");
        let rt = hbh + 8;
        assert_eq!(frame[rt], IPPROTO_FRAGMENT);
        assert_eq!(frame[rt + 1], 0);
        let frag = rt + 8;
        assert_eq!(frame[frag], IPPROTO_DSTOPTS);
        assert_eq!(be16(&frame, frag + 2), 1, "offset 0, M set");
        assert_eq!(&frame[frag + 4..frag + 8], &7u32.to_be_bytes());
        let dst = frag + 8;
        assert_eq!(frame[dst], IPPROTO_TCP);
        assert_eq!(
            &frame[dst + 2..dst + 8],
            &[1, 1, 0, 1, 1, 0],
            "options, then PadN of 3"
        );
        assert_eq!(layout.transport, dst + 8);
        assert_eq!(be16(&frame, ip + 4) as usize, 32 + 20 + 4);
        let mut covered = v6_pseudo(&frame, ip, IPPROTO_TCP, frame.len() - layout.transport);
        covered.extend_from_slice(&frame[layout.transport..]);
        assert!(folds_to_all_ones(&covered));
        // A longer option area spills into a second 8-byte unit.
        let long = ExtHeader::hop_by_hop(&[0x1e, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(long.body.len() + 1, 16);
        assert_eq!(long.body[0], 1);
    }

    #[test]
    fn ipv6_overrides() {
        let frame = Frame::ipv6()
            .payload_len(3)
            .next_header(IPPROTO_HOPOPTS)
            .payload(b"0123456789")
            .build();
        assert_eq!(be16(&frame, 18), 3);
        assert_eq!(frame[20], IPPROTO_HOPOPTS);
    }

    #[test]
    fn trailer_padding_and_truncation() {
        let (frame, layout) = Frame::ipv4()
            .payload(b"ab")
            .trailer(b"ZZ")
            .pad_to(60)
            .build_with_layout();
        assert_eq!(frame.len(), 60);
        assert_eq!(layout.payload_end, 14 + 40 + 2);
        assert_eq!(&frame[56..58], b"ZZ");
        assert!(frame[58..].iter().all(|&b| b == 0));
        assert_eq!(be16(&frame, 16), 42, "IP length excludes the trailer");

        let full = Frame::ipv4().payload(b"hello").build();
        for len in 0..=full.len() + 2 {
            let cut = Frame::ipv4().payload(b"hello").truncate(len).build();
            assert_eq!(cut.len(), len.min(full.len()));
            assert_eq!(&cut[..], &full[..cut.len()]);
        }
    }

    #[test]
    fn udp_icmpv6_arp_and_other_ethertypes() {
        let frame = Frame::ipv4().udp().ports(1234, 53).payload(b"q").build();
        assert_eq!(frame[23], IPPROTO_UDP);
        assert_eq!(be16(&frame, 34), 1234);
        assert_eq!(be16(&frame, 38), 9);
        let mut covered = v4_pseudo(&frame, 14, IPPROTO_UDP, 9);
        covered.extend_from_slice(&frame[34..]);
        assert!(folds_to_all_ones(&covered));

        let (frame, layout) = Frame::ipv6().icmpv6(135, 0).build_with_layout();
        assert_eq!(frame[20], IPPROTO_ICMPV6);
        assert_eq!(frame.len(), 14 + 40 + 24);
        assert_eq!(frame[layout.transport], 135);
        let mut covered = v6_pseudo(&frame, 14, IPPROTO_ICMPV6, 24);
        covered.extend_from_slice(&frame[layout.transport..]);
        assert!(folds_to_all_ones(&covered));

        let frame = Frame::arp().arp_op(2).build();
        assert_eq!(frame.len(), 14 + 28);
        assert_eq!(be16(&frame, 12), ETH_P_ARP);
        assert_eq!(be16(&frame, 20), 2);

        let frame = Frame::other_ethertype(0x88cc).payload([1, 2, 3]).build();
        assert_eq!(frame.len(), 17);
        assert_eq!(be16(&frame, 12), 0x88cc);

        let frame = Frame::ipv4().raw_transport(47).payload(b"gre").build();
        assert_eq!(frame[23], 47);
        assert_eq!(&frame[34..], b"gre");

        let frame = Frame::ipv4().ethertype(ETH_P_IPV6).build();
        assert_eq!(be16(&frame, 12), ETH_P_IPV6);
    }
}
