//! The reference stream diode: what a normalizing diode must do with each
//! TCP segment of one connection (judged direction), and a model of the
//! receiving TCP stack and application to check it against.
//!
//! This is the executable specification the kernel-side stream mode will be
//! tested against (docs/stream.md); it shares nothing with the lowering or
//! the emitter and judges with [`eval`](crate::eval()) /
//! [`stream_eval`] over the reassembled bytes.
//!
//! ## The guarantee
//!
//! For a stream spec (predicates accepted by
//! [`check_stream_safe`](crate::check_stream_safe)), whatever segments the
//! sender produces, the bytes the receiver's application reads are a
//! prefix of the diode's *judged stream*, and the judged stream is always
//! acceptable ([`judge_stream`]). A clean end of stream (FIN) reaches the
//! receiver only after a stream the spec accepts *exactly* (`eval`, and for
//! the HTTP view, complete responses).
//!
//! ## Invariants of [`StreamDiode`] (the normalization rules)
//!
//! 1. Every payload byte of a passed segment, at stream offset `k`, equals
//!    `judged[k]`, and `k < judged.len()`: a receiver, whatever its
//!    reassembly policy (first or last copy wins, keep the longer
//!    out-of-order segment), can only assemble a prefix of `judged`.
//! 2. `judged` is extended only by bytes at the next expected offset
//!    (a segment starting beyond it, a *gap*, is dropped: the sender
//!    retransmits), and only if `judge_stream(judged ++ new)` holds.
//! 3. A segment the receiver might discard or never receive (bad checksum,
//!    TTL / hop limit below [`DiodeConfig::min_ttl`], no ACK flag, invalid
//!    flag combinations) is dropped, so it can neither advance `judged`
//!    nor differ from what the receiver keeps.
//! 4. A segment with URG set is dropped: without `SO_OOBINLINE` Linux
//!    takes the urgent byte out of the stream the application reads, with
//!    it the byte stays in; the diode cannot know which, and honest
//!    HTTP/JSON senders never set URG.
//! 5. A SYN carrying data is dropped; the first SYN fixes the initial
//!    sequence number, a SYN with another one is dropped. A flow whose SYN
//!    the diode never saw (attached mid-connection) is reset: fail closed.
//! 6. On the first violation (a judged byte changed by an overlap, bytes
//!    the spec refuses, data after FIN, a FIN where the stream is not
//!    complete, a RST from the sender) the flow latches: that segment and
//!    every later one become a RST without payload towards the receiver,
//!    at the next sequence number the diode expects.
//!
//! 7. A new connection on the same 4-tuple: a SYN without payload and with
//!    another initial sequence number starts a fresh flow, whether the old
//!    flow ended (a FIN passed, or it is latched) or not (its sender gave
//!    it up, say, after the receiver's RST, which the diode does not see),
//!    judged from its own
//!    first byte, provided its first byte lies outside the *old range*:
//!    every sequence number from the old flow's first byte up to its next
//!    expected byte plus [`SEGMENT_MARGIN`] (inclusive). A receiver still holding the old
//!    connection (its RST or FIN lost behind the diode, or a hole left by
//!    a segment it discarded) reads from some point of that range, so the
//!    fresh flow may pass nothing there: a segment whose bytes (or FIN)
//!    would reach it latches the fresh flow. The range of a flow that was
//!    itself fresh extends over its predecessor's range, so a chain of
//!    connections keeps avoiding every earlier one. The rule does not
//!    depend on the old flow having ended: the old range holds whatever
//!    the old flow passed, so a receiver still holding it can never read
//!    the fresh flow's bytes. Refusing it on a live flow would leave a
//!    4-tuple whose client aborted (its RST travels the other way) unusable
//!    for good, since the flow table never forgets a flow. A SYN inside the
//!    old range, or on a flow latched without its SYN seen (its range is
//!    unknown), is handled as before: dropped, or reset while latched.
//!
//! Sequence numbers are compared modulo 2^32 (`wrapping_sub` read as
//! `i32`), so a stream may wrap; a segment more than 2^31 bytes away is
//! read as behind, and dropped if it is older than what the diode retains.

use crate::eval::eval;
use crate::http_view::judge_http_responses;
use crate::spec::{Mode, Spec, StreamView};
use crate::stream::stream_eval;

/// TCP flags the model distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// URG.
    pub urg: bool,
}

/// One TCP segment of the judged direction, as the diode sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Sequence number of the first payload byte (of the SYN, for a SYN).
    pub seq: u32,
    /// Flags.
    pub flags: Flags,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Urgent pointer (meaningful with URG): the urgent byte is
    /// `payload[urgent_pointer - 1]`, Linux's reading.
    pub urgent_pointer: u16,
    /// Whether the receiver will find the checksum valid.
    pub checksum_ok: bool,
    /// IPv4 TTL / IPv6 hop limit as the segment leaves the diode.
    pub ttl: u8,
}

impl Segment {
    /// An ACK segment carrying `payload` at `seq`, valid in every other respect.
    pub fn data(seq: u32, payload: &[u8]) -> Segment {
        Segment {
            seq,
            flags: Flags {
                ack: true,
                ..Flags::default()
            },
            payload: payload.to_vec(),
            urgent_pointer: 0,
            checksum_ok: true,
            ttl: 64,
        }
    }

    /// The SYN (SYN-ACK) with initial sequence number `isn`.
    pub fn syn(isn: u32) -> Segment {
        Segment {
            flags: Flags {
                syn: true,
                ack: true,
                ..Flags::default()
            },
            ..Segment::data(isn, &[])
        }
    }

    /// `data(seq, payload)` with FIN set.
    pub fn fin(seq: u32, payload: &[u8]) -> Segment {
        let mut s = Segment::data(seq, payload);
        s.flags.fin = true;
        s
    }

    /// The RST (with ACK) without payload the diode sends at `seq`.
    pub fn reset(seq: u32) -> Segment {
        let mut s = Segment::data(seq, &[]);
        s.flags.rst = true;
        s
    }
}

/// Why the diode dropped a segment (the flow goes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The receiver would find the checksum bad.
    BadChecksum,
    /// TTL / hop limit too low to be sure the segment reaches the receiver.
    TtlTooLow,
    /// SYN with FIN or RST, or a non-SYN segment without ACK.
    InvalidFlags,
    /// URG set.
    Urgent,
    /// SYN with payload, or a SYN with a different initial sequence number.
    BadSyn,
    /// Starts beyond the next expected byte.
    Gap,
    /// Overlaps bytes older than the diode retains (or before the stream).
    TooOld,
}

/// What spoiled the flow (it is latched from then on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A data segment of a flow whose SYN the diode did not see.
    NoSyn,
    /// A retransmission or overlap whose bytes differ from the judged ones.
    ChangedBytes,
    /// The judged stream with this segment's new bytes is not acceptable.
    Refused(String),
    /// Data beyond the FIN, or a second FIN elsewhere.
    AfterFin,
    /// A FIN where the spec does not accept the stream as complete.
    IncompleteAtFin,
    /// The sender reset the connection.
    SenderReset,
    /// An earlier segment latched the flow.
    Latched,
    /// A flow on a reused 4-tuple reached the sequence numbers where an
    /// earlier connection's receiver may still be reading (rule 7).
    OldRange,
}

/// The diode's decision on one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the segment unchanged.
    Pass,
    /// Drop it.
    Drop(DropReason),
    /// Send [`Segment::reset`]`(seq)` towards the receiver instead.
    Reset {
        /// Sequence number of the RST.
        seq: u32,
        /// Why.
        violation: Violation,
    },
}

/// Whether a judged stream is acceptable, and whether it may end here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStatus {
    /// The spec accepts the stream as a whole if it ends here.
    pub complete: bool,
}

/// Judges the stream so far under `spec` (a stream spec): `Ok` when it is
/// acceptable (every prefix of it then is too), with whether it may end
/// here; `Err` with the reason otherwise. A packet-mode spec has no stream
/// meaning: every stream is refused.
pub fn judge_stream(spec: &Spec, stream: &[u8]) -> Result<StreamStatus, String> {
    match &spec.mode {
        Mode::Packet => Err("a packet-mode spec has no stream meaning".to_string()),
        Mode::Stream(StreamView::Whole) => {
            if stream_eval(&spec.predicate, stream) {
                Ok(StreamStatus {
                    complete: eval(&spec.predicate, stream),
                })
            } else {
                Err("the stream fails the predicate".to_string())
            }
        }
        Mode::Stream(StreamView::HttpResponse { headers }) => {
            judge_http_responses(headers, &spec.predicate, stream)
                .map(|j| StreamStatus {
                    complete: j.complete,
                })
                .map_err(|e| e.to_string())
        }
    }
}

/// Settings of a [`StreamDiode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiodeConfig {
    /// Smallest TTL / hop limit passed: at least the number of hops to the
    /// receiver, so every passed segment reaches it.
    pub min_ttl: u8,
    /// Judged bytes kept to check retransmissions against; a segment
    /// overlapping older bytes is dropped.
    pub retain: usize,
}

impl Default for DiodeConfig {
    fn default() -> Self {
        DiodeConfig {
            min_ttl: 8,
            retain: usize::MAX,
        }
    }
}

/// How far past the old flow's next expected byte its range extends: one
/// segment of the largest size (the IP length field's limit). A kernel
/// diode judging on several CPUs may still commit one segment at that
/// byte while another CPU latches the flow (a sender's RST) and a third
/// starts the fresh flow; the range must hold its bytes too.
pub const SEGMENT_MARGIN: u32 = 65_536;

/// Sequence numbers `[lo, end)` (modulo 2^32, never empty) a fresh flow on
/// the same 4-tuple must not occupy (rule 7 of the module docs); `end == lo`
/// means the whole space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OldRange {
    lo: u32,
    end: u32,
}

impl OldRange {
    /// The range a successor of the flow with initial sequence number
    /// `isn`, next expected byte `next` and its own `avoid` range must
    /// keep out of: from its first byte up to `next` plus
    /// [`SEGMENT_MARGIN`] inclusive, joined with `avoid`.
    ///
    /// The flow lies outside `avoid`: going forward from `avoid.end` it
    /// comes before `avoid.lo`. One interval covers both in two ways: from
    /// the flow's first byte on over `avoid` (a flow that started below
    /// the old range and grows towards it), or from `avoid.lo` on over the
    /// flow (a flow that started above it, as Linux starts a connection
    /// over a `TIME_WAIT` socket: 65,537 past the old one's last byte).
    /// The second is taken when it is shorter, its end has not come round
    /// to the flow's first byte, and the flow with its margin is shorter
    /// than the sequence space; otherwise the first. Taking always
    /// the first made a range of nearly the whole sequence space after
    /// such a connection, and the 4-tuple's third connection was refused.
    fn after(isn: u32, next: u32, avoid: Option<OldRange>) -> OldRange {
        let lo = isn.wrapping_add(1);
        let end = next.wrapping_add(1 + SEGMENT_MARGIN);
        let Some(old) = avoid else {
            return OldRange { lo, end };
        };
        let over_old = OldRange { lo, end: old.end };
        // Distances going forward from the old range's start.
        let to_end = end.wrapping_sub(old.lo);
        let to_lo = lo.wrapping_sub(old.lo);
        let span_over_old = old.end.wrapping_sub(lo);
        // A flow of nearly 2^32 bytes whose margin comes round past its own
        // first byte: only the first interval holds all of it.
        let wraps = end.wrapping_sub(lo) < next.wrapping_sub(lo);
        let from_old_fits = !wraps && to_end != 0 && to_lo <= to_end;
        if from_old_fits && (span_over_old == 0 || to_end < span_over_old) {
            OldRange { lo: old.lo, end }
        } else {
            over_old
        }
    }

    /// Whether a flow with initial sequence number `isn` starts outside.
    fn admits(self, isn: u32) -> bool {
        let span = self.end.wrapping_sub(self.lo);
        span != 0 && isn.wrapping_add(1).wrapping_sub(self.lo) >= span
    }

    /// How many sequence numbers a flow starting at `isn + 1` may occupy
    /// before reaching the range.
    fn room(self, isn: u32) -> u64 {
        u64::from(self.lo.wrapping_sub(isn.wrapping_add(1)))
    }
}

#[derive(Debug, Clone)]
enum State {
    /// No SYN seen yet.
    Listen,
    /// The stream after the SYN with initial sequence number `isn`.
    Open {
        isn: u32,
        /// Sequence number of the next data byte.
        next: u32,
        /// Sequence number of the FIN, once one passed.
        fin: Option<u32>,
        /// For a flow on a reused 4-tuple: what it must keep out of.
        avoid: Option<OldRange>,
    },
    /// Every segment becomes a RST at `rst_seq`. `successor`: the range a
    /// new connection on the 4-tuple must keep out of (`None`: the flow's
    /// range is unknown, so none may start).
    Latched {
        rst_seq: u32,
        successor: Option<OldRange>,
    },
}

/// The reference diode of one flow (see the module docs for its rules).
#[derive(Debug, Clone)]
pub struct StreamDiode<'s> {
    spec: &'s Spec,
    config: DiodeConfig,
    state: State,
    judged: Vec<u8>,
    fresh_starts: usize,
}

/// A packet-mode spec given to [`StreamDiode::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec {0} is a packet-mode spec; a stream diode needs \"mode\": \"stream\"")]
pub struct NotAStreamSpec(pub String);

impl<'s> StreamDiode<'s> {
    /// A diode for a new flow under the stream spec `spec`.
    pub fn new(spec: &'s Spec, config: DiodeConfig) -> Result<Self, NotAStreamSpec> {
        if spec.mode == Mode::Packet {
            return Err(NotAStreamSpec(spec.name.clone()));
        }
        Ok(StreamDiode {
            spec,
            config,
            state: State::Listen,
            judged: Vec::new(),
            fresh_starts: 0,
        })
    }

    /// The judged stream: every byte the diode let through, in order.
    pub fn judged(&self) -> &[u8] {
        &self.judged
    }

    /// How many times a new connection on the 4-tuple started a fresh
    /// flow (rule 7); [`judged`](Self::judged) is the latest flow's.
    pub fn fresh_starts(&self) -> usize {
        self.fresh_starts
    }

    /// Whether the flow is latched.
    pub fn is_latched(&self) -> bool {
        matches!(self.state, State::Latched { .. })
    }

    fn latch(&mut self, rst_seq: u32, violation: Violation) -> Verdict {
        let successor = match self.state {
            State::Open {
                isn, next, avoid, ..
            } => Some(OldRange::after(isn, next, avoid)),
            _ => None,
        };
        self.state = State::Latched { rst_seq, successor };
        Verdict::Reset {
            seq: rst_seq,
            violation,
        }
    }

    /// Rule 7: whether `seg` is a valid SYN without payload that may start
    /// a fresh flow after one that must be kept out of `successor`; if so,
    /// starts it.
    fn try_fresh_start(&mut self, seg: &Segment, successor: Option<OldRange>) -> bool {
        let f = seg.flags;
        let valid_syn = f.syn
            && !f.fin
            && !f.rst
            && !f.urg
            && seg.payload.is_empty()
            && seg.checksum_ok
            && seg.ttl >= self.config.min_ttl;
        match successor {
            Some(avoid) if valid_syn && avoid.admits(seg.seq) => {
                self.state = State::Open {
                    isn: seg.seq,
                    next: seg.seq.wrapping_add(1),
                    fin: None,
                    avoid: Some(avoid),
                };
                self.judged.clear();
                self.fresh_starts += 1;
                true
            }
            _ => false,
        }
    }

    /// Decides on one segment, updating the flow's state.
    pub fn on_segment(&mut self, seg: &Segment) -> Verdict {
        if let State::Latched { rst_seq, successor } = self.state {
            if self.try_fresh_start(seg, successor) {
                return Verdict::Pass;
            }
            return Verdict::Reset {
                seq: rst_seq,
                violation: Violation::Latched,
            };
        }
        let f = seg.flags;
        if !seg.checksum_ok {
            return Verdict::Drop(DropReason::BadChecksum);
        }
        if seg.ttl < self.config.min_ttl {
            return Verdict::Drop(DropReason::TtlTooLow);
        }
        if (f.syn && (f.fin || f.rst)) || (!f.syn && !f.rst && !f.ack) {
            return Verdict::Drop(DropReason::InvalidFlags);
        }
        if f.urg {
            return Verdict::Drop(DropReason::Urgent);
        }
        let (isn, next, fin, avoid) = match self.state {
            State::Listen if f.syn => {
                if !seg.payload.is_empty() {
                    return Verdict::Drop(DropReason::BadSyn);
                }
                self.state = State::Open {
                    isn: seg.seq,
                    next: seg.seq.wrapping_add(1),
                    fin: None,
                    avoid: None,
                };
                return Verdict::Pass;
            }
            State::Listen => return self.latch(seg.seq, Violation::NoSyn),
            State::Open {
                isn,
                next,
                fin,
                avoid,
            } => (isn, next, fin, avoid),
            State::Latched { .. } => unreachable!("handled above"),
        };
        // Where a RST must go: after the FIN once one passed.
        let rst_at = fin.map_or(next, |f| f.wrapping_add(1));
        if f.rst {
            return self.latch(rst_at, Violation::SenderReset);
        }
        if f.syn {
            if seg.seq == isn && seg.payload.is_empty() {
                return Verdict::Pass;
            }
            // A new connection on the 4-tuple, ended or not (rule 7).
            if self.try_fresh_start(seg, Some(OldRange::after(isn, next, avoid))) {
                return Verdict::Pass;
            }
            return Verdict::Drop(DropReason::BadSyn);
        }
        let len = seg.payload.len();
        // No bytes and no FIN: nothing to judge, wherever its sequence
        // number points (the ACKs after a FIN sit one past it).
        if len == 0 && !f.fin {
            return Verdict::Pass;
        }
        let ahead = seg.seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            return Verdict::Drop(DropReason::Gap);
        }
        let behind = ahead.unsigned_abs() as usize;
        if behind > self.judged.len() || behind > self.config.retain {
            return Verdict::Drop(DropReason::TooOld);
        }
        let old = behind.min(len);
        let from = self.judged.len() - behind;
        if seg.payload[..old] != self.judged[from..from + old] {
            return self.latch(rst_at, Violation::ChangedBytes);
        }
        let new = &seg.payload[old..];
        let seg_fin = f.fin.then(|| seg.seq.wrapping_add(len as u32));
        if let Some(recorded) = fin {
            if !new.is_empty() || seg_fin.is_some_and(|s| s != recorded) {
                return self.latch(rst_at, Violation::AfterFin);
            }
            return Verdict::Pass;
        }
        if new.is_empty() && seg_fin.is_none() {
            return Verdict::Pass;
        }
        let mut candidate = self.judged.clone();
        candidate.extend_from_slice(new);
        let status = match judge_stream(self.spec, &candidate) {
            Ok(status) => status,
            Err(why) => return self.latch(rst_at, Violation::Refused(why)),
        };
        if seg_fin.is_some() && !status.complete {
            return self.latch(rst_at, Violation::IncompleteAtFin);
        }
        let occupied = candidate.len() as u64 + u64::from(seg_fin.is_some());
        if avoid.is_some_and(|r| occupied > r.room(isn)) {
            return self.latch(rst_at, Violation::OldRange);
        }
        self.judged = candidate;
        self.state = State::Open {
            isn,
            next: next.wrapping_add(new.len() as u32),
            fin: seg_fin,
            avoid,
        };
        Verdict::Pass
    }
}

/// A model of the receiving TCP stack and application: it assembles what
/// reaches it the way Linux does where that matters (segments without ACK,
/// with a bad checksum or a TTL too low for the path are discarded;
/// out-of-order segments are queued, a longer one replacing a shorter one
/// at the same sequence number; overlapping bytes already received are
/// kept; an urgent byte leaves the stream unless `oob_inline`; a RST at
/// exactly the next expected sequence number resets the connection).
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Hops from the diode: a segment with a lower TTL never arrives.
    pub hops: u8,
    /// `SO_OOBINLINE`: urgent bytes stay in the stream.
    pub oob_inline: bool,
    isn: Option<u32>,
    /// Stream bytes in sequence order; `None` is an urgent byte taken out.
    stream: Vec<Option<u8>>,
    /// Out-of-order segments by stream offset.
    queue: std::collections::BTreeMap<u64, Vec<Option<u8>>>,
    fin_at: Option<u64>,
    fin: bool,
    reset: bool,
}

impl Receiver {
    /// A receiver `hops` hops behind the diode.
    pub fn new(hops: u8, oob_inline: bool) -> Receiver {
        Receiver {
            hops,
            oob_inline,
            isn: None,
            stream: Vec::new(),
            queue: Default::default(),
            fin_at: None,
            fin: false,
            reset: false,
        }
    }

    /// The bytes the application has read (or can read now).
    pub fn app(&self) -> Vec<u8> {
        self.stream.iter().flatten().copied().collect()
    }

    /// Whether the application saw a clean end of stream.
    pub fn saw_fin(&self) -> bool {
        self.fin && !self.reset
    }

    /// Whether the connection was reset.
    pub fn was_reset(&self) -> bool {
        self.reset
    }

    fn rcv_nxt(&self, isn: u32) -> u32 {
        isn.wrapping_add(1).wrapping_add(self.stream.len() as u32)
    }

    /// Takes in one segment arriving from the diode.
    pub fn receive(&mut self, seg: &Segment) {
        if self.reset || !seg.checksum_ok || seg.ttl < self.hops {
            return;
        }
        let f = seg.flags;
        let Some(isn) = self.isn else {
            if f.syn && !f.rst {
                self.isn = Some(seg.seq);
                // Data on a SYN-ACK is queued as the first stream bytes.
                let mut data = seg.clone();
                data.seq = seg.seq.wrapping_add(1);
                data.flags.syn = false;
                self.take_data(seg.seq, &data);
            }
            return;
        };
        if f.rst {
            if seg.seq == self.rcv_nxt(isn)
                || self.fin && seg.seq == self.rcv_nxt(isn).wrapping_add(1)
            {
                self.reset = true;
            }
            return;
        }
        if f.syn || !f.ack {
            return;
        }
        self.take_data(isn, seg);
    }

    fn take_data(&mut self, isn: u32, seg: &Segment) {
        let mut bytes: Vec<Option<u8>> = seg.payload.iter().map(|&b| Some(b)).collect();
        let urp = usize::from(seg.urgent_pointer);
        if seg.flags.urg && !self.oob_inline && urp >= 1 && urp <= bytes.len() {
            bytes[urp - 1] = None;
        }
        let ahead = seg.seq.wrapping_sub(self.rcv_nxt(isn)) as i32;
        let have = self.stream.len() as u64;
        let start = if ahead >= 0 {
            have + ahead as u64
        } else {
            let behind = ahead.unsigned_abs() as u64;
            if behind > have {
                return;
            }
            have - behind
        };
        if self
            .fin_at
            .is_some_and(|at| start + bytes.len() as u64 > at)
        {
            return;
        }
        if seg.flags.fin {
            self.fin_at = Some(start + bytes.len() as u64);
        }
        match self.queue.get(&start) {
            Some(queued) if queued.len() >= bytes.len() => {}
            _ => {
                self.queue.insert(start, bytes);
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            let have = self.stream.len() as u64;
            let Some((&start, _)) = self.queue.range(..=have).next() else {
                break;
            };
            let bytes = self.queue.remove(&start).unwrap_or_default();
            let skip = (have - start) as usize;
            if skip < bytes.len() {
                self.stream.extend_from_slice(&bytes[skip..]);
            }
        }
        if self.fin_at == Some(self.stream.len() as u64) {
            self.fin = true;
        }
    }
}

/// Runs `segments` through a fresh diode for `spec` into `receiver`:
/// passed segments arrive unchanged, resets as [`Segment::reset`]. Returns
/// the diode (for its judged stream) and the verdicts.
pub fn run_flow<'s>(
    spec: &'s Spec,
    config: DiodeConfig,
    segments: &[Segment],
    receiver: &mut Receiver,
) -> Result<(StreamDiode<'s>, Vec<Verdict>), NotAStreamSpec> {
    let mut diode = StreamDiode::new(spec, config)?;
    let mut verdicts = Vec::with_capacity(segments.len());
    for seg in segments {
        let verdict = diode.on_segment(seg);
        match &verdict {
            Verdict::Pass => receiver.receive(seg),
            Verdict::Reset { seq, .. } => receiver.receive(&Segment::reset(*seq)),
            Verdict::Drop(_) => {}
        }
        verdicts.push(verdict);
    }
    Ok((diode, verdicts))
}
