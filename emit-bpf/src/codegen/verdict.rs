//! The verdict exits: every verdict counts its [`Reason`] in the counters
//! map; every drop also records a decision event in the ring buffer
//! ([`crate::decision`] has the layout).
//!
//! Entry conditions: `r6` = skb (every verdict label is reached with it).
//! The drop routine takes `r7` = reason and `r8` = deciding atom (or
//! [`NONE`]), and for [`Reason::Predicate`] the deciding byte's span in
//! the stack word [`OFFSET`] and the deciding scan's state where that span
//! begins in [`SPAN_STATE`]; the scan context's payload start
//! and length are read only for that reason, so drops decided before the
//! context exists never read it.
//!
//! A full ring buffer never changes a verdict: when `bpf_ringbuf_reserve`
//! fails, the lost-event counter is incremented and the drop returns as
//! usual. The stack words used here belong to the opaque zero, which is
//! dead once a verdict is reached.

use super::asm::Asm;
use super::formula::{AtomStub, StubOffset};
use super::scan::ctx;
use super::{frame, Verdicts};
use crate::decision::{self, Reason, NONE};
use crate::insn::*;
use crate::module::{MapDef, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_RINGBUF};
use crate::Options;

/// Map indices in [`crate::Module::maps`].
const COUNTERS: i32 = 0;
const EVENTS: i32 = 1;

/// The counter key handed to `bpf_map_lookup_elem`.
const KEY: i16 = frame::OPAQUE_ZERO;
/// Where the deciding byte is, for predicate drops: `span << 16 | offset`
/// (it lies in payload[offset..offset + span]; `span` at most 0xFFFE), or
/// [`NONE`].
pub(crate) const OFFSET: i16 = frame::OPAQUE_ZERO + 4;
/// The deciding scan's registers when its span began (its state there,
/// [`decision::EVENT_SPAN_STATE`]), 0 for other atoms. The scan context's
/// stop and status words: both dead once a stub has read the stop (every
/// pass is over).
pub(crate) const SPAN_STATE: [i16; 2] = [frame::CTX + ctx::STOP, frame::CTX + ctx::STATUS];

/// The maps every diode carries, in the indices above.
pub(crate) fn maps() -> Vec<MapDef> {
    vec![
        MapDef {
            name: decision::COUNTERS_MAP.into(),
            map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: decision::COUNTER_SLOTS,
        },
        MapDef {
            name: decision::EVENTS_MAP.into(),
            map_type: BPF_MAP_TYPE_RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: decision::EVENTS_RING_SIZE,
        },
    ]
}

/// `counters[*KEY] += 1` on this CPU. Clobbers r0-r5.
fn count(a: &mut Asm) {
    let skip = a.label();
    a.emit(Insn::ld_map(R1, COUNTERS));
    a.emit(Insn::mov64_reg(R2, R10));
    a.emit(Insn::alu64_imm(AluOp::Add, R2, KEY as i32));
    a.emit(Insn::call_helper(helper::BPF_FUNC_MAP_LOOKUP_ELEM));
    a.jmp_imm(JmpCond::Jeq, R0, 0, skip);
    a.emit(Insn::load(Size::DW, R1, R0, 0));
    a.emit(Insn::alu64_imm(AluOp::Add, R1, 1));
    a.emit(Insn::store_reg(Size::DW, R0, 0, R1));
    a.bind(skip);
}

fn put32(a: &mut Asm, field: usize, src: Register) {
    a.emit(Insn::store_reg(Size::W, R9, field as i16, src));
}

fn put32_imm(a: &mut Asm, field: usize, imm: u32) {
    a.emit(Insn::store_imm(Size::W, R9, field as i16, imm as i32));
}

/// Binds every verdict label and the atoms' drop stubs.
///
/// In stream mode (`stream`), a predicate drop latches the flow first, and
/// drops of the reasons [`super::stream::resets`] turns into a RST leave
/// through [`super::stream::emit_finish_drop`] instead of `TC_ACT_SHOT`.
pub(crate) fn emit(a: &mut Asm, v: &Verdicts, stubs: &[AtomStub], options: &Options, stream: bool) {
    let drop_common = a.label();
    let predicate_common = a.label();
    let finish_drop = a.label();
    let shot = |a: &mut Asm| {
        if stream {
            a.ja(finish_drop);
        } else {
            a.emit(Insn::mov64_imm(R0, TC_ACT_SHOT));
            a.emit(Insn::exit());
        }
    };

    a.bind(v.pass);
    a.emit(Insn::store_imm(Size::W, R10, KEY, Reason::Pass as i32));
    count(a);
    a.emit(Insn::mov64_imm(R0, TC_ACT_OK));
    a.emit(Insn::exit());

    for &(label, reason) in &v.drops() {
        a.bind(label);
        a.emit(Insn::mov64_imm(R7, reason as i32));
        a.emit(Insn::mov64_imm(R8, NONE as i32));
        a.ja(drop_common);
    }

    let no_state = |a: &mut Asm| {
        for word in SPAN_STATE {
            a.emit(Insn::store_imm(Size::W, R10, word, 0));
        }
    };
    for stub in stubs {
        a.bind(stub.label);
        match stub.offset {
            StubOffset::None => {
                a.emit(Insn::store_imm(Size::W, R10, OFFSET, NONE as i32));
                no_state(a);
            }
            StubOffset::Fixed(index) => {
                let word = if index <= 0xFFFF {
                    (1 << 16) | index
                } else {
                    NONE // beyond any frame: no byte decided
                };
                a.emit(Insn::store_imm(Size::W, R10, OFFSET, word as i32));
                no_state(a);
            }
            StubOffset::Window { start, len } => {
                let word = if start <= 0xFFFF && (1..0xFFFF).contains(&len) {
                    (len << 16) | start
                } else {
                    NONE
                };
                a.emit(Insn::store_imm(Size::W, R10, OFFSET, word as i32));
                no_state(a); // the initial state
            }
            // Written by the code that jumps here (the http view's).
            StubOffset::Recorded => {}
            StubOffset::PassStop { pass, slot, regs } => {
                // STOP = (pass + 1) << 24 | span << 16 | frame offset.
                let unknown = a.label();
                let known = a.label();
                a.emit(Insn::load(Size::W, R1, R10, frame::CTX + ctx::STOP));
                a.emit(Insn::mov64_reg(R2, R1));
                a.emit(Insn::alu64_imm(AluOp::Rsh, R2, 24));
                a.jmp_imm(JmpCond::Jne, R2, pass + 1, unknown);
                a.emit(Insn::mov64_reg(R2, R1));
                a.emit(Insn::alu64_imm(AluOp::And, R2, 0xFFFF));
                a.emit(Insn::load(
                    Size::H,
                    R3,
                    R10,
                    frame::CTX + ctx::PAYLOAD_START,
                ));
                a.jmp_reg(JmpCond::Jlt, R2, R3, unknown);
                a.emit(Insn::alu64_reg(AluOp::Sub, R2, R3));
                a.emit(Insn::alu64_imm(AluOp::And, R1, 0xFF_0000));
                a.emit(Insn::alu64_reg(AluOp::Or, R2, R1));
                a.emit(Insn::store_reg(Size::W, R10, OFFSET, R2));
                for (k, word) in SPAN_STATE.into_iter().enumerate() {
                    if k < regs {
                        let from = frame::CTX + ctx::START[slot + k];
                        a.emit(Insn::load(Size::W, R1, R10, from));
                        a.emit(Insn::store_reg(Size::W, R10, word, R1));
                    } else {
                        a.emit(Insn::store_imm(Size::W, R10, word, 0));
                    }
                }
                a.ja(known);
                a.bind(unknown);
                a.emit(Insn::store_imm(Size::W, R10, OFFSET, NONE as i32));
                no_state(a);
                a.bind(known);
            }
        }
        a.emit(Insn::mov64_imm(R8, stub.atom as i32));
        a.ja(predicate_common);
    }

    a.bind(v.predicate);
    a.emit(Insn::store_imm(Size::W, R10, OFFSET, NONE as i32));
    no_state(a);
    a.emit(Insn::mov64_imm(R8, NONE as i32));
    a.bind(predicate_common);
    if stream {
        super::stream::emit_latch_judged(a);
    }
    a.emit(Insn::mov64_imm(R7, Reason::Predicate as i32));

    // r7 = reason, r8 = atom: count, then record the event.
    a.bind(drop_common);
    a.emit(Insn::store_reg(Size::W, R10, KEY, R7));
    count(a);
    let have = a.label();
    a.emit(Insn::ld_map(R1, EVENTS));
    a.emit(Insn::mov64_imm(
        R2,
        decision::event_size(options.excerpt) as i32,
    ));
    a.emit(Insn::mov64_imm(R3, 0));
    a.emit(Insn::call_helper(helper::BPF_FUNC_RINGBUF_RESERVE));
    a.jmp_imm(JmpCond::Jne, R0, 0, have);
    a.emit(Insn::store_imm(
        Size::W,
        R10,
        KEY,
        decision::LOST_EVENTS_SLOT as i32,
    ));
    count(a);
    shot(a);

    a.bind(have);
    a.emit(Insn::mov64_reg(R9, R0));
    a.emit(Insn::call_helper(helper::BPF_FUNC_KTIME_GET_NS));
    a.emit(Insn::store_reg(
        Size::DW,
        R9,
        decision::EVENT_TIME as i16,
        R0,
    ));
    put32(a, decision::EVENT_REASON, R7);
    put32(a, decision::EVENT_DECIDED_BY, R8);
    a.emit(Insn::load(Size::W, R1, R6, skb::IFINDEX));
    put32(a, decision::EVENT_IFINDEX, R1);
    a.emit(Insn::load(Size::W, R1, R6, skb::INGRESS_IFINDEX));
    put32(a, decision::EVENT_INGRESS_IFINDEX, R1);
    put32_imm(a, decision::EVENT_OFFSET, NONE);
    put32_imm(a, decision::EVENT_OFFSET_SPAN, 0);
    put32_imm(a, decision::EVENT_FORMAT, decision::EVENT_FORMAT_VERSION);
    put32_imm(a, decision::EVENT_SPAN_STATE, 0);
    put32_imm(a, decision::EVENT_SPAN_STATE + 4, 0);
    put32_imm(a, decision::EVENT_EXCERPT_START, 0);
    put32_imm(a, decision::EVENT_PAYLOAD_START, NONE);
    put32_imm(a, decision::EVENT_PAYLOAD_LEN, 0);
    a.emit(Insn::store_imm(
        Size::H,
        R9,
        decision::EVENT_EXCERPT_LEN as i16,
        0,
    ));

    // The frame's head: min(len, HEAD_LEN) bytes (0 if the copy fails).
    let head_done = a.label();
    let head_len = decision::HEAD_LEN as i32;
    a.emit(Insn::load(Size::W, R4, R6, skb::LEN));
    put32(a, decision::EVENT_FRAME_LEN, R4);
    let clamped = a.label();
    a.jmp_imm(JmpCond::Jle, R4, head_len, clamped);
    a.emit(Insn::mov64_imm(R4, head_len));
    a.bind(clamped);
    a.emit(Insn::store_reg(
        Size::H,
        R9,
        decision::EVENT_HEAD_LEN as i16,
        R4,
    ));
    a.jmp_imm(JmpCond::Jlt, R4, 1, head_done);
    a.emit(Insn::mov64_reg(R1, R6));
    a.emit(Insn::mov64_imm(R2, 0));
    a.emit(Insn::mov64_reg(R3, R9));
    a.emit(Insn::alu64_imm(AluOp::Add, R3, decision::EVENT_HEAD as i32));
    a.emit(Insn::call_helper(helper::BPF_FUNC_SKB_LOAD_BYTES));
    a.jmp_imm(JmpCond::Jeq, R0, 0, head_done);
    a.emit(Insn::store_imm(
        Size::H,
        R9,
        decision::EVENT_HEAD_LEN as i16,
        0,
    ));
    a.bind(head_done);

    // Predicate drops: the payload, the deciding offset and an excerpt.
    let submit = a.label();
    a.jmp_imm(JmpCond::Jne, R7, Reason::Predicate as i32, submit);
    a.emit(Insn::load(
        Size::H,
        R1,
        R10,
        frame::CTX + ctx::PAYLOAD_START,
    ));
    put32(a, decision::EVENT_PAYLOAD_START, R1);
    a.emit(Insn::load(Size::H, R2, R10, frame::CTX + ctx::PAYLOAD_LEN));
    put32(a, decision::EVENT_PAYLOAD_LEN, R2);
    // r3 = the deciding offset, or 0 without one (the excerpt's start).
    a.emit(Insn::load(Size::W, R3, R10, OFFSET));
    let no_offset = a.label();
    let started = a.label();
    a.emit(Insn::mov64_reg(R4, R3));
    a.emit(Insn::alu64_imm(AluOp::Rsh, R4, 16));
    a.jmp_imm(JmpCond::Jeq, R4, 0xFFFF, no_offset); // NONE
    put32(a, decision::EVENT_OFFSET_SPAN, R4);
    a.emit(Insn::alu64_imm(AluOp::And, R3, 0xFFFF));
    put32(a, decision::EVENT_OFFSET, R3);
    for (k, word) in SPAN_STATE.into_iter().enumerate() {
        a.emit(Insn::load(Size::W, R4, R10, word));
        put32(a, decision::EVENT_SPAN_STATE + 4 * k, R4);
    }
    a.ja(started);
    a.bind(no_offset);
    a.emit(Insn::mov64_imm(R3, 0));
    a.bind(started);
    let n = options.excerpt as i32;
    if n > 0 {
        // The excerpt starts at the offset: the deciding byte lies in the
        // span after it.
        a.jmp_reg(JmpCond::Jge, R3, R2, submit);
        put32(a, decision::EVENT_EXCERPT_START, R3);
        a.emit(Insn::mov64_reg(R4, R2));
        a.emit(Insn::alu64_reg(AluOp::Sub, R4, R3));
        let fits = a.label();
        a.jmp_imm(JmpCond::Jle, R4, n, fits);
        a.emit(Insn::mov64_imm(R4, n));
        a.bind(fits);
        a.emit(Insn::store_reg(
            Size::H,
            R9,
            decision::EVENT_EXCERPT_LEN as i16,
            R4,
        ));
        a.jmp_imm(JmpCond::Jlt, R4, 1, submit);
        a.emit(Insn::mov64_reg(R2, R1));
        a.emit(Insn::alu64_reg(AluOp::Add, R2, R3));
        a.emit(Insn::mov64_reg(R1, R6));
        a.emit(Insn::mov64_reg(R3, R9));
        a.emit(Insn::alu64_imm(
            AluOp::Add,
            R3,
            decision::EVENT_EXCERPT as i32,
        ));
        a.emit(Insn::call_helper(helper::BPF_FUNC_SKB_LOAD_BYTES));
        a.jmp_imm(JmpCond::Jeq, R0, 0, submit);
        a.emit(Insn::store_imm(
            Size::H,
            R9,
            decision::EVENT_EXCERPT_LEN as i16,
            0,
        ));
    }

    a.bind(submit);
    a.emit(Insn::mov64_reg(R1, R9));
    a.emit(Insn::mov64_imm(R2, 0));
    a.emit(Insn::call_helper(helper::BPF_FUNC_RINGBUF_SUBMIT));
    shot(a);

    if stream {
        a.bind(finish_drop);
        super::stream::emit_finish_drop(a);
    }
}
