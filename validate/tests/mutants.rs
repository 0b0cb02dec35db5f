//! Mutants: the shipped emitter's output, broken on purpose in the object
//! bytes (a transition target, a window end, a tier size, an accept test,
//! a depth bound, the walk's position bound); validation must fail and name
//! the place. The emitter itself is never changed.

mod support;

use lagic_validate::patch::{self, code};
use lagic_validate::ValidationError;
use support::Section;

fn validate(
    c: &support::Compiled,
    object: &[u8],
) -> Result<lagic_validate::Report, ValidationError> {
    lagic_validate::validate(&c.program, object, &c.map)
}

/// Validation of `bad` must fail in the prefilter check of pass `pass`,
/// saying `what_has`.
fn expect_prefilter_error(c: &support::Compiled, bad: &[u8], pass: usize, what_has: &str) {
    match validate(c, bad) {
        Err(ValidationError::Prefilter { pass: p, what, .. }) => {
            assert_eq!(p, pass);
            assert!(what.contains(what_has), "{what}");
        }
        other => panic!("expected a prefilter error ({what_has}), got {other:?}"),
    }
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
    let text = Section::text(&c.object);
    let step = c.map.passes[0]
        .steps
        .iter()
        .find(|s| s.offset == 5)
        .expect("a chunk copy at byte 5");
    let slot = text
        .find(step.start..step.end, code::MOV64_IMM, None)
        .expect("a state assignment");
    let target = text.imm(slot);
    let bad = text.with_imm(slot, target ^ 1);
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
    let text = Section::text(&c.object);
    let step = c.map.passes[0]
        .steps
        .iter()
        .rev()
        .find(|s| s.offset == 0)
        .expect("single-byte step");
    let movs: Vec<usize> = (step.start..step.end)
        .filter(|&s| text.slot(s)[0] == code::MOV64_IMM)
        .collect();
    let (a, b) = (
        movs[0],
        movs.iter()
            .copied()
            .find(|&s| text.imm(s) != text.imm(movs[0]))
            .expect("two different targets"),
    );
    let mut bad = c.object.clone();
    let (ia, ib) = (
        patch::imm(&bad, text.name, a).unwrap(),
        patch::imm(&bad, text.name, b).unwrap(),
    );
    patch::set_imm(&mut bad, text.name, a, ib).unwrap();
    patch::set_imm(&mut bad, text.name, b, ia).unwrap();
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
    let entry = Section::entry(&c.object);
    assert!(c.map.inline.is_empty(), "walked by bpf_loop");
    let pass = &c.map.passes[0];
    let setup = pass.setup_start..c.map.formula_start;
    let slot = entry
        .find(setup, code::MOV64_IMM, Some(1000))
        .expect("the window end");
    for wrong in [999, 1001] {
        match validate(&c, &entry.with_imm(slot, wrong)) {
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
    let entry = Section::entry(&c.object);
    assert!(c.map.passes.is_empty(), "walked inline");
    let pass = &c.map.inline[0];
    let range = pass.start..pass.end;
    let slot = entry
        .find(range, code::JLT_IMM, Some(16))
        .expect("the full-window test");
    for (wrong, first_bad) in [(15, 15), (17, 16)] {
        match validate(&c, &entry.with_imm(slot, wrong)) {
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
    let entry = Section::entry(&c.object);
    let pass = &c.map.inline[0];
    let range = pass.start..pass.end;
    let what = "the bit test of the 8-byte block";
    let and8 = entry.find(range, code::AND64_IMM, Some(8)).expect(what);
    // `r8 &= 0`: the following `if r8 == 0` always skips.
    match validate(&c, &entry.with_imm(and8, 0)) {
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
    let entry = Section::entry(&c.object);
    let pass = &c.map.inline[0];
    let step = pass.steps.iter().find(|s| s.offset == 3).expect("byte 3");
    let range = step.start..step.end;
    let slot = entry
        .find(range, code::JGT_IMM, Some(94))
        .expect("the printable range's test");
    match validate(&c, &entry.with_imm(slot, 95)) {
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
    let entry = Section::entry(&c.object);
    let text = Section::text(&c.object);
    let cb_len = text.len();
    let lsh = text
        .find(0..cb_len, code::LSH64_IMM, Some(6))
        .expect("chunk scaling");
    match validate(&c, &text.with_imm(lsh, 5)).expect_err("callback tier size") {
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
    let setup = pass.setup_start..c.map.formula_start;
    let rsh = entry
        .find(setup, code::RSH64_IMM, Some(6))
        .expect("entry tier split");
    let err = validate(&c, &entry.with_imm(rsh, 5)).expect_err("entry tier size");
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
    let entry = Section::entry(&c.object);
    let formula = c.map.formula_start..entry.len();
    let slot = entry
        .find(formula, code::JEQ_IMM, None)
        .expect("accept test");
    let s = entry.imm(slot);
    let err = validate(&c, &entry.with_imm(slot, s + 1)).expect_err("accept test");
    assert!(matches!(err, ValidationError::Formula { .. }), "{err}");
}

/// The depth counter's bound off by one: `json_depth` allows depth 2; the
/// mutant allows 3. The error names the state at depth 2 and an open byte.
#[test]
fn a_wrong_depth_bound_is_caught() {
    let c = support::seed("json_depth");
    let text = Section::text(&c.object);
    let step = c.map.passes[0].steps.last().expect("a step");
    let slot = text
        .find(step.start..step.end, code::JLE_IMM, Some(2))
        .expect("depth bound");
    match validate(&c, &text.with_imm(slot, 3)) {
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
    let text = Section::text(&c.object);
    let cb_len = text.len();
    let slot = text
        .find(0..cb_len, code::JGT_IMM, Some(65_535 - 64))
        .expect("position bound");
    let err = validate(&c, &text.with_imm(slot, 60_000)).expect_err("position bound");
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
    let text = Section::text(&c.object);
    let first_step = c.map.passes[0].steps.iter().map(|s| s.start).min().unwrap();
    let loads: Vec<usize> = (0..first_step)
        .filter(|&s| text.slot(s)[0] == code::LDXW)
        .collect();
    // Before the first step: the depth and mode registers, then the status word.
    let (depth_load, mode_load) = (loads[loads.len() - 3], loads[loads.len() - 2]);
    let mut bad = c.object.clone();
    let depth_off = patch::off(&bad, text.name, depth_load).unwrap();
    patch::set_off(&mut bad, text.name, mode_load, depth_off).unwrap();
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
    let text = Section::text(&c.object);
    let machine = &c.program.scans[0].machine;
    let sink = (0..machine.state_count() as u32)
        .find(|&s| machine.is_sink(s))
        .expect("a sink");
    let last_end = c.map.passes[0].steps.iter().map(|s| s.end).max().unwrap();
    let after_steps = last_end..text.len();
    let slot = text
        .find(after_steps, code::JEQ_IMM, Some(sink as i32))
        .expect("the sink test");
    match validate(&c, &text.with_imm(slot, 0)) {
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
    let entry = Section::entry(&c.object);
    let entry_len = entry.len();
    let reserve = entry
        .find(0..entry_len, CALL, Some(RINGBUF_RESERVE))
        .expect("the reserve call");
    let drop = reserve..entry_len;
    let slot = entry
        .find(drop, code::MOV64_IMM, Some(2))
        .expect("the full ring's drop");
    match validate(&c, &entry.with_imm(slot, 0)) {
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
    let text = Section::text(&c.object);
    let pf = c.map.prefilters.first().expect("hateless has a prefilter");
    let (range, pass) = (pf.start..pf.slow, pf.pass);
    let expect = |bad: &[u8], what_has: &str| expect_prefilter_error(&c, bad, pass, what_has);

    // The second byte's constant: `b` instead of `a` in four lanes.
    let what = "the broadcast of 'a'";
    let second = text
        .find(range.clone(), code::LD_IMM64, Some(0x6161_6161))
        .expect(what);
    expect(
        &text.with_imm(second, 0x6262_6262),
        "can leave the DFA in state",
    );

    // The chunk's last byte compared with `i` instead of `h`.
    let what = "the last byte's test";
    let last = text
        .find(range.clone(), code::JEQ_IMM, Some(0x68))
        .expect(what);
    expect(&text.with_imm(last, 0x69), "can leave the DFA in state 1");

    // The next bytes loaded two bytes on instead of one.
    let next = (range.start..range.end)
        .find(|&s| {
            let b = text.slot(s);
            b[0] == code::LDXDW && i16::from_le_bytes([b[2], b[3]]) == 1
        })
        .expect("the load of the next bytes");
    let mut bad = c.object.clone();
    patch::set_off(&mut bad, text.name, next, 2).unwrap();
    expect(&bad, "not neighbours");
}

/// Swapped transitions in an inline step: in `printable16` the live
/// state's class test (`byte - 32 > 94` leaves the class) turned into
/// `<=`, so text bytes go to the sink and the others stay.
#[test]
fn swapped_inline_transitions_are_caught() {
    let c = support::seed("printable16");
    let entry = Section::entry(&c.object);
    assert!(c.map.passes.is_empty(), "walked inline");
    let pass = &c.map.inline[0];
    let step = &pass.steps[0];
    let range = step.start..step.end;
    let slot = entry
        .find(range, code::JGT_IMM, Some(94))
        .expect("the printable range's test");
    let mut bad = c.object.clone();
    let at = patch::slot_offset(&bad, entry.name, slot).unwrap();
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
    let entry = Section::entry(&c.object);
    let pass = &c.map.inline[0];
    assert_eq!(pass.window.start, 0, "{:?}", pass.window);
    // The block pointer's mask: `r9 &= 32` (the bit tests are on r8).
    let slot = (pass.start..pass.end)
        .find(|&s| {
            let b = entry.slot(s);
            b[0] == code::AND64_IMM && b[1] & 0x0f == 9 && entry.imm(s) == 32
        })
        .expect("the 16-byte block's pointer mask");
    match validate(&c, &entry.with_imm(slot, 16)) {
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
    let entry = Section::entry(&c.object);
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

    let what = "the lower bound's constant, 0x7f + 0x20 per lane";
    let lower = Some(0x9f9f_9f9f_u32 as i32);
    let below = entry
        .find(range.clone(), code::LD_IMM64, lower)
        .expect(what);
    expect(
        &entry.with_imm(below, 0x9e9e_9e9e_u32 as i32),
        "passes byte 0x1f",
    );

    let mask = entry
        .find(range, code::LD_IMM64, Some(0x7f7f_7f7f))
        .expect("the lane mask");
    expect(&entry.with_imm(mask, -1), "not 0x7f in every lane");
}

/// The word tests of a whole-payload `all` pass (text over a 1,000-byte
/// window, walked by `bpf_loop`) are its prefilter: with the upper bound's
/// constant made one too large in four lanes (`0x7f - 127` instead of
/// `0x7f - 126`), those lanes pass DEL (0x7f), which the text class drops,
/// and the prefilter check refuses the chunk it would skip.
#[test]
fn a_wrong_word_test_in_a_scan_is_caught() {
    let c = text_window(1000);
    let text = Section::text(&c.object);
    let pf = c.map.prefilters.first().expect("a word-test prefilter");
    let what = "the upper bound's constant, 0x7f - 0x7e per lane";
    let above = text
        .find(pf.start..pf.slow, code::LD_IMM64, Some(0x0101_0101))
        .expect(what);
    match validate(&c, &text.with_imm(above, 0)) {
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
    let text = Section::text(&c.object);
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
    let expect =
        |bad: &[u8]| expect_prefilter_error(&c, bad, pass, "can leave the depth counter in state");

    // The quote's range ends at 0x21: a word holding `"` is skipped.
    let what = "the broadcast of 0x80 + '\"'";
    let quote = Some(0xa2a2_a2a2_u32 as i32);
    let quote_hi = text.find(range.clone(), code::LD_IMM64, quote).expect(what);
    expect(&text.with_imm(quote_hi, 0xa1a1_a1a1_u32 as i32));

    // No fold: `[` and `]` (0x5b, 0x5d) no longer land on `{` and `}`.
    let what = "the broadcast of the fold 0x20";
    let fold = text
        .find(range.clone(), code::LD_IMM64, Some(0x2020_2020))
        .expect(what);
    expect(&text.with_imm(fold, 0));

    // The escape mode (2) not excluded: after a backslash the next byte
    // always changes the mode, so no word may be skipped there.
    let escape = text
        .find(range, code::JEQ_IMM, Some(2))
        .expect("the escape-mode test");
    expect(&text.with_imm(escape, 7));
}
