//! Mutants: the shipped emitter's output, broken on purpose in the object
//! bytes (a transition target, a window end, a tier size, an accept test,
//! a depth bound, the walk's position bound); validation must fail and name
//! the place. The emitter itself is never changed.

mod support;

use lagic_validate::patch::{self, code};
use lagic_validate::ValidationError;

fn validate(
    c: &support::Compiled,
    object: &[u8],
) -> Result<lagic_validate::Report, ValidationError> {
    lagic_validate::validate(&c.program, object, &c.map)
}

#[test]
fn unmutated_objects_pass() {
    for name in [
        "hateless",
        "printable16",
        "printable64",
        "json_depth",
        "json_start",
    ] {
        let c = support::seed(name);
        validate(&c, &c.object).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// A wrong transition in one copy of the step (chunk byte 5 of the
/// largest tier): only that copy is wrong, and the error names it.
#[test]
fn a_wrong_transition_in_one_chunk_copy_is_caught() {
    let c = support::seed("hateless");
    let step = c.map.passes[0]
        .steps
        .iter()
        .find(|s| s.offset == 5)
        .expect("a chunk copy at byte 5");
    let slot = patch::find(
        &c.object,
        ".text",
        step.start..step.end,
        code::MOV64_IMM,
        None,
    )
    .expect("a state assignment");
    let mut bad = c.object.clone();
    let target = patch::imm(&bad, ".text", slot).unwrap();
    patch::set_imm(&mut bad, ".text", slot, target ^ 1).unwrap();
    match validate(&c, &bad) {
        Err(ValidationError::Step {
            scan: 0,
            offset: 5,
            what,
            ..
        }) => {
            assert!(what.contains("the IR to"), "{what}")
        }
        other => panic!("expected a step error at chunk byte 5, got {other:?}"),
    }
}

/// Two transitions swapped: the targets of the first two state assignments
/// of the single-byte step exchanged.
#[test]
fn swapped_transitions_are_caught() {
    let c = support::seed("hateless");
    let step = c.map.passes[0]
        .steps
        .iter()
        .rev()
        .find(|s| s.offset == 0)
        .expect("single-byte step");
    let movs: Vec<usize> = (step.start..step.end)
        .filter(|&s| patch::slot_bytes(&c.object, ".text", s).unwrap()[0] == code::MOV64_IMM)
        .collect();
    let (a, b) = (
        movs[0],
        movs.iter()
            .copied()
            .find(|&s| {
                patch::imm(&c.object, ".text", s).unwrap()
                    != patch::imm(&c.object, ".text", movs[0]).unwrap()
            })
            .expect("two different targets"),
    );
    let mut bad = c.object.clone();
    let (ia, ib) = (
        patch::imm(&bad, ".text", a).unwrap(),
        patch::imm(&bad, ".text", b).unwrap(),
    );
    patch::set_imm(&mut bad, ".text", a, ib).unwrap();
    patch::set_imm(&mut bad, ".text", b, ia).unwrap();
    let err = validate(&c, &bad).expect_err("swapped transitions");
    assert!(
        matches!(
            err,
            ValidationError::Step {
                scan: 0,
                offset: 0,
                ..
            }
        ),
        "{err}"
    );
    // The message a user sees names the scan, the state and the byte.
    let shown = err.to_string();
    assert!(
        shown.starts_with("scan 0 (") && shown.contains("state ") && shown.contains("byte 0x"),
        "{shown}"
    );
}

/// A spec: all bytes of `[0, end)` are text.
fn text_window(end: u32) -> support::Compiled {
    let text = format!(
        r#"{{"version": 1, "name": "text{end}", "predicate": {{"op": "all", "window": {{"start": 0, "end": {end}}}, "class": [[9, 10], [13, 13], [32, 126]]}}}}"#
    );
    let spec = predicate_ir::parse(&text).unwrap();
    support::compile_program(predicate_ir::lower(&spec).unwrap())
}

/// Off by one at the window's end: a 1,000-byte window (too long to walk
/// inline) is clamped to 1,000 bytes in the entry; clamp it to 999 and to
/// 1,001.
#[test]
fn an_off_by_one_window_end_is_caught() {
    let c = text_window(1000);
    assert!(c.map.inline.is_empty(), "walked by bpf_loop");
    let pass = &c.map.passes[0];
    let setup = pass.setup_start..c.map.formula_start;
    let slot = patch::find(&c.object, "classifier", setup, code::MOV64_IMM, Some(1000))
        .expect("the window end");
    for wrong in [999, 1001] {
        let mut bad = c.object.clone();
        patch::set_imm(&mut bad, "classifier", slot, wrong).unwrap();
        match validate(&c, &bad) {
            Err(e @ ValidationError::Walk { pass: 0, len, .. }) => {
                assert!(
                    len > 999,
                    "the first wrong length is past the window end: {len} ({e})"
                );
                // The message names the scan and the payload length.
                let shown = e.to_string();
                assert!(
                    shown.contains("scans [0]") && shown.contains(&format!("payload length {len}")),
                    "{shown}"
                );
            }
            other => panic!("window end {wrong}: expected a walk error, got {other:?}"),
        }
    }
}

/// Off by one at an inline window's end: `printable16` takes its whole
/// 16-byte block when `n >= 16`; with 15 it reads a 16th byte from a
/// 15-byte window, with 17 a 16-byte payload steps on nothing.
#[test]
fn an_off_by_one_inline_window_end_is_caught() {
    let c = support::seed("printable16");
    assert!(c.map.passes.is_empty(), "walked inline");
    let pass = &c.map.inline[0];
    let slot = patch::find(
        &c.object,
        "classifier",
        pass.start..pass.end,
        code::JLT_IMM,
        Some(16),
    )
    .expect("the full-window test");
    for (wrong, first_bad) in [(15, 15), (17, 16)] {
        let mut bad = c.object.clone();
        patch::set_imm(&mut bad, "classifier", slot, wrong).unwrap();
        match validate(&c, &bad) {
            Err(ValidationError::Inline {
                pass: 0, at, what, ..
            }) => {
                assert!(
                    at.ends_with(&format!("payload length {first_bad}")),
                    "window end {wrong}: {at}: {what}"
                );
            }
            other => panic!("window end {wrong}: expected an inline error, got {other:?}"),
        }
    }
}

/// A partial block skipped: in `printable64`, the test of bit 8 of the
/// window's length jumps past its block whatever the bit (a payload of 8
/// to 15 bytes would leave bytes unread).
#[test]
fn a_skipped_inline_block_is_caught() {
    let c = support::seed("printable64");
    let pass = &c.map.inline[0];
    let and8 = patch::find(
        &c.object,
        "classifier",
        pass.start..pass.end,
        code::AND64_IMM,
        Some(8),
    )
    .expect("the bit test of the 8-byte block");
    let mut bad = c.object.clone();
    // `r8 &= 0`: the following `if r8 == 0` always skips.
    patch::set_imm(&mut bad, "classifier", and8, 0).unwrap();
    match validate(&c, &bad) {
        Err(ValidationError::Inline { at, what, .. }) => {
            assert!(at.ends_with("payload length 8"), "{at}: {what}");
            assert!(
                what.contains("steps on 0 bytes of a 8-byte window"),
                "{what}"
            );
        }
        other => panic!("expected an inline error, got {other:?}"),
    }
}

/// A wrong transition in an inline step: the class test of one copy in
/// `minimal` (`byte - 32 > 94` leaves the class) accepts 127 (DEL) as text.
#[test]
fn a_wrong_inline_transition_is_caught() {
    let c = support::seed("minimal");
    let pass = &c.map.inline[0];
    let step = pass.steps.iter().find(|s| s.offset == 3).expect("byte 3");
    let slot = patch::find(
        &c.object,
        "classifier",
        step.start..step.end,
        code::JGT_IMM,
        Some(94),
    )
    .expect("the printable range's test");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, "classifier", slot, 95).unwrap();
    match validate(&c, &bad) {
        Err(ValidationError::Inline { at, what, .. }) => {
            assert!(at.contains("byte 0x7f"), "{at}: {what}");
            assert!(what.contains("the IR to"), "{what}");
        }
        other => panic!("expected an inline step error, got {other:?}"),
    }
}

/// A wrong tier size: in `hateless` (unbounded window, 64-byte chunks)
/// the callback scales the chunk index by 2^5 instead of 2^6, and the entry
/// splits the window into 32-byte chunks. (In `printable16` the same
/// change to the callback is harmless: its 16-byte tier runs at most once,
/// at index 0, and validation rightly accepts it.)
#[test]
fn a_wrong_tier_size_is_caught() {
    let c = support::seed("hateless");
    let cb_len = (0..)
        .take_while(|&s| patch::slot_bytes(&c.object, ".text", s).is_ok())
        .count();
    let lsh = patch::find(&c.object, ".text", 0..cb_len, code::LSH64_IMM, Some(6))
        .expect("chunk scaling");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", lsh, 5).unwrap();
    match validate(&c, &bad).expect_err("callback tier size") {
        e @ ValidationError::Walk { pass: 0, len, .. } => {
            let shown = e.to_string();
            assert_eq!(
                len, 128,
                "the first length with two 64-byte chunks: {shown}"
            );
            assert!(shown.contains("advances 32 bytes"), "{shown}");
            assert!(shown.contains("(scans [0]), payload length 128"), "{shown}");
        }
        other => panic!("expected a walk error, got {other}"),
    }

    let pass = &c.map.passes[0];
    let rsh = patch::find(
        &c.object,
        "classifier",
        pass.setup_start..c.map.formula_start,
        code::RSH64_IMM,
        Some(6),
    )
    .expect("entry tier split");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, "classifier", rsh, 5).unwrap();
    let err = validate(&c, &bad).expect_err("entry tier size");
    assert!(
        matches!(err, ValidationError::Walk { pass: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("payload length "), "{err}");
}

/// The formula's accept test compares with the wrong state.
#[test]
fn a_wrong_accept_test_is_caught() {
    let c = support::seed("hateless");
    let end = (c.map.formula_start..)
        .take_while(|&s| patch::slot_bytes(&c.object, "classifier", s).is_ok())
        .count()
        + c.map.formula_start;
    let slot = patch::find(
        &c.object,
        "classifier",
        c.map.formula_start..end,
        code::JEQ_IMM,
        None,
    )
    .expect("accept test");
    let mut bad = c.object.clone();
    let s = patch::imm(&bad, "classifier", slot).unwrap();
    patch::set_imm(&mut bad, "classifier", slot, s + 1).unwrap();
    let err = validate(&c, &bad).expect_err("accept test");
    assert!(matches!(err, ValidationError::Formula { .. }), "{err}");
}

/// The depth counter's bound off by one: `json_depth` allows depth 2; the
/// mutant allows 3. The error names the state at depth 2 and an open byte.
#[test]
fn a_wrong_depth_bound_is_caught() {
    let c = support::seed("json_depth");
    let step = c.map.passes[0].steps.last().expect("a step");
    let slot = patch::find(
        &c.object,
        ".text",
        step.start..step.end,
        code::JLE_IMM,
        Some(2),
    )
    .expect("depth bound");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", slot, 3).unwrap();
    match validate(&c, &bad) {
        Err(ValidationError::Step {
            scan: 0,
            state,
            byte,
            ..
        }) => {
            assert!(state.contains("depth 2"), "{state}");
            assert!(byte == b'[' || byte == b'{', "{byte}");
        }
        other => panic!("expected a step error, got {other:?}"),
    }
}

/// The walk's guard against positions past 0xFFFF made stricter: payloads
/// that fit a frame would now fail the pass (a false drop).
#[test]
fn a_wrong_position_bound_is_caught() {
    let c = support::seed("hateless");
    let cb_len = (0..)
        .take_while(|&s| patch::slot_bytes(&c.object, ".text", s).is_ok())
        .count();
    let slot = patch::find(
        &c.object,
        ".text",
        0..cb_len,
        code::JGT_IMM,
        Some(65_535 - 64),
    )
    .expect("position bound");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", slot, 60_000).unwrap();
    let err = validate(&c, &bad).expect_err("position bound");
    match err {
        ValidationError::Walk { len, .. } => assert!(len > 60_000, "{len}"),
        other => panic!("expected a walk error, got {other}"),
    }
}

/// The state carried between iterations: `json_depth`'s callback loads the
/// mode register from the depth's slot. Every step is still right on its
/// own; the walk check sees that the register does not come from where
/// the previous iteration stored it.
#[test]
fn a_state_loaded_from_the_wrong_slot_is_caught() {
    let c = support::seed("json_depth");
    let first_step = c.map.passes[0].steps.iter().map(|s| s.start).min().unwrap();
    let loads: Vec<usize> = (0..first_step)
        .filter(|&s| patch::slot_bytes(&c.object, ".text", s).unwrap()[0] == code::LDXW)
        .collect();
    // Before the first step: the depth and mode registers, then the status word.
    let (depth_load, mode_load) = (loads[loads.len() - 3], loads[loads.len() - 2]);
    let mut bad = c.object.clone();
    let depth_off = patch::off(&bad, ".text", depth_load).unwrap();
    patch::set_off(&mut bad, ".text", mode_load, depth_off).unwrap();
    match validate(&c, &bad) {
        Err(ValidationError::Walk { what, .. }) => {
            assert!(
                what.contains("does not come from where the previous iteration stored it"),
                "{what}"
            )
        }
        other => panic!("expected a walk error, got {other:?}"),
    }
}

/// The early stop: `hateless`'s callback stops the loop once its machine
/// sits in the sink ("hate" found); the mutant stops in the initial state.
#[test]
fn an_early_stop_outside_a_sink_is_caught() {
    let c = support::seed("hateless");
    let machine = &c.program.scans[0].machine;
    let sink = (0..machine.state_count() as u32)
        .find(|&s| machine.is_sink(s))
        .expect("a sink");
    let last_end = c.map.passes[0].steps.iter().map(|s| s.end).max().unwrap();
    let cb_len = (0..)
        .take_while(|&s| patch::slot_bytes(&c.object, ".text", s).is_ok())
        .count();
    let slot = patch::find(
        &c.object,
        ".text",
        last_end..cb_len,
        code::JEQ_IMM,
        Some(sink as i32),
    )
    .expect("the sink test");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", slot, 0).unwrap();
    match validate(&c, &bad) {
        Err(ValidationError::EarlyStop {
            pass: 0, states, ..
        }) => assert_eq!(states, "0"),
        other => panic!("expected an early-stop error, got {other:?}"),
    }
}

/// A verdict that depends on the ring buffer: the drop path taken when
/// `bpf_ringbuf_reserve` fails (ring full) returns PASS instead of DROP.
/// With the ring free every verdict is right; the formula check runs each
/// case with the ring full too and must catch it.
#[test]
fn a_verdict_that_depends_on_a_full_ring_buffer_is_caught() {
    const CALL: u8 = 0x85;
    const RINGBUF_RESERVE: i32 = 131;
    let c = support::seed("hateless");
    let entry_len = (0..)
        .take_while(|&s| patch::slot_bytes(&c.object, "classifier", s).is_ok())
        .count();
    let reserve = patch::find(
        &c.object,
        "classifier",
        0..entry_len,
        CALL,
        Some(RINGBUF_RESERVE),
    )
    .expect("the reserve call");
    let slot = patch::find(
        &c.object,
        "classifier",
        reserve..entry_len,
        code::MOV64_IMM,
        Some(2),
    )
    .expect("the full ring's drop");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, "classifier", slot, 0).unwrap();
    match validate(&c, &bad) {
        Err(ValidationError::Formula { got, want, .. }) => {
            assert_eq!(want, "DROP");
            assert!(got.contains("ring buffer full"), "{got}");
        }
        other => panic!("expected a formula error, got {other:?}"),
    }
}

/// The prefilter of `hateless` (skip a 64-byte chunk with no `h` or `H`
/// followed by `a` or `A`, not ending in `h` or `H`), broken three ways;
/// each time a chunk it would skip is one the DFA does not stay on, or its
/// lanes are no longer one byte pair each.
#[test]
fn a_wrong_prefilter_is_caught() {
    let c = support::seed("hateless");
    let pf = c.map.prefilters.first().expect("hateless has a prefilter");
    let (range, pass) = (pf.start..pf.slow, pf.pass);
    let expect = |bad: &[u8], what_has: &str| match validate(&c, bad) {
        Err(ValidationError::Prefilter { pass: p, what, .. }) => {
            assert_eq!(p, pass);
            assert!(what.contains(what_has), "{what}");
        }
        other => panic!("expected a prefilter error ({what_has}), got {other:?}"),
    };

    // The second byte's constant: `b` instead of `a` in four lanes.
    let second = patch::find(
        &c.object,
        ".text",
        range.clone(),
        code::LD_IMM64,
        Some(0x6161_6161),
    )
    .expect("the broadcast of 'a'");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", second, 0x6262_6262).unwrap();
    expect(&bad, "can leave the DFA in state");

    // The chunk's last byte compared with `i` instead of `h`.
    let last = patch::find(&c.object, ".text", range.clone(), code::JEQ_IMM, Some(0x68))
        .expect("the last byte's test");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", last, 0x69).unwrap();
    expect(&bad, "can leave the DFA in state 1");

    // The next bytes loaded two bytes on instead of one.
    let next = (range.start..range.end)
        .find(|&s| {
            let b = patch::slot_bytes(&c.object, ".text", s).unwrap();
            b[0] == code::LDXDW && i16::from_le_bytes([b[2], b[3]]) == 1
        })
        .expect("the load of the next bytes");
    let mut bad = c.object.clone();
    patch::set_off(&mut bad, ".text", next, 2).unwrap();
    expect(&bad, "not neighbours");
}

/// Swapped transitions in an inline step: in `printable16` the live
/// state's class test (`byte - 32 > 94` leaves the class) turned into
/// `<=`, so text bytes go to the sink and the others stay.
#[test]
fn swapped_inline_transitions_are_caught() {
    let c = support::seed("printable16");
    assert!(c.map.passes.is_empty(), "walked inline");
    let pass = &c.map.inline[0];
    let step = &pass.steps[0];
    let slot = patch::find(
        &c.object,
        "classifier",
        step.start..step.end,
        code::JGT_IMM,
        Some(94),
    )
    .expect("the printable range's test");
    let mut bad = c.object.clone();
    let at = patch::slot_offset(&bad, "classifier", slot).unwrap();
    bad[at] = code::JLE_IMM;
    match validate(&c, &bad) {
        Err(e @ ValidationError::Inline { .. }) => {
            let shown = e.to_string();
            assert!(
                shown.contains("scan 0") && shown.contains("state ") && shown.contains("byte 0x"),
                "{shown}"
            );
            assert!(shown.contains("the IR to"), "{shown}");
        }
        other => panic!("expected an inline step error, got {other:?}"),
    }
}

/// A wrong block size in an inline walk: in `printable64` the 16-byte
/// block of a partial window starts at the bits of `n` above 16 (`n & 32`);
/// with the mask 16 it starts at `n & 16`, so a 16-byte payload reads
/// bytes 16 to 31 of a 16-byte window.
#[test]
fn a_wrong_inline_block_size_is_caught() {
    let c = support::seed("printable64");
    let pass = &c.map.inline[0];
    assert_eq!(pass.window.start, 0, "{:?}", pass.window);
    // The block pointer's mask: `r9 &= 32` (the bit tests are on r8).
    let slot = (pass.start..pass.end)
        .find(|&s| {
            let b = patch::slot_bytes(&c.object, "classifier", s).unwrap();
            b[0] == code::AND64_IMM
                && b[1] & 0x0f == 9
                && patch::imm(&c.object, "classifier", s).unwrap() == 32
        })
        .expect("the 16-byte block's pointer mask");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, "classifier", slot, 16).unwrap();
    match validate(&c, &bad) {
        Err(ValidationError::Inline { at, what, .. }) => {
            assert!(at.ends_with("payload length 16"), "{at}: {what}");
            assert!(what.contains("next window byte is 0 of 16"), "{what}");
        }
        other => panic!("expected an inline walk error, got {other:?}"),
    }
}

/// A word test's lower-bound constant in `printable16` made one too small
/// in four lanes (`0x7f + 31` instead of `0x7f + 32`): those lanes pass
/// 0x1f, a control byte the text class drops, so the test would jump over
/// a word the DFA does not stay on. Also its mask made 0xff in four lanes,
/// which lets the subtraction borrow across lanes.
#[test]
fn a_wrong_word_test_lane_constant_is_caught() {
    let c = support::seed("printable16");
    let pass = &c.map.inline[0];
    let word = pass.words.first().expect("printable16 has word tests");
    let range = word.start..word.slow;
    let expect = |bad: &[u8], what_has: &str| match validate(&c, bad) {
        Err(ValidationError::Inline { at, what, .. }) => {
            assert!(at.contains("word test"), "{at}: {what}");
            assert!(what.contains(what_has), "{at}: {what}");
        }
        other => panic!("expected a word-test error ({what_has}), got {other:?}"),
    };

    let below = patch::find(
        &c.object,
        "classifier",
        range.clone(),
        code::LD_IMM64,
        Some(0x9f9f_9f9f_u32 as i32),
    )
    .expect("the lower bound's constant, 0x7f + 0x20 per lane");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, "classifier", below, 0x9e9e_9e9e_u32 as i32).unwrap();
    expect(&bad, "passes byte 0x1f");

    let mask = patch::find(
        &c.object,
        "classifier",
        range,
        code::LD_IMM64,
        Some(0x7f7f_7f7f),
    )
    .expect("the lane mask");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, "classifier", mask, -1).unwrap();
    expect(&bad, "not 0x7f in every lane");
}

/// The word tests of a whole-payload `all` pass (text over a 1,000-byte
/// window, walked by `bpf_loop`) are its prefilter: with the upper bound's
/// constant made one too large in four lanes (`0x7f - 127` instead of
/// `0x7f - 126`), those lanes pass DEL (0x7f), which the text class drops,
/// and the prefilter check refuses the chunk it would skip.
#[test]
fn a_wrong_word_test_in_a_scan_is_caught() {
    let c = text_window(1000);
    let pf = c.map.prefilters.first().expect("a word-test prefilter");
    let above = patch::find(
        &c.object,
        ".text",
        pf.start..pf.slow,
        code::LD_IMM64,
        Some(0x0101_0101),
    )
    .expect("the upper bound's constant, 0x7f - 0x7e per lane");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", above, 0).unwrap();
    match validate(&c, &bad) {
        Err(ValidationError::Prefilter { what, .. }) => {
            assert!(what.contains("can leave the DFA in state"), "{what}")
        }
        other => panic!("expected a prefilter error, got {other:?}"),
    }
}

/// json_depth's word skip (emit-bpf's `swar::DepthWords`), broken three
/// ways in its first word test: each time the bytes it lets through
/// include one the depth counter reacts to, in some mode it skips in.
#[test]
fn a_wrong_depth_word_skip_is_caught() {
    let c = support::seed("json_depth");
    let words = c.map.prefilters.len();
    assert!(
        words >= 2,
        "json_depth has one word test per word of its largest chunks"
    );
    let report = validate(&c, &c.object).expect("json_depth as emitted");
    assert!(
        report.prefilter_paths >= words as u64,
        "every word test was followed"
    );
    let pf = &c.map.prefilters[0];
    let (range, pass) = (pf.start..pf.slow, pf.pass);
    let expect = |bad: &[u8], what_has: &str| match validate(&c, bad) {
        Err(ValidationError::Prefilter { pass: p, what, .. }) => {
            assert_eq!(p, pass);
            assert!(what.contains(what_has), "{what}");
        }
        other => panic!("expected a prefilter error ({what_has}), got {other:?}"),
    };

    // The quote's range ends at 0x21: a word holding `"` is skipped.
    let quote_hi = patch::find(
        &c.object,
        ".text",
        range.clone(),
        code::LD_IMM64,
        Some(0xa2a2_a2a2_u32 as i32),
    )
    .expect("the broadcast of 0x80 + '\"'");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", quote_hi, 0xa1a1_a1a1_u32 as i32).unwrap();
    expect(&bad, "can leave the depth counter in state");

    // No fold: `[` and `]` (0x5b, 0x5d) no longer land on `{` and `}`.
    let fold = patch::find(
        &c.object,
        ".text",
        range.clone(),
        code::LD_IMM64,
        Some(0x2020_2020),
    )
    .expect("the broadcast of the fold 0x20");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", fold, 0).unwrap();
    expect(&bad, "can leave the depth counter in state");

    // The escape mode (2) not excluded: after a backslash the next byte
    // always changes the mode, so no word may be skipped there.
    let escape = patch::find(&c.object, ".text", range, code::JEQ_IMM, Some(2))
        .expect("the escape-mode test");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, ".text", escape, 7).unwrap();
    expect(&bad, "can leave the depth counter in state");
}
