//! Stream diodes in `BPF_PROG_TEST_RUN`: the frames of reference-diode
//! segments, one flow per source port, and what the kernel did with each
//! (passed, dropped, or rewritten into a RST whose checksums are checked),
//! the flow check that compares the kernel with the reference diode
//! segment by segment, and the random flow strategy. Shared by
//! `stream_kernel.rs`, `stream_http.rs` and `random_stream_specs.rs`.

use std::sync::atomic::{AtomicU32, Ordering};

use lagic_frames::{tcp_flags, Frame};
use lagic_loader::LoadedProgram;
use predicate_ir::stream_diode::{
    judge_stream, DiodeConfig, Flags, Receiver, Segment, StreamDiode, Verdict as RefVerdict,
};
use predicate_ir::Spec;
use proptest::prelude::*;

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
    try_run_segment(prog, flow, seg).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run_segment`], with a failed test run or an unknown return value as
/// an error (a malformed RST still fails its assertions).
pub fn try_run_segment(prog: &LoadedProgram, flow: Flow, seg: &Segment) -> Result<Outcome, String> {
    let (input, tcp) = frame(flow, seg);
    let (retval, out) = prog.run_out(&input).map_err(|e| format!("test run: {e}"))?;
    Ok(match retval {
        2 => Outcome::Drop,
        // A RST the diode forwards is always one it wrote (a sender's RST
        // latches the flow and is rewritten, possibly into the same bytes).
        0 if out == input && !seg.flags.rst => Outcome::Pass,
        0 => Outcome::Reset(parse_reset(flow, &input, tcp, &out)),
        other => return Err(format!("return value {other}")),
    })
}

/// What the kernel must do where the reference diode decided `v`.
pub fn expected(v: &RefVerdict) -> Outcome {
    match v {
        RefVerdict::Pass => Outcome::Pass,
        RefVerdict::Drop(_) => Outcome::Drop,
        RefVerdict::Reset { seq, .. } => Outcome::Reset(*seq),
    }
}

/// Runs `segments` of a new flow through the kernel and the reference;
/// asserts they agree, and that a receiver fed with the kernel's output
/// (bad checksums and low TTLs discarded there) reads only a prefix of
/// the judged stream, which the spec accepts. Returns the kernel's
/// outcomes and the receiver.
pub fn check_flow(
    prog: &LoadedProgram,
    spec: &Spec,
    v6: bool,
    segments: &[Segment],
) -> (Vec<Outcome>, Receiver) {
    let delivered: Vec<(Segment, bool)> = segments.iter().map(|s| (s.clone(), false)).collect();
    check_lossy_flow(prog, spec, v6, &delivered)
}

/// [`check_flow`] where the segments marked `true` are lost between the
/// diode and the receiver when they pass.
pub fn check_lossy_flow(
    prog: &LoadedProgram,
    spec: &Spec,
    v6: bool,
    segments: &[(Segment, bool)],
) -> (Vec<Outcome>, Receiver) {
    try_check_lossy_flow(prog, spec, v6, segments).unwrap_or_else(|e| panic!("{e}"))
}

/// [`check_lossy_flow`], saying what differed instead of panicking. The
/// receiver is the flow's first connection: when a SYN starts a fresh
/// flow on the 4-tuple (rule 7 of the reference), it stays open and must
/// still read only a prefix of the first flow's judged stream.
pub fn try_check_lossy_flow(
    prog: &LoadedProgram,
    spec: &Spec,
    v6: bool,
    segments: &[(Segment, bool)],
) -> Result<(Vec<Outcome>, Receiver), String> {
    let flow = flow(v6);
    let mut diode = StreamDiode::new(spec, config()).map_err(|e| e.0)?;
    let mut receiver = Receiver::new(2, false);
    let mut outcomes = Vec::new();
    let mut first_judged = Vec::new();
    for (i, (seg, lost)) in segments.iter().enumerate() {
        // A malformed RST fails `parse_reset`'s assertions: say where.
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            try_run_segment(prog, flow, seg)
        }))
        .map_err(|e| {
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("segment {i} ({seg:?}, IPv6 {v6}): {what}")
        })??;
        // The kernel does not look at checksums (docs/stream.md).
        let mut as_seen = seg.clone();
        as_seen.checksum_ok = true;
        let want = diode.on_segment(&as_seen);
        if got != expected(&want) {
            let all: Vec<&Segment> = segments.iter().map(|(s, _)| s).collect();
            return Err(format!(
                "segment {i} of {all:?}: kernel {got:?}, reference {want:?}"
            ));
        }
        if diode.fresh_starts() == 0 {
            first_judged = diode.judged().to_vec();
        }
        match &got {
            Outcome::Pass if !lost => receiver.receive(seg),
            Outcome::Reset(seq) => receiver.receive(&Segment::reset(*seq)),
            _ => {}
        }
        outcomes.push(got);
    }
    let app = receiver.app();
    if !first_judged.starts_with(&app) {
        return Err(format!(
            "the application read {app:?}, not a prefix of the judged {first_judged:?}"
        ));
    }
    // Reading nothing is no violation, even of a spec that refuses the
    // empty stream (`false`): no byte crossed.
    if !app.is_empty() && judge_stream(spec, &app).is_err() {
        return Err(format!(
            "the application read {app:?}, which the spec refuses"
        ));
    }
    Ok((outcomes, receiver))
}

/// A random flow: a SYN, then `payload` cut into segments, sent with
/// reordering, duplicates, overlaps (some with changed bytes), and a FIN;
/// rarely a segment of another kind (see the code).
pub fn segments_strategy(
    payload: impl Strategy<Value = Vec<u8>>,
) -> impl Strategy<Value = Vec<Segment>> {
    segments_with_cuts(payload, 1..9)
}

/// [`segments_strategy`] with segment lengths drawn from `lengths`.
pub fn segments_with_cuts(
    payload: impl Strategy<Value = Vec<u8>>,
    lengths: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Segment>> {
    (
        payload,
        prop::collection::vec(lengths, 1..12),
        prop::collection::vec((0usize..64, 0usize..4, any::<bool>()), 0..16),
        any::<u32>(),
        prop::collection::vec((0usize..64, 0usize..10, 0usize..64), 0..3),
    )
        .prop_map(|(payload, cuts, edits, isn, specials)| {
            let mut segs = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < payload.len() {
                let len = cuts[i % cuts.len()].min(payload.len() - at);
                segs.push((at, payload[at..at + len].to_vec()));
                at += len;
                i += 1;
            }
            // Edits: move a segment later, duplicate it, or change a byte.
            for (pick, what, flag) in edits {
                if segs.is_empty() {
                    break;
                }
                let k = pick % segs.len();
                match what {
                    0 => {
                        let s = segs.remove(k);
                        let to = (k + 1 + pick % 3).min(segs.len());
                        segs.insert(to, s);
                    }
                    1 => {
                        let s = segs[k].clone();
                        segs.push(s);
                    }
                    2 => {
                        let mut s = segs[k].clone();
                        if flag && !s.1.is_empty() {
                            s.1[0] = b'e';
                        }
                        segs.insert((k + 2).min(segs.len()), s);
                    }
                    _ => {
                        // An overlap spanning this segment and the next.
                        if k + 1 < segs.len() {
                            let (a0, ref a) = segs[k];
                            let mut joined = a.clone();
                            joined.extend_from_slice(&segs[k + 1].1);
                            segs.insert(k + 2, (a0, joined));
                        }
                    }
                }
            }
            let mut out = vec![Segment::syn(isn)];
            for (off, bytes) in segs {
                out.push(Segment::data(
                    isn.wrapping_add(1).wrapping_add(off as u32),
                    &bytes,
                ));
            }
            out.push(Segment::fin(
                isn.wrapping_add(1).wrapping_add(payload.len() as u32),
                b"",
            ));
            // Rarely, a segment of another kind: SYN again (same or other
            // ISN, with data), RST, URG, low TTL, bad checksum, no ACK, an
            // early FIN, a pure ACK anywhere, or a duplicate FIN.
            for (pos, kind, arg) in specials {
                let at = 1 + pos % out.len();
                let base = out[at.min(out.len() - 1)].clone();
                let seg = match kind {
                    0 => Segment::syn(isn),
                    1 => {
                        let mut s = Segment::syn(isn.wrapping_add(arg as u32));
                        s.payload = base.payload.clone();
                        s
                    }
                    2 => Segment::reset(base.seq),
                    3 => {
                        let mut s = base.clone();
                        s.flags.urg = true;
                        s.urgent_pointer = 1;
                        s
                    }
                    4 => {
                        let mut s = base.clone();
                        s.ttl = (arg % 8) as u8;
                        s
                    }
                    5 => {
                        let mut s = base.clone();
                        s.checksum_ok = false;
                        s
                    }
                    6 => {
                        let mut s = base.clone();
                        s.flags.ack = false;
                        s
                    }
                    7 => Segment::fin(base.seq, &base.payload),
                    8 => Segment::data(isn.wrapping_add(arg as u32), b""),
                    _ => out[out.len() - 1].clone(),
                };
                out.insert(at, seg);
            }
            out
        })
}

/// Payloads joined from `fragments` (0 to 15 of them).
pub fn fragments_payload(fragments: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(fragments), 0..16).prop_map(|parts| parts.concat())
}
