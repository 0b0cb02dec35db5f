//! What a diode records about its decisions: the layout shared by the code
//! generator (which writes it) and the loader (which reads it). See
//! docs/watch.md for the user's view.
//!
//! Every object carries two BTF-defined maps (a stream diode a third, its
//! flow map, after them; `codegen/stream.rs`):
//! - [`COUNTERS_MAP`], a `BPF_MAP_TYPE_PERCPU_ARRAY` of [`COUNTER_SLOTS`]
//!   `u64`s: slot `r` counts the verdicts of [`Reason`] `r`; slot
//!   [`LOST_EVENTS_SLOT`] counts drop events the ring buffer had no room for.
//! - [`EVENTS_MAP`], a `BPF_MAP_TYPE_RINGBUF` of [`EVENTS_RING_SIZE`] bytes
//!   holding one record per drop, laid out as the `EVENT_*` offsets say
//!   (little-endian). A full ring buffer never changes a verdict: the drop
//!   is counted, the event is counted as lost, and the packet still drops.
//!
//! Invariants: every verdict increments exactly one counter slot (its
//! reason); every drop either submits one event or increments
//! [`LOST_EVENTS_SLOT`]; passes emit no events.

use std::sync::Arc;

use predicate_ir::{Formula, Machine, Program};

/// Name of the counters map (its symbol in `.maps`, and the kernel's map name).
pub const COUNTERS_MAP: &str = "lagic_counters";
/// Name of the decision-event ring buffer.
pub const EVENTS_MAP: &str = "lagic_events";
/// Slots of the counters map (reasons and the lost-event count). Objects
/// of lagic before [`Reason::BadSyn`] have 16, before
/// [`Reason::PartialChecksum`] 17; readers take the map's own size.
pub const COUNTER_SLOTS: u32 = 18;
/// Counter slot of events lost to a full ring buffer.
pub const LOST_EVENTS_SLOT: u32 = 14;
/// Size of the ring buffer in bytes (a power of two, a multiple of the page size).
pub const EVENTS_RING_SIZE: u32 = 256 * 1024;

/// Why a diode decided a packet's verdict. The value is the counter slot
/// and the `reason` field of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Reason {
    /// Passed: the predicate held, the payload was empty, or a policy passed it.
    Pass = 0,
    /// Dropped: the predicate does not hold for the payload.
    Predicate = 1,
    /// Dropped: a malformed frame, or one the diode could not fully read.
    Malformed = 2,
    /// Dropped by the `arp` packet policy.
    PolicyArp = 3,
    /// Dropped by the `ipv6_nd` packet policy.
    PolicyIpv6Nd = 4,
    /// Dropped by the `other_ip` packet policy (IP, not TCP).
    PolicyOtherIp = 5,
    /// Dropped by the `non_ip` packet policy.
    PolicyNonIp = 6,
    /// Dropped: an IPv4 fragment.
    Fragment = 7,
    /// Dropped: a VLAN-tagged frame.
    Vlan = 8,
    /// Dropped: an IPv6 extension header.
    Ipv6Extension = 9,
    /// Dropped: a frame longer than the diode inspects (64 KiB).
    Oversize = 10,
    /// Stream mode: a segment of a latched flow, or a violation other than
    /// the predicate's (changed stream after FIN, a FIN where the stream is
    /// incomplete, a sender's RST); the segment becomes a RST.
    Latched = 11,
    /// Stream mode: a segment not starting at the next expected byte
    /// (a gap, or data the diode already judged); dropped.
    OutOfOrder = 12,
    /// Stream mode: a segment of a flow without state (the diode did not
    /// see its SYN: attached, or re-attached, mid-connection); it becomes
    /// a RST. (The flow table never evicts; the name is kept so that
    /// counters and events keep their meaning across versions.)
    Evicted = 13,
    /// Stream mode: the flow table is full, so a new flow's SYN (or the
    /// latch of a flow without state) could not be stored; it becomes a
    /// RST. Slot 15: slot 14 is [`LOST_EVENTS_SLOT`].
    TableFull = 15,
    /// Stream mode: a SYN refused on a flow with state that is not
    /// latched: one with payload, or with another initial sequence number
    /// that cannot start a fresh flow (its first byte inside the old
    /// flow's range, or another CPU holding the flow); or a SYN with
    /// payload on a flow without state. Dropped. (The reference diode's
    /// `DropReason::BadSyn`.)
    BadSyn = 16,
    /// Stream mode: a segment whose TCP checksum is left to be completed
    /// after the diode (`CHECKSUM_PARTIAL`): whoever completes it writes
    /// where the skb's `csum_start`/`csum_offset` say, which the sender
    /// chose and the diode cannot read, so into bytes already judged.
    /// Dropped (docs/stream.md, "Checksums left to offload").
    PartialChecksum = 17,
}

impl Reason {
    /// Every reason, by value (14, [`LOST_EVENTS_SLOT`], is not one).
    pub const ALL: [Reason; 17] = [
        Reason::Pass,
        Reason::Predicate,
        Reason::Malformed,
        Reason::PolicyArp,
        Reason::PolicyIpv6Nd,
        Reason::PolicyOtherIp,
        Reason::PolicyNonIp,
        Reason::Fragment,
        Reason::Vlan,
        Reason::Ipv6Extension,
        Reason::Oversize,
        Reason::Latched,
        Reason::OutOfOrder,
        Reason::Evicted,
        Reason::TableFull,
        Reason::BadSyn,
        Reason::PartialChecksum,
    ];

    /// The reason with value `v`.
    pub fn from_u32(v: u32) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| *r as u32 == v)
    }

    /// The name used in counters and events (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Pass => "pass",
            Reason::Predicate => "predicate",
            Reason::Malformed => "malformed",
            Reason::PolicyArp => "policy_arp",
            Reason::PolicyIpv6Nd => "policy_ipv6_nd",
            Reason::PolicyOtherIp => "policy_other_ip",
            Reason::PolicyNonIp => "policy_non_ip",
            Reason::Fragment => "fragment",
            Reason::Vlan => "vlan",
            Reason::Ipv6Extension => "ipv6_extension",
            Reason::Oversize => "oversize",
            Reason::Latched => "latched",
            Reason::OutOfOrder => "out_of_order",
            Reason::Evicted => "evicted",
            Reason::TableFull => "table_full",
            Reason::BadSyn => "bad_syn",
            Reason::PartialChecksum => "partial_checksum",
        }
    }
}

/// "No value" in the event's u32 fields (`decided_by`, `offset`, `payload_start`).
pub const NONE: u32 = u32::MAX;

/// `u64`: `bpf_ktime_get_ns()` at the decision (CLOCK_MONOTONIC).
pub const EVENT_TIME: usize = 0;
/// `u32`: the [`Reason`].
pub const EVENT_REASON: usize = 8;
/// `u32`: the formula atom that decided (see [`atoms`]), or [`NONE`].
pub const EVENT_DECIDED_BY: usize = 12;
/// `u32`: payload offset where the deciding byte's span starts, or
/// [`NONE`]; the byte lies in `payload[offset..offset + span]` (see
/// [`EVENT_OFFSET_SPAN`], [`locate`] and docs/watch.md).
pub const EVENT_OFFSET: usize = 16;
/// `u32`: `skb->ifindex`.
pub const EVENT_IFINDEX: usize = 20;
/// `u32`: `skb->ingress_ifindex` (equal to `ifindex` on ingress).
pub const EVENT_INGRESS_IFINDEX: usize = 24;
/// `u32`: the frame's length.
pub const EVENT_FRAME_LEN: usize = 28;
/// `u16`: bytes of the frame's head copied to [`EVENT_HEAD`].
pub const EVENT_HEAD_LEN: usize = 32;
/// `u16`: bytes of payload copied to [`EVENT_EXCERPT`].
pub const EVENT_EXCERPT_LEN: usize = 34;
/// `u32`: payload offset of the excerpt's first byte.
pub const EVENT_EXCERPT_START: usize = 36;
/// `u32`: frame offset of the TCP payload, or [`NONE`] (not parsed that far).
pub const EVENT_PAYLOAD_START: usize = 40;
/// `u32`: the payload's length (0 when not parsed that far).
pub const EVENT_PAYLOAD_LEN: usize = 44;
/// `u32`: bytes the deciding byte may lie in from [`EVENT_OFFSET`]: 1 for
/// a byte test; for a scan, the chunk its pass stopped in (at most 64) or,
/// for a scan walked inline, its window.
pub const EVENT_OFFSET_SPAN: usize = 48;
/// `u32`: the record's layout version, [`EVENT_FORMAT_VERSION`]. Records
/// of lagic before it carry 0 here (a reserved word) and the version-1
/// layout: no [`EVENT_SPAN_STATE`], the head at [`EVENT_HEAD_V1`].
pub const EVENT_FORMAT: usize = 52;
/// The layout these offsets describe.
pub const EVENT_FORMAT_VERSION: u32 = 2;
/// Two `u32`s: the deciding scan's machine registers as they were where its
/// span starts (a DFA: its state, then 0; a depth counter: depth, mode),
/// from which [`locate`] replays the span; 0s for other atoms;
/// [`NOT_REPLAYABLE`] where the span is all the diode knows (the
/// `http_response` view: see [`locate`]).
pub const EVENT_SPAN_STATE: usize = 56;
/// [`EVENT_SPAN_STATE`] of a span with nothing to replay: no step code
/// produces these registers, so a reader that does not know the marker
/// finds no state and no byte, never a wrong one.
pub const NOT_REPLAYABLE: [u32; 2] = [NONE, NONE];
/// The frame's first bytes (headers: the reader parses the flow from them).
pub const EVENT_HEAD: usize = 64;
/// [`EVENT_HEAD`] in version-1 records.
pub const EVENT_HEAD_V1: usize = 56;
/// Bytes of the frame's head an event carries: Ethernet, IPv4 with
/// options (or IPv6) and the TCP ports.
pub const HEAD_LEN: usize = 96;
/// The payload excerpt.
pub const EVENT_EXCERPT: usize = EVENT_HEAD + HEAD_LEN;
/// [`EVENT_EXCERPT`] in version-1 records.
pub const EVENT_EXCERPT_V1: usize = EVENT_HEAD_V1 + HEAD_LEN;
/// Largest excerpt `lagic compile --excerpt` accepts.
pub const MAX_EXCERPT: u32 = 1024;
/// Default excerpt length: a scan's longest chunk, so an excerpt from a
/// scan's offset holds its whole span.
pub const DEFAULT_EXCERPT: u32 = 64;

/// Size of one event record for an excerpt of `excerpt` bytes.
pub fn event_size(excerpt: u32) -> usize {
    (EVENT_EXCERPT + excerpt as usize).div_ceil(8) * 8
}

/// What an atom's windows and `len` count: the payload (per packet, or
/// the whole stream of a stream diode), or one part of the
/// `http_response` view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The payload, or a whole-stream diode's stream.
    Payload,
    /// Each header block of the `http_response` view.
    Headers {
        /// An atom of the exact meaning, judged where the block ends.
        at_end: bool,
    },
    /// Each body of the `http_response` view.
    Body {
        /// An atom of the exact meaning, judged where the body ends.
        at_end: bool,
    },
}

impl Part {
    /// What the part's bytes are called in an atom's name.
    fn bytes(self) -> &'static str {
        match self {
            Part::Payload => "payload",
            Part::Headers { .. } => "header block",
            Part::Body { .. } => "body",
        }
    }

    /// How an atom of the part's exact meaning ends its name.
    fn suffix(self) -> &'static str {
        match self {
            Part::Headers { at_end: true } => ", where the header block ends",
            Part::Body { at_end: true } => ", where the body ends",
            _ => "",
        }
    }
}

/// One leaf of the formula, in the order [`atoms`] lists them; the
/// `decided_by` of an event is an index into that list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Atom {
    /// A length test `n <cmp> value`.
    Len {
        /// The comparison, as text (`<`, `<=`, ...).
        cmp: &'static str,
        /// The bound.
        value: u32,
        /// What `n` counts.
        part: Part,
    },
    /// A test of the byte at a payload index.
    Byte {
        /// The index.
        index: u32,
    },
    /// A scan's verdict.
    Scan {
        /// Its id in [`Program::scans`].
        scan: usize,
        /// Window start.
        start: u32,
        /// Window end (exclusive), `None` for the payload's end.
        end: Option<u32>,
        /// `dfa` or `depth`.
        machine: &'static str,
        /// JSON path of the spec construct ([`predicate_ir::Scan::path`]).
        path: String,
        /// The scan's machine, to replay a span ([`locate`]).
        automaton: Arc<Machine>,
        /// What the scan's state register holds per IR state: 1, or the
        /// row stride of a table-driven automaton (its states premultiplied).
        scale: u32,
        /// What the window counts.
        part: Part,
    },
    /// The `http_response` view's framing (`predicate_ir::http_frame`):
    /// the stream is not a response the view reads, or a header block
    /// exceeds the view's limit.
    HttpFraming,
}

/// JSON path of the `http_response` view, which [`Atom::HttpFraming`] names.
pub const HTTP_VIEW_PATH: &str = "$.view.http_response";

impl Atom {
    /// The spec path the atom decides, where it has one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Atom::Scan { path, .. } => Some(path),
            Atom::HttpFraming => Some(HTTP_VIEW_PATH),
            _ => None,
        }
    }
}

impl std::fmt::Display for Atom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Atom::Len { cmp, value, part } => match part {
                Part::Payload => write!(f, "length {cmp} {value}"),
                _ => write!(f, "{} length {cmp} {value}{}", part.bytes(), part.suffix()),
            },
            Atom::Byte { index } => write!(f, "byte test at payload[{index}]"),
            Atom::Scan {
                scan,
                start,
                end,
                machine,
                part,
                ..
            } => {
                let end = end.map_or("n".to_string(), |e| e.to_string());
                write!(
                    f,
                    "scan {scan} ({machine} over {}[{start}..{end}]{})",
                    part.bytes(),
                    part.suffix()
                )
            }
            Atom::HttpFraming => write!(f, "HTTP framing"),
        }
    }
}

/// The formula's leaves in pre-order (left to right, the order the code
/// evaluates them in).
///
/// For a per-packet program: table-driven automata's scales come from the
/// emitter's layout. A stream diode's atoms come from [`stream_atoms`].
pub fn atoms(program: &Program) -> Vec<Atom> {
    atoms_scaled(program, &crate::codegen::packet_state_scales(program))
}

/// The formula's leaves of a stream program, as [`atoms`] (stream passes
/// keep plain state numbers).
///
/// With the `http_response` view, the atoms its events name, in this
/// order: the header predicate's stream meaning, its exact meaning, the
/// body predicate's stream meaning, its exact meaning (each in pre-order),
/// then [`Atom::HttpFraming`].
pub fn stream_atoms(stream: &predicate_ir::StreamProgram) -> Vec<Atom> {
    let plain = |s: &predicate_ir::StreamProgram, f: &Formula, part: Part, out: &mut Vec<Atom>| {
        walk(&s.program, &vec![1; s.program.scans.len()], f, part, out)
    };
    let mut out = Vec::new();
    let Some(http) = &stream.http else {
        plain(stream, &stream.program.formula, Part::Payload, &mut out);
        return out;
    };
    let (head, body) = (stream, &http.body);
    plain(
        head,
        &head.program.formula,
        Part::Headers { at_end: false },
        &mut out,
    );
    plain(
        head,
        &head.complete,
        Part::Headers { at_end: true },
        &mut out,
    );
    plain(
        body,
        &body.program.formula,
        Part::Body { at_end: false },
        &mut out,
    );
    plain(body, &body.complete, Part::Body { at_end: true }, &mut out);
    out.push(Atom::HttpFraming);
    out
}

fn atoms_scaled(program: &Program, scales: &[u32]) -> Vec<Atom> {
    let mut out = Vec::new();
    walk(program, scales, &program.formula, Part::Payload, &mut out);
    out
}

/// Appends the leaves of `f` (over `program`'s scans) in pre-order.
fn walk(program: &Program, scales: &[u32], f: &Formula, part: Part, out: &mut Vec<Atom>) {
    match f {
        Formula::Const(_) => {}
        Formula::Not(inner) => walk(program, scales, inner, part, out),
        Formula::And(parts) | Formula::Or(parts) => {
            for p in parts {
                walk(program, scales, p, part, out);
            }
        }
        Formula::Len { cmp, value } => out.push(Atom::Len {
            cmp: match cmp {
                predicate_ir::Cmp::Lt => "<",
                predicate_ir::Cmp::Le => "<=",
                predicate_ir::Cmp::Eq => "==",
                predicate_ir::Cmp::Ne => "!=",
                predicate_ir::Cmp::Ge => ">=",
                predicate_ir::Cmp::Gt => ">",
            },
            value: *value,
            part,
        }),
        Formula::Byte { index, .. } => out.push(Atom::Byte { index: *index }),
        Formula::Scan(id) => {
            let scan = &program.scans[*id];
            out.push(Atom::Scan {
                scan: *id,
                start: scan.window.start,
                end: scan.window.end,
                machine: match scan.machine {
                    Machine::Dfa(_) => "dfa",
                    Machine::Depth(_) => "depth",
                },
                path: scan.path.clone(),
                automaton: Arc::new(scan.machine.clone()),
                scale: scales[*id],
                part,
            })
        }
    }
}

/// Where a predicate drop's deciding byte lies: `payload[offset..offset +
/// span]`. A span of 1 is the exact byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// Payload offset of the span's first byte.
    pub offset: u32,
    /// Bytes in the span (at least 1).
    pub span: u32,
}

impl Located {
    /// Whether the span is the one deciding byte.
    pub fn is_exact(&self) -> bool {
        self.span == 1
    }
}

/// What a drop event says about its deciding byte, for [`locate`].
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    /// [`EVENT_OFFSET`], `None` for [`NONE`].
    pub offset: Option<u32>,
    /// [`EVENT_OFFSET_SPAN`].
    pub span: u32,
    /// [`EVENT_SPAN_STATE`] (`None` in a version-1 record).
    pub span_state: Option<[u32; 2]>,
    /// [`EVENT_PAYLOAD_LEN`].
    pub payload_len: u32,
    /// [`EVENT_EXCERPT_START`] and the excerpt's bytes.
    pub excerpt_start: u32,
    /// The excerpt.
    pub excerpt: &'a [u8],
}

/// The deciding byte of a predicate drop decided by `atom`, as exactly as
/// the event allows.
///
/// The diode records a span: for a scan, the chunk in which its pass
/// stopped (or, walked inline, its window) and the scan's state where that
/// span starts. Replaying the scan's machine from that state over the
/// excerpt's bytes of the span finds the byte on which it entered a sink:
/// the exact deciding byte, after which nothing could change the scan's
/// result. Otherwise the span stays, as a span:
/// - the excerpt does not cover the bytes up to the sink (excerpts off or
///   shorter than the span), or the record predates span states;
/// - no atom is known (`atom` is `None`: the reader has no spec), or
///   the atom is not a scan but its span is longer than one byte;
/// - the scan never entered a sink in its span (its result is its state
///   at the window's end: every byte of the span counts);
/// - the record's span state is [`NOT_REPLAYABLE`]: the `http_response`
///   view records the byte where it decided (a span of 1: where a part
///   ended, or where the framing failed), or the bytes of the current part
///   in the segment where the scan's state at their start is not kept.
///
/// A scan already in a sink where the span starts (a pass of several
/// machines stops when the last sinks; this one sank earlier, before the
/// span) has no place in the record: `None`, never a wrong byte. So has a
/// span past the payload's end, and a state the step code never produces.
pub fn locate(atom: Option<&Atom>, r: &Recorded<'_>) -> Option<Located> {
    let offset = r.offset?;
    let end = offset.saturating_add(r.span).min(r.payload_len);
    if end <= offset {
        return None;
    }
    let span = Located {
        offset,
        span: end - offset,
    };
    let (
        Some(Atom::Scan {
            automaton, scale, ..
        }),
        Some(mut regs),
    ) = (atom, r.span_state)
    else {
        return Some(span);
    };
    if regs == NOT_REPLAYABLE {
        return Some(span);
    }
    let machine: &Machine = automaton;
    if *scale > 1 {
        // A table-driven automaton's register holds the state's row offset.
        if regs[0] % scale != 0 {
            return None;
        }
        regs[0] /= scale;
    }
    let mut state = crate::codegen::machine_state(machine, regs)?;
    if machine.is_sink(state) {
        return None;
    }
    let Some(skip) = offset.checked_sub(r.excerpt_start) else {
        return Some(span);
    };
    let bytes = r.excerpt.get(skip as usize..).unwrap_or_default();
    for (i, &b) in bytes.iter().take(span.span as usize).enumerate() {
        state = machine.step(state, b);
        if machine.is_sink(state) {
            return Some(Located {
                offset: offset + i as u32,
                span: 1,
            });
        }
    }
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason has a counter slot of its own, never the lost-event
    /// slot, and reads back from its value; the lost-event slot is no reason.
    #[test]
    fn reasons_have_slots_of_their_own() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let v = r as u32;
            assert!(v < COUNTER_SLOTS && v != LOST_EVENTS_SLOT, "{r:?}");
            assert!(seen.insert(v), "{r:?} shares slot {v}");
            assert_eq!(Reason::from_u32(v), Some(r));
        }
        assert_eq!(Reason::from_u32(LOST_EVENTS_SLOT), None);
        assert_eq!(Reason::from_u32(COUNTER_SLOTS), None);
        assert_eq!(Reason::TableFull.as_str(), "table_full");
        assert_eq!(Reason::BadSyn.as_str(), "bad_syn");
        assert_eq!(Reason::PartialChecksum.as_str(), "partial_checksum");
    }
}
