//! Equivalence of the seven seed diodes: for generated payloads in generated
//! frame shapes, the verdict of the compiled diode in the kernel
//! (BPF_PROG_TEST_RUN) equals the Rust reference diode (the independent
//! witness in `reference-diodes/`) and the IR's reference evaluator `eval`.
//!
//! One property per diode. Each loads its diode once and runs
//! [`DEFAULT_CASES`] cases (override with `LAGIC_PROPTEST_CASES`). A case is
//! a payload and a frame shape (IPv4 or IPv6, with or without IP and TCP
//! options, various flags, Ethernet padding with junk on short frames).
//! Payloads mix a generic generator (lengths near 0, 1, 15-17, 63-65,
//! 1399-1401 and the longest payload the frame shape lets a test run carry,
//! up to 3,658 bytes over plain IPv4; text with CR/LF, binary, words, JSON of depth 0-5
//! with strings and escapes; edits that put the word hate in any case mix,
//! non-text bytes or brackets at the start, the last bytes, the window
//! boundaries or anywhere) with one focused on the diode's own boundary.
//!
//! Packet-level rule: the reference diodes and `eval` judge payloads only;
//! an empty payload (pure ACK, SYN, FIN) passes the diode whatever the
//! predicate says of the empty string.
//!
//! Besides equality, each property checks that its generator reached both
//! verdicts often (at least [`MIN_SHARE`] of cases each), so a generator
//! that drifted into only passing or only dropping payloads fails loudly.

use std::cell::Cell;

use lagic_frames::IpVersion;
use lagic_loader::{LoadedProgram, Verdict};
use lagic_testkit::require_bpf;
use lagic_tests::{
    apply_edit, arb_boundary_payload, arb_fill, arb_frame_shape, arb_json_doc, arb_non_text_byte,
    arb_payload_len, arb_shaped, arb_token, compile_example, load, proptest_cases, proptest_config,
    show_payload, At, FrameShape,
};
use predicate_ir::Spec;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Cases per diode in the default run.
const DEFAULT_CASES: u32 = 2000;

/// Smallest share of cases each verdict must have (a generator check).
const MIN_SHARE: f64 = 0.10;

/// Payloads around the `text` windows of minimal/printable16/printable64:
/// text, then maybe one non-text byte just inside or outside the window, at
/// the last byte, or anywhere.
fn printable_focus(max: usize) -> BoxedStrategy<Vec<u8>> {
    let at = prop_oneof![
        3 => select(&[14usize, 15, 16, 17, 62, 63, 64, 65][..]).prop_map(At::Offset),
        1 => Just(At::Start),
        1 => Just(At::FromEnd(0)),
        1 => any::<proptest::sample::Index>().prop_map(At::Anywhere),
    ];
    (
        arb_payload_len(max),
        vec(
            select(&b"GET / HTTP/1.1\r\nHost: a\tb\r\n{}[]~ "[..]),
            1..32,
        ),
        proptest::option::weighted(0.6, (at, arb_non_text_byte())),
    )
        .prop_map(|(n, unit, edit)| {
            let mut p: Vec<u8> = unit.iter().copied().cycle().take(n).collect();
            if let Some((at, byte)) = edit {
                apply_edit(&mut p, &at, &[byte]);
            }
            p
        })
        .boxed()
}

/// Payloads around json_start's boundary: lengths 1,397 to 1,403 (or any),
/// starting with `{` most of the time.
fn json_start_focus(max: usize) -> BoxedStrategy<Vec<u8>> {
    let len = prop_oneof![2 => 1397usize..=1403.min(max), 1 => arb_payload_len(max)];
    let first = prop_oneof![
        3 => Just(b'{'),
        1 => select(&b"[ \r\n}\"x\x00"[..]),
        1 => any::<u8>(),
    ];
    len.prop_flat_map(move |n| (arb_fill(n), first.clone()))
        .prop_map(|(mut p, first)| {
            if let Some(b) = p.first_mut() {
                *b = first;
            }
            p
        })
        .boxed()
}

/// Payloads whose first byte is every kind of candidate for json_prefix.
fn json_prefix_focus(max: usize) -> BoxedStrategy<Vec<u8>> {
    let first = prop_oneof![
        2 => select(&b"{["[..]),
        2 => select(&b"}] \t\r\n\"<("[..]),
        1 => any::<u8>(),
    ];
    arb_payload_len(max)
        .prop_flat_map(move |n| (arb_fill(n), first.clone()))
        .prop_map(|(mut p, first)| {
            if let Some(b) = p.first_mut() {
                *b = first;
            }
            p
        })
        .boxed()
}

/// JSON of depth 0-5 (so depth 2 vs 3 is often the question), repeated,
/// cut or padded to a boundary length, with brackets, quotes and
/// backslashes written over it.
fn json_depth_focus(max: usize) -> BoxedStrategy<Vec<u8>> {
    let bracket = select(&["{", "[", "}", "]", "\"", "\\", "\\\"", "\\\\", "[[[", "]]]"][..]);
    (
        vec(arb_json_doc(), 1..4),
        prop_oneof![1 => arb_payload_len(max), 1 => Just(usize::MAX)],
        vec(
            (
                lagic_tests::arb_at(),
                bracket.prop_map(|s| s.as_bytes().to_vec()),
            ),
            0..3,
        ),
    )
        .prop_map(|(docs, n, edits)| {
            let joined = docs.join("\r\n").into_bytes();
            let mut p = if n == usize::MAX {
                joined
            } else {
                joined.iter().copied().cycle().take(n).collect()
            };
            for (at, token) in &edits {
                apply_edit(&mut p, at, token);
            }
            p
        })
        .boxed()
}

/// The word in every case mix at every offset, including the last bytes
/// (whole, or cut short at the very end), over text or near-misses.
fn hateless_focus(max: usize) -> BoxedStrategy<Vec<u8>> {
    let at = prop_oneof![
        2 => (0usize..3).prop_map(At::FromEnd),
        2 => any::<proptest::sample::Index>().prop_map(At::Anywhere),
        1 => Just(At::Start),
        1 => select(&[13usize, 14, 15, 16, 60, 61, 62, 63, 64, 1396, 1399][..]).prop_map(At::Offset),
    ];
    let fill = prop_oneof![
        1 => vec(select(&b"hat ate e h whatever \r\n"[..]), 1..24),
        1 => vec(any::<u8>(), 1..24),
    ];
    (
        arb_payload_len(max),
        fill,
        proptest::option::weighted(0.6, (at, arb_token())),
    )
        .prop_map(|(n, unit, edit)| {
            let mut p: Vec<u8> = unit.iter().copied().cycle().take(n).collect();
            if let Some((at, token)) = edit {
                apply_edit(&mut p, &at, &token);
            }
            p
        })
        .boxed()
}

/// The diode's focused generator, payloads of at most `max` bytes.
fn focus(name: &str, max: usize) -> BoxedStrategy<Vec<u8>> {
    match name {
        "minimal" | "printable16" | "printable64" => printable_focus(max),
        "json_start" => json_start_focus(max),
        "json_prefix" => json_prefix_focus(max),
        "json_depth" => json_depth_focus(max),
        "hateless" => hateless_focus(max),
        other => panic!("no focused generator for {other}"),
    }
}

/// A frame shape and a payload for diode `name`: generic or focused, up to
/// the longest payload the shape lets a test run carry.
fn arb_case(name: &'static str) -> BoxedStrategy<(Vec<u8>, FrameShape)> {
    arb_shaped(move |max| {
        prop_oneof![1 => arb_boundary_payload(max), 2 => focus(name, max)].boxed()
    })
}

/// What the diode must decide for `payload`, checking that the reference
/// diode and `eval` agree on it first.
fn expected(
    spec: &Spec,
    reference: fn(&[u8]) -> bool,
    payload: &[u8],
) -> Result<Verdict, TestCaseError> {
    let by_reference = reference(payload);
    let by_eval = predicate_ir::eval(&spec.predicate, payload);
    prop_assert_eq!(
        by_reference,
        by_eval,
        "{}: reference diode and eval disagree on {}",
        spec.name,
        show_payload(payload)
    );
    Ok(Verdict::from_bool(payload.is_empty() || by_eval))
}

fn check_diode(name: &'static str) {
    if !require_bpf() {
        return;
    }
    let compiled = compile_example(name);
    let program: LoadedProgram = load(&compiled);
    let reference = reference_diodes::by_name(name).expect("a reference diode per seed");
    let cases = proptest_cases(DEFAULT_CASES);
    let passed = Cell::new(0u32);
    let dropped = Cell::new(0u32);
    let ipv6 = Cell::new(0u32);
    let strategy = arb_case(name);
    let mut runner = TestRunner::new(proptest_config(&format!("equivalence-{name}"), cases));
    let result = runner.run(&strategy, |(payload, shape): (Vec<u8>, FrameShape)| {
        let want = expected(&compiled.spec, reference, &payload)?;
        let frame = shape.frame(&payload);
        let got = program
            .run(&frame)
            .map_err(|e| TestCaseError::fail(format!("test run: {e}")))?
            .verdict;
        prop_assert_eq!(
            got,
            want,
            "{}: kernel disagrees with reference and eval on {} in {:?}",
            name,
            show_payload(&payload),
            shape
        );
        match got {
            Verdict::Pass => passed.set(passed.get() + 1),
            Verdict::Drop => dropped.set(dropped.get() + 1),
        }
        if shape.version == IpVersion::V6 {
            ipv6.set(ipv6.get() + 1);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{name}: {failure}");
    }
    let (p, d) = (passed.get(), dropped.get());
    let total = f64::from(p + d);
    eprintln!(
        "{name}: {} cases agree (kernel == reference == eval): {p} pass, {d} drop, {} IPv6",
        p + d,
        ipv6.get()
    );
    assert!(
        f64::from(p) >= MIN_SHARE * total && f64::from(d) >= MIN_SHARE * total,
        "{name}: the generator is lopsided ({p} pass, {d} drop)"
    );
}

#[test]
fn minimal_kernel_equals_reference_and_eval() {
    check_diode("minimal");
}

#[test]
fn printable16_kernel_equals_reference_and_eval() {
    check_diode("printable16");
}

#[test]
fn printable64_kernel_equals_reference_and_eval() {
    check_diode("printable64");
}

#[test]
fn json_start_kernel_equals_reference_and_eval() {
    check_diode("json_start");
}

#[test]
fn json_prefix_kernel_equals_reference_and_eval() {
    check_diode("json_prefix");
}

#[test]
fn json_depth_kernel_equals_reference_and_eval() {
    check_diode("json_depth");
}

#[test]
fn hateless_kernel_equals_reference_and_eval() {
    check_diode("hateless");
}

/// The payload generators reach what the properties claim: every boundary
/// length, the longest payload of every shape (past the 3,400 bytes they
/// once stopped at, up to 3,658 over plain IPv4), the word at the very end
/// in mixed case, JSON nested 3 deep with a bracket inside a string, and
/// CR/LF text. (A generator check only; no kernel needed.)
#[test]
fn generators_reach_the_interesting_cases() {
    let mut runner = TestRunner::deterministic();
    let mut lengths = std::collections::BTreeSet::new();
    let (mut word_at_end, mut mixed_case, mut crlf, mut deep, mut bracket_in_string) =
        (0, 0, 0, 0, 0);
    let (mut longest_v4, mut longest_v6, mut past_3400) = (0, 0, 0);
    let mut largest = 0;
    for name in lagic_tests::SEED_DIODES {
        let strategy = arb_case(name);
        for _ in 0..1500 {
            let (p, shape) = strategy.new_tree(&mut runner).expect("generates").current();
            assert!(p.len() <= shape.max_payload(), "{} in {shape:?}", p.len());
            lengths.insert(p.len());
            largest = largest.max(p.len());
            if p.len() == shape.max_payload() {
                match shape.version {
                    IpVersion::V4 => longest_v4 += 1,
                    IpVersion::V6 => longest_v6 += 1,
                }
            }
            past_3400 += usize::from(p.len() > 3400);
            let lower = p.to_ascii_lowercase();
            if lower.ends_with(b"hate") {
                word_at_end += 1;
                if p[p.len() - 4..] != *b"hate" && p[p.len() - 4..] != *b"HATE" {
                    mixed_case += 1;
                }
            }
            if p.windows(2).any(|w| w == b"\r\n") {
                crlf += 1;
            }
            if !reference_diodes::json_depth(&p) {
                deep += 1;
            }
            if p.windows(3)
                .any(|w| w == b"\"[{" || w == b"a[\"" || w == b"\"\\\"")
            {
                bracket_in_string += 1;
            }
        }
    }
    for n in lagic_tests::BOUNDARY_LENGTHS {
        assert!(lengths.contains(&n), "length {n} never generated");
    }
    // The largest payload any test run carries: plain IPv4, no options.
    let plain_v4_max = FrameShape::plain(IpVersion::V4).max_payload();
    assert_eq!(
        largest, plain_v4_max,
        "the longest payload generated is not the longest a test run takes"
    );
    for (what, count) in [
        ("hate at the very end", word_at_end),
        ("mixed-case hate at the very end", mixed_case),
        ("CR/LF", crlf),
        ("JSON nested more than 2", deep),
        ("brackets or escapes in strings", bracket_in_string),
        ("the longest payload of an IPv4 shape", longest_v4),
        ("the longest payload of an IPv6 shape", longest_v6),
        ("payloads over 3,400 bytes", past_3400),
    ] {
        assert!(count >= 20, "{what}: only {count} payloads");
    }
    // The generator also reaches shapes with and without options.
    let shapes = arb_frame_shape();
    let (mut v6, mut ip_opts, mut tcp_opts, mut padded) = (0, 0, 0, 0);
    for _ in 0..500 {
        let s = shapes.new_tree(&mut runner).expect("generates").current();
        v6 += usize::from(s.version == IpVersion::V6);
        ip_opts += usize::from(!s.ip_options.is_empty());
        tcp_opts += usize::from(!s.tcp_options.is_empty());
        padded += usize::from(s.padding.is_some());
    }
    for (what, count) in [
        ("IPv6", v6),
        ("IP options", ip_opts),
        ("TCP options", tcp_opts),
        ("padding", padded),
    ] {
        assert!(count >= 50, "{what}: only {count} of 500 shapes");
    }
}
