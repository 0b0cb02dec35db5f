//! Stream diodes in `BPF_PROG_TEST_RUN`: the frames of reference-diode
//! segments, one flow per source port, and what the kernel did with each
//! (passed, dropped, or rewritten into a RST whose checksums are checked).
//! Shared by `stream_kernel.rs` and `stream_http.rs`.

use std::sync::atomic::{AtomicU32, Ordering};

use lagic_frames::{tcp_flags, Frame};
use lagic_loader::LoadedProgram;
use predicate_ir::stream_diode::{DiodeConfig, Flags, Segment, Verdict as RefVerdict};
use predicate_ir::Spec;

/// What the kernel did with one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed unchanged.
    Pass,
    /// Dropped.
    Drop,
    /// The segment came back rewritten into a RST (with ACK, no payload) at
    /// this sequence number, its checksums valid.
    Reset(u32),
}

/// Reads and parses `examples/stream/<name>.json`.
pub fn stream_spec(name: &str) -> Spec {
    let path = crate::repo_root()
        .join("examples/stream")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    predicate_ir::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Lowers, compiles and loads a stream spec.
pub fn load_stream(spec: &Spec) -> LoadedProgram {
    let program = predicate_ir::lower_stream(spec).unwrap();
    let object = emit_bpf::compile_stream_object_with(&program, &emit_bpf::Options::default())
        .unwrap_or_else(|e| panic!("compiling {}: {e}", spec.name));
    LoadedProgram::from_object(&object)
        .unwrap_or_else(|e| panic!("the kernel refused {}: {e}", spec.name))
}

/// The reference diode configured as the kernel diode behaves (docs/stream.md).
pub fn config() -> DiodeConfig {
    DiodeConfig {
        min_ttl: emit_bpf::STREAM_MIN_TTL as u8,
        retain: 0,
    }
}

/// A flow of its own: fresh source port (and source address), IPv4 or
/// IPv6.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// Its source port.
    pub port: u16,
    /// IPv6 rather than IPv4.
    pub v6: bool,
    /// Picks the source address (0: the frame builder's own), so that a
    /// process may make more flows than there are ports (a property run
    /// with many cases).
    pub net: u16,
}

/// Source ports `flow` hands out, from 20,000.
const PORTS: u32 = 45_536;
static NEXT_FLOW: AtomicU32 = AtomicU32::new(0);

/// A new flow with a 4-tuple no other flow of this process has (ports
/// first, then source addresses: 2^32 flows).
pub fn flow(v6: bool) -> Flow {
    let n = NEXT_FLOW.fetch_add(1, Ordering::Relaxed);
    Flow {
        port: (20_000 + n % PORTS) as u16,
        v6,
        net: u16::try_from(n / PORTS).expect("fewer than 2^32 flows"),
    }
}

/// The TCP flag bits of `f` (PSH with a payload).
pub fn flag_bits(f: Flags, has_payload: bool) -> u8 {
    let mut bits = 0;
    for (on, bit) in [
        (f.syn, tcp_flags::SYN),
        (f.ack, tcp_flags::ACK),
        (f.fin, tcp_flags::FIN),
        (f.rst, tcp_flags::RST),
        (f.urg, tcp_flags::URG),
        (has_payload, tcp_flags::PSH),
    ] {
        if on {
            bits |= bit;
        }
    }
    bits
}

/// The frame of `seg` in `flow`, and the offset of its TCP header.
pub fn frame(flow: Flow, seg: &Segment) -> (Vec<u8>, usize) {
    let bits = flag_bits(seg.flags, !seg.payload.is_empty());
    let (mut bytes, tcp) = if flow.v6 {
        let mut src = [0u8; 16];
        src[0] = 0xfd;
        src[12..14].copy_from_slice(&flow.net.to_be_bytes());
        src[15] = 2;
        let (b, l) = Frame::ipv6()
            .src(src)
            .hop_limit(seg.ttl)
            .tcp()
            .ports(flow.port, 8080)
            .seq(seg.seq)
            .ack(77)
            .tcp_flags(bits)
            .payload(&seg.payload)
            .build_with_layout();
        (b, l.transport)
    } else {
        let [hi, lo] = flow.net.to_be_bytes();
        let (b, l) = Frame::ipv4()
            .src([10, hi, lo, 2])
            .ttl(seg.ttl)
            .tcp()
            .ports(flow.port, 8080)
            .seq(seg.seq)
            .ack(77)
            .tcp_flags(bits)
            .payload(&seg.payload)
            .build_with_layout();
        (b, l.transport)
    };
    if !seg.checksum_ok {
        bytes[tcp + 16] ^= 0x5A;
    }
    (bytes, tcp)
}

/// The ones' complement sum of `bytes` as big-endian 16-bit words, unfolded.
pub fn ones_sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// Folds a ones' complement sum to 16 bits.
pub fn fold(mut s: u32) -> u16 {
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    s as u16
}

/// Checks that `out` is `input` rewritten into a valid RST (its checksum
/// right whether complete or left to offload) and returns its sequence
/// number.
pub fn parse_reset(flow: Flow, input: &[u8], tcp: usize, out: &[u8]) -> u32 {
    assert_eq!(out.len(), tcp + 20, "a RST is the headers without payload");
    for (i, (&o, &b)) in out[..tcp].iter().zip(&input[..tcp]).enumerate() {
        // Only the IP length field (and the IPv4 header checksum) change.
        let may_change = if flow.v6 {
            (18..20).contains(&i)
        } else {
            (16..18).contains(&i) || (24..26).contains(&i)
        };
        assert!(may_change || o == b, "header byte {i} changed");
    }
    let th = &out[tcp..];
    assert_eq!(&th[0..4], &input[tcp..tcp + 4], "ports kept");
    assert_eq!(&th[8..12], &input[tcp + 8..tcp + 12], "ack number kept");
    assert_eq!(th[12], 0x50, "no options");
    assert_eq!(th[13], tcp_flags::RST | tcp_flags::ACK);
    let tcp_len = 20u32;
    let pseudo = if flow.v6 {
        assert_eq!(u16::from_be_bytes([out[18], out[19]]), 20);
        ones_sum(&out[22..54]) + tcp_len + 6
    } else {
        let ihl = usize::from(out[14] & 0x0F) * 4;
        assert_eq!(
            usize::from(u16::from_be_bytes([out[16], out[17]])),
            ihl + 20
        );
        assert_eq!(
            fold(ones_sum(&out[14..14 + ihl])),
            0xFFFF,
            "IPv4 header checksum"
        );
        ones_sum(&out[26..34]) + tcp_len + 6
    };
    assert_eq!(
        fold(pseudo + ones_sum(th)),
        0xFFFF,
        "TCP checksum of the RST"
    );
    // Also the pseudo-header sum, so a stack or NIC completing the checksum
    // later (CHECKSUM_PARTIAL) writes the same value (docs/stream.md).
    assert_eq!(
        u16::from_be_bytes([th[16], th[17]]),
        fold(pseudo),
        "RST checksum field is its pseudo-header sum"
    );
    u32::from_be_bytes([th[4], th[5], th[6], th[7]])
}

/// Runs one segment of `flow` through `prog` and says what the kernel did.
pub fn run_segment(prog: &LoadedProgram, flow: Flow, seg: &Segment) -> Outcome {
    let (input, tcp) = frame(flow, seg);
    let (retval, out) = prog.run_out(&input).unwrap();
    match retval {
        2 => Outcome::Drop,
        // A RST the diode forwards is always one it wrote (a sender's RST
        // latches the flow and is rewritten, possibly into the same bytes).
        0 if out == input && !seg.flags.rst => Outcome::Pass,
        0 => Outcome::Reset(parse_reset(flow, &input, tcp, &out)),
        other => panic!("return value {other}"),
    }
}

/// What the kernel must do where the reference diode decided `v`.
pub fn expected(v: &RefVerdict) -> Outcome {
    match v {
        RefVerdict::Pass => Outcome::Pass,
        RefVerdict::Drop(_) => Outcome::Drop,
        RefVerdict::Reset { seq, .. } => Outcome::Reset(*seq),
    }
}
