//! Stream mode: the per-flow state, the normalization rules and the RST.
//!
//! A stream diode judges the bytes of each TCP connection (judged
//! direction) as they arrive, carrying every scan's state between segments
//! in the flow map [`FLOWS_MAP`] (a hash keyed by the flow, which never
//! evicts: see "The flow table" below). Its rules
//! are those of the reference diode `predicate_ir::stream_diode` with
//! `retain = 0` and `min_ttl =` [`MIN_TTL`] (docs/stream.md, "The kernel
//! diode"), in this order:
//!
//! 0. a segment whose TCP checksum is left to be completed after the diode
//!    (`CHECKSUM_PARTIAL`) is dropped (`partial_checksum`): the completion
//!    writes two bytes where the skb's `csum_start`/`csum_offset` say, and
//!    the sender chose them (a `virtio_net_hdr` from a VM guest or a packet
//!    socket), so it could rewrite bytes already judged. The program cannot
//!    read the skb's checksum state; [`emit_checksum_probe`] finds it out;
//! 1. a latched flow: every segment becomes a RST at the recorded sequence
//!    number (reason `latched`);
//! 2. TTL / hop limit below [`MIN_TTL`], SYN with FIN or RST, a segment
//!    with neither ACK nor RST nor SYN, URG set: dropped (`malformed`);
//! 3. no flow state: a SYN without payload creates it (an entry with the
//!    initial sequence number); a SYN with payload is dropped (`bad_syn`);
//!    anything else latches a new entry and becomes a RST at its own
//!    sequence number (`evicted`: the diode did not see the SYN, attached
//!    mid-connection);
//!    where the table is full, either becomes a RST (`table_full`);
//! 4. a RST from the sender latches the flow (`latched`);
//! 5. a SYN again: passes with the same initial sequence number and no
//!    payload; with another one, on a live, ended or latched flow, a new
//!    connection's SYN starts a fresh flow if its first byte lies outside
//!    the old range (below); else dropped (`bad_syn`; on a latched
//!    flow: a RST, `latched`, as every segment of it);
//! 6. no payload and no FIN: passes;
//! 7. a segment not starting exactly at the next expected byte is dropped
//!    (`out_of_order`): beyond it is a gap; before it the diode cannot
//!    compare bytes it no longer holds, and the receiver has ACKed (or will
//!    ACK) up to what passed, so the sender resends from there;
//! 8. after a FIN: more data latches (`latched`), the FIN again passes;
//! 9. the new bytes are judged: the scans step from the carried states
//!    over them, the stream-meaning formula decides (false: latched and a
//!    RST, reason `predicate`); with FIN the exact formula must hold too
//!    (else latched, `latched`); then the flow's next byte, stream length
//!    and states are committed and the segment passes.
//!
//! Sequence numbers are only compared for equality modulo 2^32 (32-bit
//! adds), so a stream may wrap.
//!
//! The flow table: a `BPF_MAP_TYPE_HASH` of [`FLOWS_MAX`] preallocated
//! entries (by default), so the enclave cannot make the kernel drop a
//! flow's state (with its old range) behind the diode's back, as an LRU
//! map would on enough made-up SYNs. Entries are only created (with
//! `BPF_NOEXIST`) and never deleted or replaced through the map: a new
//! connection on a 4-tuple (rule 5) rewrites its entry's value in place,
//! under the judging flag. So the map never frees an entry's memory, and a
//! pointer from a lookup always points at that 4-tuple's value (a freed
//! element of a preallocated map is reused at once, under programs still
//! holding it). An insert the map refuses (full: `E2BIG`) never passes the
//! segment: it becomes a RST (`table_full`), and a flow without stored
//! state stays without it, so its every segment is refused again.
//!
//! A reused 4-tuple (rule 7 of `predicate_ir::stream_diode`): the fresh
//! flow's value records the old range `[ARC_LO, ARC_END)`, from the old
//! flow's first byte through its next expected byte plus one maximal
//! segment (a CPU may still commit one there after a sender's RST latched
//! the flow without the judging flag), extended over the old flow's own
//! range if it was fresh too: where a receiver still holding the old
//! connection may read. The fresh flow starts outside it and latches
//! (reason `latched`) when its bytes or FIN would reach `ARC_LO`. A flow
//! latched without its SYN seen ([`value::NO_RANGE`]) has no known range,
//! so no fresh flow starts there.
//!
//! Invariants: every passed segment with payload starts at the flow's next
//! expected byte and advances it by its length, so passed payloads never
//! overlap and every receiver assembles a prefix of the judged stream; the
//! judged stream always satisfies the stream meaning. States of the scans
//! are written to the flow value as each pass finishes; every outcome after
//! the first pass either commits the segment or latches the flow, so
//! partial writes are never read as a judged state.
//!
//! Concurrency: judging (rule 9) holds the flow's flag [`value::BUSY`],
//! taken with a compare-and-exchange after rules 1-8 and re-checked there
//! (still expecting this segment, not latched, no FIN); a segment of a
//! flow another CPU is judging is dropped (`out_of_order`). The flag is
//! released after the commit, or after the latch that ends judging. A
//! fresh start (rule 5) takes the flag too, re-checks that the flow has
//! ended and reads the old range under it, so it never overlaps a commit;
//! a SYN that finds the flag taken is refused like any other (`bad_syn`).
//! Rules 1-8 read the state without it: a RST they send may carry a
//! sequence number another CPU just moved on.

use predicate_ir::{Formula, StreamProgram};

use super::asm::{Asm, Label};
use super::formula::AtomStub;
use super::packet::MAX_L4_OFFSET;
use super::scan::{self, ctx, PassGroup};
use super::{frame, CodegenError, Verdicts};
use crate::decision::Reason;
use crate::insn::*;
use crate::module::{MapDef, BPF_MAP_TYPE_HASH};

/// Name of the flow map.
pub const FLOWS_MAP: &str = "lagic_flows";
/// Flows (distinct 4-tuples) the map holds; beyond that new flows are
/// refused (`table_full`). docs/stream.md, "The flow table", sizes it.
pub const FLOWS_MAX: u32 = 65_536;
/// Flow table sizes `lagic compile --flows` accepts: from one to 2^22 (at
/// the largest value, about 1.2 GiB of kernel memory, preallocated).
pub const FLOWS_RANGE: std::ops::RangeInclusive<u32> = 1..=4_194_304;
/// Smallest IPv4 TTL / IPv6 hop limit passed: a segment with less might
/// expire between the diode and the receiver.
pub const MIN_TTL: i32 = 8;
/// Most scans a stream program may have (the frame holds the flow key and
/// the stream scalars below the final states).
pub const MAX_STREAM_SCANS: usize = 24;
/// Most machine registers (value slots) a stream program may carry.
pub const MAX_STREAM_SLOTS: usize = 38;
/// Map index of the flow map (after the counters and the ring buffer).
const FLOWS: i32 = 2;

/// The flow key: family, ports, addresses (IPv4 ones in the first 4 bytes
/// of their 16), zeros elsewhere.
pub mod key {
    /// `u8`: 4 or 6.
    pub const FAMILY: i16 = 0;
    /// `u16` source port then `u16` destination port, as on the wire.
    pub const PORTS: i16 = 4;
    /// 16 bytes.
    pub const SADDR: i16 = 8;
    /// 16 bytes.
    pub const DADDR: i16 = 24;
    /// Size of the key.
    pub const SIZE: u32 = 40;
}

/// The flow value (little-endian `u32`s unless said otherwise).
pub mod value {
    /// Status bits: [`LATCHED`], [`FIN_SEEN`].
    pub const STATUS: i16 = 0;
    /// Initial sequence number (of the SYN).
    pub const ISN: i16 = 4;
    /// Sequence number of the next data byte expected.
    pub const NEXT: i16 = 8;
    /// Sequence number of the FIN, once one passed.
    pub const FIN_SEQ: i16 = 12;
    /// Where the RSTs of a latched flow go.
    pub const RST_SEQ: i16 = 16;
    /// Nonzero while a CPU judges a segment of the flow (taken with an
    /// atomic compare-and-exchange, released with an exchange).
    pub const BUSY: i16 = 20;
    /// `u64`: bytes judged so far (the stream offset of the next byte).
    pub const STREAM_LEN: i16 = 24;
    /// With [`OLD_RANGE`]: the first sequence number of the old range.
    pub const ARC_LO: i16 = 32;
    /// With [`OLD_RANGE`]: one past the last of the old range.
    pub const ARC_END: i16 = 36;
    /// The scans' machine registers, pass group after pass group.
    pub const SLOTS: i32 = 40;
    /// Status bit: the flow is latched.
    pub const LATCHED: i32 = 1;
    /// Status bit: a FIN passed.
    pub const FIN_SEEN: i32 = 2;
    /// Status bit: a fresh flow on a reused 4-tuple, kept out of
    /// `[ARC_LO, ARC_END)`.
    pub const OLD_RANGE: i32 = 4;
    /// Status bit: latched without its SYN seen (the range is unknown).
    pub const NO_RANGE: i32 = 8;
    /// Size of a value with `slots` machine registers.
    pub const fn size(slots: usize) -> u32 {
        (SLOTS as u32 + 4 * slots as u32).div_ceil(8) * 8
    }
}

/// Stack words of the stream code (offsets from `r10`), below the final
/// states of [`MAX_STREAM_SCANS`] scans and above the opaque zero.
pub(crate) mod sframe {
    use super::super::frame;
    const BASE: i16 = frame::FINAL_STATES - 8 * super::MAX_STREAM_SCANS as i16;
    /// The flow key ([`super::key`]).
    pub const KEY: i16 = BASE - 40;
    /// Spilled packet pointer to the TCP header (until a helper moves data).
    pub const TCP_PTR: i16 = KEY - 8;
    /// Spilled pointer to the flow's value.
    pub const VALUE_PTR: i16 = TCP_PTR - 8;
    /// The segment's sequence number (host order).
    pub const SEQ: i16 = VALUE_PTR - 8;
    /// The TCP flags byte.
    pub const FLAGS: i16 = SEQ - 8;
    /// TTL / hop limit.
    pub const TTL: i16 = FLAGS - 8;
    /// Frame offset of the TCP header.
    pub const L4_OFF: i16 = TTL - 8;
    /// Sequence number a RST for this segment carries (host order).
    pub const RST_SEQ: i16 = L4_OFF - 8;
    /// Stream offset of the segment's first byte.
    pub const STREAM_OFFSET: i16 = RST_SEQ - 8;
    /// Stream length with the segment's bytes (what `len` tests read).
    pub const NEW_LEN: i16 = STREAM_OFFSET - 8;
    /// The TCP checksum field as received (16 bits as loaded), while the
    /// checksum probe runs.
    pub const CSUM_FIELD: i16 = NEW_LEN - 8;
    /// A flow value being created: the final states' area, unused then.
    pub const VALUE_BUF: i16 = frame::FINAL_STATES - 8 * (super::MAX_STREAM_SCANS as i16 - 1);
    const _: () = assert!(CSUM_FIELD > frame::OPAQUE_ZERO + 8);
    const _: () =
        assert!(VALUE_BUF + super::value::size(super::MAX_STREAM_SLOTS) as i16 <= frame::CTX);
}

pub(crate) const TCP_FIN: i32 = 0x01;
const TCP_SYN: i32 = 0x02;
const TCP_RST: i32 = 0x04;
const TCP_ACK: i32 = 0x10;
const TCP_URG: i32 = 0x20;

/// The maps of a stream diode: the counters and events of every diode, and
/// the flow map of `flows` entries.
pub(crate) fn maps(slots: usize, flows: u32) -> Vec<MapDef> {
    let mut maps = super::verdict::maps();
    debug_assert_eq!(maps.len(), FLOWS as usize);
    maps.push(MapDef {
        name: FLOWS_MAP.into(),
        map_type: BPF_MAP_TYPE_HASH,
        key_size: key::SIZE,
        value_size: value::size(slots),
        max_entries: flows,
    });
    maps
}

/// In the prologue, with `r5` = the TCP header (20 bytes readable) and
/// `r7` = its frame offset: spill what the stream code and the RST need.
pub(crate) fn spill_tcp(a: &mut Asm) {
    a.emit(Insn::store_reg(Size::DW, R10, sframe::TCP_PTR, R5));
    a.emit(Insn::store_reg(Size::DW, R10, sframe::L4_OFF, R7));
    a.emit(Insn::load(Size::W, R4, R5, 4));
    a.emit(Insn::be(R4, SwapWidth::B32));
    a.emit(Insn::store_reg(Size::DW, R10, sframe::SEQ, R4));
    a.emit(Insn::load(Size::B, R4, R5, 13));
    a.emit(Insn::store_reg(Size::DW, R10, sframe::FLAGS, R4));
}

/// Latches the flow whose value is at [`sframe::VALUE_PTR`]: status gets
/// [`value::LATCHED`], the RST sequence number [`sframe::RST_SEQ`].
/// Clobbers r1, r2.
pub(crate) fn emit_latch(a: &mut Asm) {
    a.emit(Insn::load(Size::DW, R1, R10, sframe::VALUE_PTR));
    a.emit(Insn::load(Size::W, R2, R1, value::STATUS));
    a.emit(Insn::alu64_imm(AluOp::Or, R2, value::LATCHED));
    a.emit(Insn::store_reg(Size::W, R1, value::STATUS, R2));
    a.emit(Insn::load(Size::DW, R2, R10, sframe::RST_SEQ));
    a.emit(Insn::store_reg(Size::W, R1, value::RST_SEQ, R2));
}

/// [`emit_latch`] by the CPU holding the flow's judging flag, which it
/// then releases (the latch stops all judging; a new connection's SYN
/// takes the flag to start a fresh flow). Clobbers r0-r2.
pub(crate) fn emit_latch_judged(a: &mut Asm) {
    emit_latch(a);
    a.emit(Insn::load(Size::DW, R0, R10, sframe::VALUE_PTR));
    release(a);
}

/// The reasons whose segment becomes a RST towards the receiver.
pub(crate) fn resets() -> [Reason; 4] {
    [
        Reason::Predicate,
        Reason::Latched,
        Reason::Evicted,
        Reason::TableFull,
    ]
}

/// The end of every drop in stream mode, with `r6` = skb and `r7` = the
/// reason: for [`resets`], the segment is rewritten into a RST without
/// payload at [`sframe::RST_SEQ`] and passed; any other reason, or a
/// rewrite that fails, drops. The RST's checksum field is valid both as a
/// complete checksum and as a pseudo-header sum left to offload, since the
/// skb's checksum state cannot be read.
pub(crate) fn emit_finish_drop(a: &mut Asm) {
    let shot = a.label();
    let reset = a.label();
    for reason in resets() {
        a.jmp_imm(JmpCond::Jeq, R7, reason as i32, reset);
    }
    a.ja(shot);

    a.bind(reset);
    // Trim to the TCP header without options.
    a.emit(Insn::load(Size::DW, R2, R10, sframe::L4_OFF));
    a.jmp_imm(JmpCond::Jgt, R2, MAX_L4_OFFSET, shot);
    a.emit(Insn::alu64_imm(AluOp::Add, R2, 20));
    a.emit(Insn::mov64_reg(R1, R6));
    a.emit(Insn::mov64_imm(R3, 0));
    a.emit(Insn::call_helper(helper::BPF_FUNC_SKB_CHANGE_TAIL));
    a.jmp_imm(JmpCond::Jne, R0, 0, shot);
    a.emit(Insn::load(Size::W, R2, R6, skb::DATA));
    a.emit(Insn::load(Size::W, R3, R6, skb::DATA_END));
    a.emit(Insn::load(Size::DW, R4, R10, sframe::L4_OFF));
    a.jmp_imm(JmpCond::Jgt, R4, MAX_L4_OFFSET, shot);
    // Ethernet + the fixed IPv6 header, or IPv4 + TCP: at least 54 bytes.
    a.emit(Insn::mov64_reg(R1, R2));
    a.emit(Insn::alu64_imm(AluOp::Add, R1, 54));
    a.jmp_reg(JmpCond::Jgt, R1, R3, shot);
    a.emit(Insn::mov64_reg(R5, R2));
    a.emit(Insn::alu64_reg(AluOp::Add, R5, R4));
    a.emit(Insn::mov64_reg(R1, R5));
    a.emit(Insn::alu64_imm(AluOp::Add, R1, 20));
    a.jmp_reg(JmpCond::Jgt, R1, R3, shot);

    // The TCP header: RST|ACK at the RST sequence number, no options.
    a.emit(Insn::load(Size::DW, R1, R10, sframe::RST_SEQ));
    a.emit(Insn::be(R1, SwapWidth::B32));
    a.emit(Insn::store_reg(Size::W, R5, 4, R1));
    a.emit(Insn::store_imm(Size::B, R5, 12, 5 << 4));
    a.emit(Insn::store_imm(Size::B, R5, 13, TCP_RST | TCP_ACK));
    a.emit(Insn::store_imm(Size::H, R5, 16, 0));
    a.emit(Insn::store_imm(Size::H, R5, 18, 0));
    // r9 = the header's ones'-complement sum (16-bit words as loaded).
    a.emit(Insn::mov64_imm(R9, 0));
    for word in 0..10 {
        a.emit(Insn::load(Size::H, R1, R5, 2 * word));
        a.emit(Insn::alu64_reg(AluOp::Add, R9, R1));
    }

    // r8 = the pseudo header's sum without its length; the IP length.
    let v6 = a.label();
    let sum = a.label();
    a.emit(Insn::load(Size::H, R1, R2, 12));
    a.emit(Insn::be(R1, SwapWidth::B16));
    a.jmp_imm(JmpCond::Jeq, R1, 0x86DD, v6);
    // IPv4: total length = IP header + 20, header checksum updated
    // incrementally (RFC 1624: HC' = ~(~HC + ~m + m')).
    a.emit(Insn::load(Size::H, R1, R2, 16));
    a.emit(Insn::mov64_reg(R8, R4));
    a.emit(Insn::alu64_imm(AluOp::Add, R8, 20 - 14));
    a.emit(Insn::be(R8, SwapWidth::B16));
    a.emit(Insn::store_reg(Size::H, R2, 16, R8));
    a.emit(Insn::load(Size::H, R0, R2, 24));
    a.emit(Insn::alu64_imm(AluOp::Xor, R0, 0xFFFF));
    a.emit(Insn::alu64_imm(AluOp::Xor, R1, 0xFFFF));
    a.emit(Insn::alu64_reg(AluOp::Add, R0, R1));
    a.emit(Insn::alu64_reg(AluOp::Add, R0, R8));
    fold(a, R0, R1);
    a.emit(Insn::alu64_imm(AluOp::Xor, R0, 0xFFFF));
    a.emit(Insn::store_reg(Size::H, R2, 24, R0));
    a.emit(Insn::mov64_imm(R8, 0));
    for word in 0..4 {
        a.emit(Insn::load(Size::H, R1, R2, 26 + 2 * word));
        a.emit(Insn::alu64_reg(AluOp::Add, R8, R1));
    }
    a.ja(sum);
    a.bind(v6);
    // IPv6: payload length 20 (no extension headers reach here).
    a.emit(Insn::store_imm(Size::H, R2, 18, 20 << 8));
    a.emit(Insn::mov64_imm(R8, 0));
    for word in 0..16 {
        a.emit(Insn::load(Size::H, R1, R2, 22 + 2 * word));
        a.emit(Insn::alu64_reg(AluOp::Add, R8, R1));
    }
    a.bind(sum);
    // Next header / protocol 6, as the big-endian word loads.
    a.emit(Insn::alu64_imm(AluOp::Add, R8, 6 << 8));
    // The checksum field must be right whatever the skb's checksum state,
    // which the program cannot read: a complete checksum where the receiver
    // verifies (CHECKSUM_NONE), the pseudo-header sum where the stack or NIC
    // completes it later (CHECKSUM_PARTIAL). Guessing the state from the
    // segment's own field fails where a complete checksum happens to equal
    // the pseudo-header sum (1 in 65,535). So the field holds the
    // pseudo-header sum P, and the urgent pointer (ignored without URG) is
    // chosen so that P is also the complete checksum: P + the header (with
    // P and urp in it) sums to -0, i.e. urp = ~(2P + header without them).
    // Completing a partial checksum then writes P again.
    a.emit(Insn::mov64_reg(R0, R8));
    a.emit(Insn::alu64_imm(AluOp::Add, R0, 20 << 8));
    fold(a, R0, R1);
    a.emit(Insn::store_reg(Size::H, R5, 16, R0));
    a.emit(Insn::mov64_reg(R3, R9));
    a.emit(Insn::alu64_reg(AluOp::Add, R3, R0));
    a.emit(Insn::alu64_reg(AluOp::Add, R3, R0));
    fold(a, R3, R1);
    a.emit(Insn::alu64_imm(AluOp::Xor, R3, 0xFFFF));
    a.emit(Insn::store_reg(Size::H, R5, 18, R3));
    a.emit(Insn::mov64_imm(R0, TC_ACT_OK));
    a.emit(Insn::exit());

    a.bind(shot);
    a.emit(Insn::mov64_imm(R0, TC_ACT_SHOT));
    a.emit(Insn::exit());
}

/// `reg` = the 16-bit ones'-complement fold of `reg` (< 2^32). Clobbers `tmp`.
fn fold(a: &mut Asm, reg: Register, tmp: Register) {
    for _ in 0..3 {
        a.emit(Insn::mov64_reg(tmp, reg));
        a.emit(Insn::alu64_imm(AluOp::Rsh, tmp, 16));
        a.emit(Insn::alu64_imm(AluOp::And, reg, 0xFFFF));
        a.emit(Insn::alu64_reg(AluOp::Add, reg, tmp));
    }
}

/// `if (flags & bits) goto target`, flags reloaded into r1.
fn if_flags(a: &mut Asm, bits: i32, target: Label) {
    a.emit(Insn::load(Size::DW, R1, R10, sframe::FLAGS));
    a.jmp_imm(JmpCond::Jset, R1, bits, target);
}

/// `reg` = the payload length (`n`).
fn load_n(a: &mut Asm, reg: Register) {
    a.emit(Insn::load(Size::H, reg, R10, frame::CTX + ctx::PAYLOAD_LEN));
}

/// Rule 0 (module docs): drops a segment whose skb is `CHECKSUM_PARTIAL`
/// to `v.partial_checksum`, leaving every other segment as it came.
///
/// `__sk_buff` does not expose `ip_summed`, but `bpf_l4_csum_replace` with
/// `BPF_F_PSEUDO_HDR` and a difference `d` (size 0) moves the checksum
/// field in opposite directions by it: the kernel's
/// `inet_proto_csum_replace_by_diff` adds `d` to a partial checksum (the
/// field holds the pseudo-header sum, which changed by `d`) and takes it
/// from a complete one (`csum_fold(d + ~field)`), also adjusting
/// `skb->csum` of a `CHECKSUM_COMPLETE` skb. So the probe applies `d = 1`,
/// reads the field, applies `d = -1` (`~1`: undoing both), and, where the
/// field came back as the other zero (a complete checksum `0xFFFF` comes
/// back `0x0000`, the same sum), writes its original bytes again. Only the exact complete-checksum
/// result counts as not partial: anything else, like a failed helper,
/// drops. Both helpers may move the packet, so the packet pointers are
/// loaded anew after each ([`reload_packet`]).
fn emit_checksum_probe(a: &mut Asm, v: &Verdicts) {
    a.emit(Insn::load(Size::DW, R1, R10, sframe::TCP_PTR));
    a.emit(Insn::load(Size::H, R1, R1, 16));
    a.emit(Insn::store_reg(Size::DW, R10, sframe::CSUM_FIELD, R1));
    l4_csum_diff(a, 1, v);
    reload_packet(a, v);
    a.emit(Insn::load(Size::H, R8, R5, 16));
    l4_csum_diff(a, !1, v);
    reload_packet(a, v);
    // r1 = what a complete checksum's field became: csum_fold(1 + ~field),
    // ~field as the kernel's 32 bits 0xFFFF0000 | (field ^ 0xFFFF), whose
    // ones'-complement sum is that of (field ^ 0xFFFF) + 0x10000.
    a.emit(Insn::load(Size::DW, R1, R10, sframe::CSUM_FIELD));
    a.emit(Insn::alu64_imm(AluOp::Xor, R1, 0xFFFF));
    a.emit(Insn::alu64_imm(AluOp::Add, R1, 0x10000));
    fold(a, R1, R2);
    a.emit(Insn::alu64_imm(AluOp::Xor, R1, 0xFFFF));
    a.jmp_reg(JmpCond::Jne, R8, R1, v.partial_checksum);
    let same = a.label();
    a.emit(Insn::load(Size::DW, R1, R10, sframe::CSUM_FIELD));
    a.emit(Insn::load(Size::H, R2, R5, 16));
    a.jmp_reg(JmpCond::Jeq, R1, R2, same);
    a.emit(Insn::store_reg(Size::H, R5, 16, R1));
    a.bind(same);
}

/// `bpf_l4_csum_replace(skb, tcp + 16, 0, diff, BPF_F_PSEUDO_HDR)` (a
/// difference, size 0); a failure drops (`malformed`). Clobbers r0-r5.
fn l4_csum_diff(a: &mut Asm, diff: i32, v: &Verdicts) {
    a.emit(Insn::mov64_reg(R1, R6));
    a.emit(Insn::load(Size::DW, R2, R10, sframe::L4_OFF));
    a.emit(Insn::alu64_imm(AluOp::Add, R2, 16));
    a.emit(Insn::mov64_imm(R3, 0));
    // The helper takes the low 32 bits of a ones'-complement difference.
    a.emit(Insn::mov64_imm(R4, diff));
    a.emit(Insn::mov64_imm(R5, helper::BPF_F_PSEUDO_HDR));
    a.emit(Insn::call_helper(helper::BPF_FUNC_L4_CSUM_REPLACE));
    a.jmp_imm(JmpCond::Jne, R0, 0, v.drop);
}

/// After a helper that may move the packet: `r2` = data, `r3` = data_end
/// and `r5` = the TCP header (its 20 bytes checked readable), spilled
/// again where the prologue spilled them ([`ctx::DATA`], [`ctx::DATA_END`],
/// [`sframe::TCP_PTR`]). A packet now too short drops (`malformed`).
/// Clobbers r1-r5.
fn reload_packet(a: &mut Asm, v: &Verdicts) {
    a.emit(Insn::load(Size::W, R2, R6, skb::DATA));
    a.emit(Insn::load(Size::W, R3, R6, skb::DATA_END));
    a.emit(Insn::load(Size::DW, R4, R10, sframe::L4_OFF));
    a.jmp_imm(JmpCond::Jgt, R4, MAX_L4_OFFSET, v.drop);
    a.emit(Insn::mov64_reg(R5, R2));
    a.emit(Insn::alu64_reg(AluOp::Add, R5, R4));
    a.emit(Insn::mov64_reg(R1, R5));
    a.emit(Insn::alu64_imm(AluOp::Add, R1, 20));
    a.jmp_reg(JmpCond::Jgt, R1, R3, v.drop);
    a.emit(Insn::store_reg(Size::DW, R10, frame::CTX + ctx::DATA, R2));
    a.emit(Insn::store_reg(
        Size::DW,
        R10,
        frame::CTX + ctx::DATA_END,
        R3,
    ));
    a.emit(Insn::store_reg(Size::DW, R10, sframe::TCP_PTR, R5));
}

/// The checks of rule 2 (module docs): drops to `v.drop`.
fn emit_sanity(a: &mut Asm, v: &Verdicts) {
    a.emit(Insn::load(Size::DW, R1, R10, sframe::TTL));
    a.jmp_imm(JmpCond::Jlt, R1, MIN_TTL, v.drop);
    let not_syn = a.label();
    let flags_ok = a.label();
    a.emit(Insn::load(Size::DW, R1, R10, sframe::FLAGS));
    a.jmp_imm(JmpCond::Jset, R1, TCP_URG, v.drop);
    a.emit(Insn::mov64_reg(R2, R1));
    a.emit(Insn::alu64_imm(AluOp::And, R2, TCP_SYN));
    a.jmp_imm(JmpCond::Jeq, R2, 0, not_syn);
    a.jmp_imm(JmpCond::Jset, R1, TCP_FIN | TCP_RST, v.drop);
    a.ja(flags_ok);
    a.bind(not_syn);
    a.jmp_imm(JmpCond::Jset, R1, TCP_ACK | TCP_RST, flags_ok);
    a.ja(v.drop);
    a.bind(flags_ok);
}

/// Zeroes a flow value of `size` bytes at [`sframe::VALUE_BUF`].
fn zero_value_buf(a: &mut Asm, size: u32) {
    for i in 0..size / 8 {
        a.emit(Insn::store_imm(
            Size::DW,
            R10,
            sframe::VALUE_BUF + 8 * i as i16,
            0,
        ));
    }
}

/// `errno` of an update with `BPF_NOEXIST` on a key the map has.
const EEXIST: i32 = 17;
/// `bpf_map_update_elem` flag: create the key, never replace it.
const BPF_NOEXIST: i32 = 1;

/// `bpf_map_update_elem(flows, key, VALUE_BUF, BPF_NOEXIST)`; result in
/// r0. Entries are only ever created so: the map never frees one (module
/// docs).
fn create_from_buf(a: &mut Asm) {
    a.emit(Insn::ld_map(R1, FLOWS));
    a.emit(Insn::mov64_reg(R2, R10));
    a.emit(Insn::alu64_imm(AluOp::Add, R2, sframe::KEY as i32));
    a.emit(Insn::mov64_reg(R3, R10));
    a.emit(Insn::alu64_imm(AluOp::Add, R3, sframe::VALUE_BUF as i32));
    a.emit(Insn::mov64_imm(R4, BPF_NOEXIST));
    a.emit(Insn::call_helper(helper::BPF_FUNC_MAP_UPDATE_ELEM));
}

/// After the prologue: the flow key, the flow's state and rules 1-8 of the
/// module docs. Falls through, with the segment at the next expected byte
/// and new bytes or a FIN to judge, [`sframe::STREAM_OFFSET`] and
/// [`sframe::NEW_LEN`] set; every other path ends at a verdict.
pub(crate) fn emit_segment(a: &mut Asm, v: &Verdicts, value_size: u32) {
    emit_checksum_probe(a, v);
    for i in 0..key::SIZE as i16 / 8 {
        a.emit(Insn::store_imm(Size::DW, R10, sframe::KEY + 8 * i, 0));
    }
    a.emit(Insn::store_imm(Size::DW, R10, sframe::STREAM_OFFSET, 0));
    a.emit(Insn::store_imm(Size::DW, R10, sframe::NEW_LEN, 0));
    a.emit(Insn::load(Size::DW, R1, R10, sframe::SEQ));
    a.emit(Insn::store_reg(Size::DW, R10, sframe::RST_SEQ, R1));

    // Addresses and TTL. Every TCP frame has at least 54 bytes.
    a.emit(Insn::load(Size::DW, R2, R10, frame::CTX + ctx::DATA));
    a.emit(Insn::load(Size::DW, R3, R10, frame::CTX + ctx::DATA_END));
    a.emit(Insn::mov64_reg(R1, R2));
    a.emit(Insn::alu64_imm(AluOp::Add, R1, 54));
    a.jmp_reg(JmpCond::Jgt, R1, R3, v.drop);
    let v6 = a.label();
    let common = a.label();
    a.emit(Insn::load(Size::H, R4, R2, 12));
    a.emit(Insn::be(R4, SwapWidth::B16));
    a.jmp_imm(JmpCond::Jeq, R4, 0x86DD, v6);
    a.emit(Insn::store_imm(Size::B, R10, sframe::KEY + key::FAMILY, 4));
    a.emit(Insn::load(Size::W, R1, R2, 26));
    a.emit(Insn::store_reg(Size::W, R10, sframe::KEY + key::SADDR, R1));
    a.emit(Insn::load(Size::W, R1, R2, 30));
    a.emit(Insn::store_reg(Size::W, R10, sframe::KEY + key::DADDR, R1));
    a.emit(Insn::load(Size::B, R1, R2, 22));
    a.ja(common);
    a.bind(v6);
    a.emit(Insn::store_imm(Size::B, R10, sframe::KEY + key::FAMILY, 6));
    for (from, to) in [
        (22, key::SADDR),
        (30, key::SADDR + 8),
        (38, key::DADDR),
        (46, key::DADDR + 8),
    ] {
        a.emit(Insn::load(Size::DW, R1, R2, from));
        a.emit(Insn::store_reg(Size::DW, R10, sframe::KEY + to, R1));
    }
    a.emit(Insn::load(Size::B, R1, R2, 21));
    a.bind(common);
    a.emit(Insn::store_reg(Size::DW, R10, sframe::TTL, R1));
    a.emit(Insn::load(Size::DW, R5, R10, sframe::TCP_PTR));
    a.emit(Insn::mov64_reg(R1, R5));
    a.emit(Insn::alu64_imm(AluOp::Add, R1, 20));
    a.jmp_reg(JmpCond::Jgt, R1, R3, v.drop);
    a.emit(Insn::load(Size::W, R1, R5, 0));
    a.emit(Insn::store_reg(Size::W, R10, sframe::KEY + key::PORTS, R1));

    // The flow's state.
    let listen = a.label();
    let open = a.label();
    a.emit(Insn::ld_map(R1, FLOWS));
    a.emit(Insn::mov64_reg(R2, R10));
    a.emit(Insn::alu64_imm(AluOp::Add, R2, sframe::KEY as i32));
    a.emit(Insn::call_helper(helper::BPF_FUNC_MAP_LOOKUP_ELEM));
    let no_entry = a.label();
    a.jmp_imm(JmpCond::Jeq, R0, 0, no_entry);
    a.emit(Insn::store_reg(Size::DW, R10, sframe::VALUE_PTR, R0));
    // Rule 1: latched.
    let latched_now = a.label();
    let reuse_after_latch = a.label();
    let reuse_open = a.label();
    a.emit(Insn::load(Size::W, R1, R0, value::STATUS));
    a.jmp_imm(JmpCond::Jset, R1, value::LATCHED, latched_now);
    emit_sanity(a, v);
    a.ja(open);
    a.bind(latched_now);
    a.emit(Insn::load(Size::W, R1, R0, value::RST_SEQ));
    a.emit(Insn::store_reg(Size::DW, R10, sframe::RST_SEQ, R1));
    // A new connection's SYN may start a fresh flow (rule 5).
    if_flags(a, TCP_SYN, reuse_after_latch);
    a.ja(v.latched);

    // Rule 3: no state.
    a.bind(no_entry);
    emit_sanity(a, v);
    a.bind(listen);
    let no_syn = a.label();
    a.emit(Insn::load(Size::DW, R1, R10, sframe::FLAGS));
    a.emit(Insn::alu64_imm(AluOp::And, R1, TCP_SYN));
    a.jmp_imm(JmpCond::Jeq, R1, 0, no_syn);
    load_n(a, R1);
    a.jmp_imm(JmpCond::Jne, R1, 0, v.bad_syn);
    zero_value_buf(a, value_size);
    emit_store_new_flow(a, v);
    a.bind(no_syn);
    // Mid-connection: remember the latch. A full table cannot, and says so;
    // the flow then stays without state, refused segment by segment.
    zero_value_buf(a, value_size);
    a.emit(Insn::store_imm(
        Size::W,
        R10,
        sframe::VALUE_BUF + value::STATUS,
        value::LATCHED | value::NO_RANGE,
    ));
    a.emit(Insn::load(Size::DW, R1, R10, sframe::SEQ));
    a.emit(Insn::store_reg(
        Size::W,
        R10,
        sframe::VALUE_BUF + value::RST_SEQ,
        R1,
    ));
    create_from_buf(a);
    a.jmp_imm(JmpCond::Jeq, R0, -EEXIST, v.out_of_order);
    a.jmp_imm(JmpCond::Jne, R0, 0, v.table_full);
    a.ja(v.evicted);

    // An open flow.
    a.bind(open);
    let latch = a.label();
    a.emit(Insn::load(Size::DW, R0, R10, sframe::VALUE_PTR));
    a.emit(Insn::load(Size::W, R3, R0, value::NEXT));
    // RSTs go to the next byte, or one past a FIN that passed.
    let rst_known = a.label();
    a.emit(Insn::mov64_reg(R4, R3));
    a.emit(Insn::load(Size::W, R2, R0, value::STATUS));
    a.emit(Insn::alu64_imm(AluOp::And, R2, value::FIN_SEEN));
    a.jmp_imm(JmpCond::Jeq, R2, 0, rst_known);
    a.emit(Insn::load(Size::W, R4, R0, value::FIN_SEQ));
    a.emit(Insn::alu32_imm(AluOp::Add, R4, 1));
    a.bind(rst_known);
    a.emit(Insn::store_reg(Size::DW, R10, sframe::RST_SEQ, R4));
    // Rule 4: a RST from the sender.
    if_flags(a, TCP_RST, latch);
    // Rule 5: SYN again.
    let not_syn = a.label();
    a.emit(Insn::load(Size::DW, R1, R10, sframe::FLAGS));
    a.emit(Insn::alu64_imm(AluOp::And, R1, TCP_SYN));
    a.jmp_imm(JmpCond::Jeq, R1, 0, not_syn);
    load_n(a, R1);
    a.jmp_imm(JmpCond::Jne, R1, 0, v.bad_syn);
    a.emit(Insn::load(Size::W, R1, R0, value::ISN));
    a.emit(Insn::load(Size::DW, R2, R10, sframe::SEQ));
    let other_isn = a.label();
    a.jmp_reg(JmpCond::Jne, R1, R2, other_isn);
    a.ja(v.pass);
    // Another initial sequence number: a new connection, whether this
    // flow ended or not (rule 7 of the reference).
    a.bind(other_isn);
    a.ja(reuse_open);
    a.bind(reuse_after_latch);
    emit_fresh_start(a, v, value_size, v.latched);
    a.bind(reuse_open);
    emit_fresh_start(a, v, value_size, v.bad_syn);
    a.bind(not_syn);
    // Rule 6: nothing to judge.
    let something = a.label();
    load_n(a, R9);
    a.jmp_imm(JmpCond::Jne, R9, 0, something);
    if_flags(a, TCP_FIN, something);
    a.ja(v.pass);
    a.bind(something);
    // Rule 7: only the next expected byte.
    a.emit(Insn::load(Size::DW, R2, R10, sframe::SEQ));
    a.jmp_reg(JmpCond::Jne, R2, R3, v.out_of_order);
    // Rule 8: after a FIN.
    let before_fin = a.label();
    a.emit(Insn::load(Size::W, R2, R0, value::STATUS));
    a.emit(Insn::alu64_imm(AluOp::And, R2, value::FIN_SEEN));
    a.jmp_imm(JmpCond::Jeq, R2, 0, before_fin);
    a.jmp_imm(JmpCond::Jne, R9, 0, latch);
    a.ja(v.pass);
    a.bind(before_fin);
    // Judge under the flow's flag: a segment of a flow another CPU is
    // judging is dropped (the sender resends it). Under the flag the flow
    // must still expect this segment; otherwise it is dropped too.
    let release_drop = a.label();
    a.emit(Insn::load(Size::DW, R1, R10, sframe::VALUE_PTR));
    a.emit(Insn::mov64_imm(R0, 0));
    a.emit(Insn::mov64_imm(R2, 1));
    a.emit(Insn::Atomic {
        size: Size::W,
        op: AtomicOp::Cmpxchg,
        dst: R1,
        src: R2,
        off: value::BUSY,
    });
    a.jmp_imm(JmpCond::Jne, R0, 0, v.out_of_order);
    a.emit(Insn::load(Size::DW, R0, R10, sframe::VALUE_PTR));
    a.emit(Insn::load(Size::W, R2, R0, value::STATUS));
    a.jmp_imm(
        JmpCond::Jset,
        R2,
        value::LATCHED | value::FIN_SEEN,
        release_drop,
    );
    a.emit(Insn::load(Size::W, R3, R0, value::NEXT));
    a.emit(Insn::load(Size::DW, R2, R10, sframe::SEQ));
    a.jmp_reg(JmpCond::Jne, R2, R3, release_drop);
    a.emit(Insn::load(Size::DW, R1, R0, value::STREAM_LEN));
    a.emit(Insn::store_reg(Size::DW, R10, sframe::STREAM_OFFSET, R1));
    a.emit(Insn::alu64_reg(AluOp::Add, R1, R9));
    a.emit(Insn::store_reg(Size::DW, R10, sframe::NEW_LEN, R1));
    let judge = a.label();
    a.ja(judge);

    a.bind(latch);
    emit_latch(a);
    a.ja(v.latched);
    a.bind(release_drop);
    a.emit(Insn::load(Size::DW, R0, R10, sframe::VALUE_PTR));
    release(a);
    a.ja(v.out_of_order);
    a.bind(judge);
}

/// Rule 5 with another initial sequence number (value at
/// [`sframe::VALUE_PTR`], the segment a SYN): a valid SYN without payload whose first byte lies outside the old
/// range replaces the flow with a fresh one, in place under the judging
/// flag, and passes; anything else (a flag another CPU holds included)
/// goes to `refused`.
fn emit_fresh_start(a: &mut Asm, v: &Verdicts, value_size: u32, refused: Label) {
    a.emit(Insn::load(Size::DW, R1, R10, sframe::TTL));
    a.jmp_imm(JmpCond::Jlt, R1, MIN_TTL, refused);
    if_flags(a, TCP_URG | TCP_FIN | TCP_RST, refused);
    load_n(a, R1);
    a.jmp_imm(JmpCond::Jne, R1, 0, refused);
    // Under the flag: no other CPU judges the old flow meanwhile, and the
    // range below is read from the flow as it now is.
    a.emit(Insn::load(Size::DW, R1, R10, sframe::VALUE_PTR));
    a.emit(Insn::mov64_imm(R0, 0));
    a.emit(Insn::mov64_imm(R2, 1));
    a.emit(Insn::Atomic {
        size: Size::W,
        op: AtomicOp::Cmpxchg,
        dst: R1,
        src: R2,
        off: value::BUSY,
    });
    a.jmp_imm(JmpCond::Jne, R0, 0, refused);
    let release_refused = a.label();
    a.emit(Insn::load(Size::DW, R0, R10, sframe::VALUE_PTR));
    a.emit(Insn::load(Size::W, R2, R0, value::STATUS));
    a.jmp_imm(JmpCond::Jset, R2, value::NO_RANGE, release_refused);
    // Whatever the flow is now (live, ended, or fresh from another CPU's
    // SYN meanwhile), the range below is read from it under the flag.
    // r3 = the range's start (the old first byte), r4 = its end: one
    // maximal segment past the old next byte, as the reference's rule has
    // it (a CPU that took the flag before a sender's RST latched the flow
    // commits one segment after the latch, before this flag could be
    // taken).
    a.emit(Insn::load(Size::W, R3, R0, value::ISN));
    a.emit(Insn::alu32_imm(AluOp::Add, R3, 1));
    a.emit(Insn::load(Size::W, R4, R0, value::NEXT));
    a.emit(Insn::alu32_imm(
        AluOp::Add,
        R4,
        1 + predicate_ir::stream_diode::SEGMENT_MARGIN as i32,
    ));
    let end_known = a.label();
    let over_old = a.label();
    let from_old = a.label();
    let chained = a.label();
    a.jmp_imm(JmpCond::Jset, R2, value::OLD_RANGE, chained);
    a.ja(end_known);
    a.bind(chained);
    // A fresh flow itself: its range joins the old flow's own, as
    // `OldRange::after` of the reference chooses: from ARC_LO over the
    // flow to r4 where that is shorter and r4 has not come round to the
    // flow's first byte, else from the flow's first byte over the old
    // range to ARC_END. r2 = ARC_LO, r5 = r4 - ARC_LO, r1 = r3 - ARC_LO.
    a.emit(Insn::load(Size::W, R2, R0, value::ARC_LO));
    a.emit(Insn::mov64_reg(R5, R4));
    a.emit(Insn::alu32_reg(AluOp::Sub, R5, R2));
    a.jmp_imm(JmpCond::Jeq, R5, 0, over_old);
    a.emit(Insn::mov64_reg(R1, R3));
    a.emit(Insn::alu32_reg(AluOp::Sub, R1, R2));
    a.jmp_reg(JmpCond::Jgt, R1, R5, over_old);
    // A flow whose margin comes round past its own first byte (r4 - r3 <
    // NEXT - r3): only the first interval holds it.
    a.emit(Insn::mov64_reg(R1, R4));
    a.emit(Insn::alu32_reg(AluOp::Sub, R1, R3));
    a.emit(Insn::load(Size::W, R2, R0, value::NEXT));
    a.emit(Insn::alu32_reg(AluOp::Sub, R2, R3));
    a.jmp_reg(JmpCond::Jlt, R1, R2, over_old);
    // r2 = ARC_END - r3: the other choice's span (0: the whole space).
    a.emit(Insn::load(Size::W, R2, R0, value::ARC_END));
    a.emit(Insn::alu32_reg(AluOp::Sub, R2, R3));
    a.jmp_imm(JmpCond::Jeq, R2, 0, from_old);
    a.jmp_reg(JmpCond::Jlt, R5, R2, from_old);
    a.bind(over_old);
    a.emit(Insn::load(Size::W, R4, R0, value::ARC_END));
    a.ja(end_known);
    a.bind(from_old);
    a.emit(Insn::load(Size::W, R3, R0, value::ARC_LO));
    a.bind(end_known);
    // r5 = its length (0: the whole sequence space); r1 = where the new
    // first byte lies from its start: inside when below the length.
    a.emit(Insn::mov64_reg(R5, R4));
    a.emit(Insn::alu32_reg(AluOp::Sub, R5, R3));
    a.jmp_imm(JmpCond::Jeq, R5, 0, release_refused);
    a.emit(Insn::load(Size::DW, R1, R10, sframe::SEQ));
    a.emit(Insn::alu32_imm(AluOp::Add, R1, 1));
    a.emit(Insn::alu32_reg(AluOp::Sub, R1, R3));
    a.jmp_reg(JmpCond::Jlt, R1, R5, release_refused);
    zero_value_buf(a, value_size);
    a.emit(Insn::store_imm(
        Size::W,
        R10,
        sframe::VALUE_BUF + value::STATUS,
        value::OLD_RANGE,
    ));
    a.emit(Insn::store_reg(
        Size::W,
        R10,
        sframe::VALUE_BUF + value::ARC_LO,
        R3,
    ));
    a.emit(Insn::store_reg(
        Size::W,
        R10,
        sframe::VALUE_BUF + value::ARC_END,
        R4,
    ));
    fill_new_flow(a);
    // The fresh value over the old one, every word but the flag's; then
    // the flag is released (an exchange: after every write).
    a.emit(Insn::load(Size::DW, R0, R10, sframe::VALUE_PTR));
    for at in (0..value_size as i16).step_by(4) {
        if at == value::BUSY {
            continue;
        }
        a.emit(Insn::load(Size::W, R1, R10, sframe::VALUE_BUF + at));
        a.emit(Insn::store_reg(Size::W, R0, at, R1));
    }
    release(a);
    a.ja(v.pass);
    a.bind(release_refused);
    a.emit(Insn::load(Size::DW, R0, R10, sframe::VALUE_PTR));
    release(a);
    a.ja(refused);
}

/// Sets the initial and next sequence numbers of the new flow in the value
/// buffer from the SYN's (the ISN; the first data byte is the next expected).
fn fill_new_flow(a: &mut Asm) {
    a.emit(Insn::load(Size::DW, R1, R10, sframe::SEQ));
    a.emit(Insn::store_reg(
        Size::W,
        R10,
        sframe::VALUE_BUF + value::ISN,
        R1,
    ));
    a.emit(Insn::alu32_imm(AluOp::Add, R1, 1));
    a.emit(Insn::store_reg(
        Size::W,
        R10,
        sframe::VALUE_BUF + value::NEXT,
        R1,
    ));
}

/// Creates the flow whose new value is in the value buffer at the SYN's
/// sequence number and passes the SYN. The map refuses it when full
/// (`table_full`), or when another CPU created the entry meanwhile (then
/// the SYN drops, `out_of_order`, and its retransmission finds the entry).
fn emit_store_new_flow(a: &mut Asm, v: &Verdicts) {
    fill_new_flow(a);
    create_from_buf(a);
    a.jmp_imm(JmpCond::Jeq, R0, -EEXIST, v.out_of_order);
    a.jmp_imm(JmpCond::Jne, R0, 0, v.table_full);
    a.ja(v.pass);
}

/// Releases the judging flag of the flow whose value is in `r0`, after
/// every other write (an exchange: fully ordered). Clobbers r1.
fn release(a: &mut Asm) {
    a.emit(Insn::mov64_imm(R1, 0));
    a.emit(Insn::Atomic {
        size: Size::W,
        op: AtomicOp::Xchg,
        dst: R0,
        src: R1,
        off: value::BUSY,
    });
}

/// After the passes and the stream-meaning formula held (at `judged`):
/// with FIN, the exact formula; then commit the segment and pass.
pub(crate) fn emit_commit(
    a: &mut Asm,
    program: &StreamProgram,
    groups: &[PassGroup],
    v: &Verdicts,
    judged: Label,
) {
    a.bind(judged);
    let commit = a.label();
    let at_fin = a.label();
    a.emit(Insn::load(Size::DW, R1, R10, sframe::FLAGS));
    a.jmp_imm(JmpCond::Jset, R1, TCP_FIN, at_fin);
    a.ja(commit);
    // A FIN: the stream must be complete (the exact meaning).
    a.bind(at_fin);
    let refused = a.label();
    let stubs: Vec<AtomStub> = super::formula::emit_stream(
        a,
        &program.program,
        &program.complete,
        groups,
        v,
        commit,
        refused,
    );
    debug_assert!(
        stubs.is_empty(),
        "the exact formula never targets the predicate drop"
    );
    a.bind(refused);
    emit_latch_judged(a);
    a.ja(v.latched);

    a.bind(commit);
    emit_commit_tail(a, v);
}

/// Commits the judged segment (stream length, next expected byte, a FIN)
/// and passes it, releasing the judging flag. Also the end of the
/// `http_response` view's judging (`http.rs`).
pub(crate) fn emit_commit_tail(a: &mut Asm, v: &Verdicts) {
    let write = a.label();
    // A fresh flow on a reused 4-tuple: its bytes and FIN must stay short
    // of the old range (module docs). The stream length is 64 bits, so
    // the comparison cannot wrap.
    let in_room = a.label();
    a.emit(Insn::load(Size::DW, R0, R10, sframe::VALUE_PTR));
    a.emit(Insn::load(Size::W, R1, R0, value::STATUS));
    a.jmp_imm(JmpCond::Jset, R1, value::OLD_RANGE, in_room);
    a.ja(write);
    a.bind(in_room);
    a.emit(Insn::load(Size::DW, R1, R10, sframe::NEW_LEN));
    a.emit(Insn::load(Size::DW, R2, R10, sframe::FLAGS));
    a.emit(Insn::alu64_imm(AluOp::And, R2, TCP_FIN));
    a.emit(Insn::alu64_reg(AluOp::Add, R1, R2));
    a.emit(Insn::load(Size::W, R3, R0, value::ARC_LO));
    a.emit(Insn::load(Size::W, R4, R0, value::ISN));
    a.emit(Insn::alu32_imm(AluOp::Add, R4, 1));
    a.emit(Insn::alu32_reg(AluOp::Sub, R3, R4));
    a.jmp_reg(JmpCond::Jle, R1, R3, write);
    // Into the old range: refused, as a violation.
    emit_latch_judged(a);
    a.ja(v.latched);
    a.bind(write);
    a.emit(Insn::load(Size::DW, R0, R10, sframe::VALUE_PTR));
    a.emit(Insn::load(Size::DW, R1, R10, sframe::NEW_LEN));
    a.emit(Insn::store_reg(Size::DW, R0, value::STREAM_LEN, R1));
    a.emit(Insn::load(Size::W, R2, R0, value::NEXT));
    load_n(a, R3);
    a.emit(Insn::alu32_reg(AluOp::Add, R2, R3));
    a.emit(Insn::store_reg(Size::W, R0, value::NEXT, R2));
    let done = a.label();
    a.emit(Insn::load(Size::DW, R1, R10, sframe::FLAGS));
    a.emit(Insn::alu64_imm(AluOp::And, R1, TCP_FIN));
    a.jmp_imm(JmpCond::Jeq, R1, 0, done);
    a.emit(Insn::store_reg(Size::W, R0, value::FIN_SEQ, R2));
    a.emit(Insn::load(Size::W, R1, R0, value::STATUS));
    a.emit(Insn::alu64_imm(AluOp::Or, R1, value::FIN_SEEN));
    a.emit(Insn::store_reg(Size::W, R0, value::STATUS, R1));
    a.bind(done);
    release(a);
    a.ja(v.pass);
}

/// Checks a stream program fits what the stream frame and value hold, and
/// that it has no payload byte tests (lowering turns them into scans).
pub(crate) fn check_fits(program: &StreamProgram, slots: usize) -> Result<(), CodegenError> {
    let scans = &program.program.scans;
    if scans.len() > MAX_STREAM_SCANS {
        return Err(CodegenError::TooManyScans {
            path: scans[MAX_STREAM_SCANS].path.clone(),
            scans: scans.len(),
            max: MAX_STREAM_SCANS,
            kind: "stream",
            why: "the stream frame holds the flow key and stream scalars below the final states",
        });
    }
    if slots > MAX_STREAM_SLOTS {
        // The first scan whose registers pass the limit, in scan order.
        let mut used = 0;
        let past = scans.iter().find(|s| {
            used += scan::regs_needed(&s.machine);
            used > MAX_STREAM_SLOTS
        });
        return Err(CodegenError::TooManyStreamSlots {
            path: past.map_or_else(|| "$.predicate".to_string(), |s| s.path.clone()),
            slots,
            max: MAX_STREAM_SLOTS,
        });
    }
    fn has_byte(f: &Formula) -> bool {
        match f {
            Formula::Byte { .. } => true,
            Formula::Not(g) => has_byte(g),
            Formula::And(gs) | Formula::Or(gs) => gs.iter().any(has_byte),
            _ => false,
        }
    }
    if has_byte(&program.program.formula) || has_byte(&program.complete) {
        return Err(CodegenError::Internal(
            "a stream program with a payload byte test (lower_stream makes them scans)",
        ));
    }
    Ok(())
}

/// The value slot where each group's machine registers start.
pub(crate) fn group_value_slots(
    program: &predicate_ir::Program,
    groups: &[PassGroup],
) -> (Vec<usize>, usize) {
    let mut next = 0;
    let starts = groups
        .iter()
        .map(|g| {
            let start = next;
            next += scan::group_slots(program, g);
            start
        })
        .collect();
    (starts, next)
}
