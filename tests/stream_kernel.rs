//! Stream diodes in the kernel: TCP segment sequences run through
//! `BPF_PROG_TEST_RUN` one after the other, the flow map persisting between
//! runs, compared verdict by verdict (and RST by RST) with the reference
//! stream diode `predicate_ir::stream_diode` configured as the kernel diode
//! is documented to behave (`retain = 0`: no segment starting before the
//! next expected byte passes; `min_ttl` = [`emit_bpf::STREAM_MIN_TTL`]).
//!
//! One documented difference: the kernel diode does not verify TCP
//! checksums (docs/stream.md, "The kernel diode"), so segments with a bad
//! checksum are given to the reference as valid, and the receiver model
//! (which discards them) checks that the application still reads only a
//! prefix of the judged stream.
//!
//! Every flow gets its own 4-tuple, so flows never share state; each test
//! loads its diode once and runs all its flows through it. The random-flow
//! properties run 48 cases, `LAGIC_PROPTEST_CASES` of them if set (below
//! 65,536: one flow per case fills the flow table).

use lagic_frames::{tcp_flags, Frame};
use lagic_loader::LoadedProgram;
use lagic_testkit::require_bpf;
use predicate_ir::stream_diode::{Segment, StreamDiode};
use predicate_ir::Spec;
use proptest::prelude::*;

use lagic_tests::proptest_cases;
use lagic_tests::stream::{
    check_flow, check_lossy_flow, config, expected, flow, fold, fragments_payload, load_stream,
    ones_sum, parse_reset, segments_strategy, stream_spec, Flow, Outcome,
};

const ISN: u32 = 1000;

fn data(offset: u32, bytes: &[u8]) -> Segment {
    Segment::data(ISN.wrapping_add(1).wrapping_add(offset), bytes)
}

fn contains_hate(app: &[u8]) -> bool {
    app.to_ascii_lowercase().windows(4).any(|w| w == b"hate")
}

/// One attack and its honest counterpart: the attack is reset or dropped
/// and the application never reads "hate"; the honest flow passes whole
/// and ends cleanly.
fn attack_and_honest(
    prog: &LoadedProgram,
    spec: &Spec,
    attack: &[Segment],
    honest: &[Segment],
) -> (Vec<Outcome>, Vec<Outcome>) {
    let mut results = Vec::new();
    for v6 in [false, true] {
        let (a, receiver) = check_flow(prog, spec, v6, attack);
        assert!(
            !contains_hate(&receiver.app()),
            "attack leaked: {:?}",
            receiver.app()
        );
        let (h, receiver) = check_flow(prog, spec, v6, honest);
        assert!(
            h.iter().all(|o| *o == Outcome::Pass),
            "honest flow not passed whole: {h:?}"
        );
        assert!(receiver.saw_fin(), "honest flow ended cleanly");
        results.push((a, h));
    }
    let (a4, h4) = results.swap_remove(0);
    assert_eq!(results[0], (a4.clone(), h4.clone()), "IPv4 and IPv6 agree");
    (a4, h4)
}

fn syn() -> Segment {
    Segment::syn(ISN)
}

fn honest(parts: &[&[u8]]) -> Vec<Segment> {
    let mut segs = vec![syn()];
    let mut off = 0;
    for p in parts {
        segs.push(data(off, p));
        off += p.len() as u32;
    }
    segs.push(Segment::fin(ISN + 1 + off, b""));
    segs
}

#[test]
fn every_attack_class_is_blocked_and_its_honest_counterpart_passes() {
    if !require_bpf() {
        return;
    }
    let spec = stream_spec("hateless");
    let prog = load_stream(&spec);
    let reset = |o: &[Outcome]| o.iter().any(|x| matches!(x, Outcome::Reset(_)));

    // Split word, in order.
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[syn(), data(0, b"I ha"), data(4, b"te you")],
        &honest(&[b"I ha", b"ppily agree"]),
    );
    assert_eq!(a[2], Outcome::Reset(ISN + 1 + 4));

    // One byte per segment.
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[
            syn(),
            data(0, b"h"),
            data(1, b"a"),
            data(2, b"T"),
            data(3, b"e"),
        ],
        &honest(&[b"h", b"a", b"t", b"s"]),
    );
    assert_eq!(a[4], Outcome::Reset(ISN + 1 + 3));

    // The second half first (out of order), then in order.
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[syn(), data(2, b"te"), data(0, b"ha"), data(2, b"te")],
        &honest(&[b"ha", b"ts"]),
    );
    assert_eq!(a[1], Outcome::Drop);
    assert_eq!(a[3], Outcome::Reset(ISN + 1 + 2));

    // An out-of-order segment replaced by a longer one at the same seq.
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[
            syn(),
            data(2, b"t"),
            data(2, b"te and more"),
            data(0, b"ha"),
            data(2, b"te and more"),
        ],
        &honest(&[b"ha", b"ts and more"]),
    );
    assert_eq!(&a[1..3], &[Outcome::Drop, Outcome::Drop]);
    assert!(matches!(a[4], Outcome::Reset(_)));

    // Overlap with changed bytes: a retransmission rewriting judged bytes.
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[syn(), data(0, b"habit"), data(0, b"hate!"), data(2, b"te")],
        &honest(&[b"habit", b" forming"]),
    );
    assert_eq!(&a[2..4], &[Outcome::Drop, Outcome::Drop]);

    // A byte the receiver discards (bad checksum) inserted between halves.
    let mut bad = data(2, b"X");
    bad.checksum_ok = false;
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[syn(), data(0, b"ha"), bad, data(3, b"te"), data(2, b"te")],
        &honest(&[b"ha", b"X", b"ts"]),
    );
    // The kernel passes it (it does not verify checksums); the receiver
    // discards it, and nothing can fill the hole: "te" at offset 2 is
    // behind the next expected byte.
    assert_eq!(a[4], Outcome::Drop);

    // A byte that expires one hop after the diode (low TTL).
    let mut low = data(2, b"X");
    low.ttl = 1;
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[syn(), data(0, b"ha"), low, data(3, b"te"), data(2, b"te")],
        &honest(&[b"ha", b"ts"]),
    );
    assert_eq!(&a[2..4], &[Outcome::Drop, Outcome::Drop]);
    assert_eq!(a[4], Outcome::Reset(ISN + 1 + 2));

    // An urgent byte splitting the word.
    let mut urgent = data(2, b"Xte");
    urgent.flags.urg = true;
    urgent.urgent_pointer = 1;
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[syn(), data(0, b"ha"), urgent],
        &honest(&[b"ha", b"Xte"]),
    );
    assert_eq!(a[2], Outcome::Drop);

    // Data on the SYN.
    let mut syn_data = syn();
    syn_data.payload = b"hate".to_vec();
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[syn_data, data(0, b"hate")],
        &honest(&[b"no data on the syn"]),
    );
    assert_eq!(a, vec![Outcome::Drop, Outcome::Reset(ISN + 1)]);

    // Data after FIN, and a RST from the sender.
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[
            syn(),
            data(0, b"ha"),
            Segment::fin(ISN + 3, b""),
            data(2, b"te"),
            data(2, b"te"),
        ],
        &honest(&[b"ha"]),
    );
    assert_eq!(a[2], Outcome::Pass);
    assert_eq!(a[3], Outcome::Reset(ISN + 4));
    assert_eq!(a[4], Outcome::Reset(ISN + 4));
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[
            syn(),
            data(0, b"ha"),
            Segment::reset(ISN + 3),
            data(2, b"te"),
        ],
        &honest(&[b"ha"]),
    );
    assert_eq!(a[2], Outcome::Reset(ISN + 3));
    assert_eq!(a[3], Outcome::Reset(ISN + 3));

    // A flow the diode did not see start (attached mid-connection).
    let (a, _) = attack_and_honest(
        &prog,
        &spec,
        &[data(0, b"ha"), data(2, b"te"), Segment::data(ISN + 1, b"")],
        &honest(&[b"seen from the start"]),
    );
    assert_eq!(a, vec![Outcome::Reset(ISN + 1); 3]);
    assert!(reset(&a));

    // A FIN where the stream is not acceptable as complete: prefix "{"
    // read leniently holds on the empty stream, exactly it does not.
    let json = stream_spec("json_prefix");
    let json_prog = load_stream(&json);
    for v6 in [false, true] {
        let (o, r) = check_flow(&json_prog, &json, v6, &[syn(), Segment::fin(ISN + 1, b"")]);
        assert_eq!(o[1], Outcome::Reset(ISN + 1));
        assert!(!r.saw_fin());
        let (o, _) = check_flow(&json_prog, &json, v6, &[syn(), data(0, b"x")]);
        assert_eq!(o[1], Outcome::Reset(ISN + 1));
        let (o, r) = check_flow(
            &json_prog,
            &json,
            v6,
            &[
                syn(),
                data(0, b"["),
                data(1, b"1]"),
                Segment::fin(ISN + 4, b""),
            ],
        );
        assert!(o.iter().all(|x| *x == Outcome::Pass));
        assert!(r.saw_fin());
    }
}

/// Five connections on one 4-tuple, each started as Linux starts one over
/// a `TIME_WAIT` socket (65,537 past the old connection's last sequence
/// number): the kernel starts every one, as the reference does, and
/// refuses a sixth inside an earlier one's bytes.
#[test]
fn a_chain_of_time_wait_reuses_keeps_starting() {
    if !require_bpf() {
        return;
    }
    let spec = stream_spec("hateless");
    let prog = load_stream(&spec);
    for v6 in [false, true] {
        let mut segments = Vec::new();
        let mut isn = ISN;
        let mut starts = Vec::new();
        for k in 0..5u32 {
            starts.push(isn);
            segments.push(Segment::syn(isn));
            let body = format!("reply {k}");
            segments.push(Segment::fin(isn + 1, body.as_bytes()));
            isn = isn + 1 + body.len() as u32 + 1 + 65_537;
        }
        segments.push(Segment::syn(starts[1] + 2));
        let (o, _) = check_flow(&prog, &spec, v6, &segments);
        assert_eq!(o[..10], vec![Outcome::Pass; 10][..], "{o:?}");
        assert_eq!(o[10], Outcome::Drop, "{o:?}");
    }
}

/// A new connection on a 4-tuple, whether its flow ended (FIN or latched)
/// or is still live (its client gave it up), is judged from its own first
/// byte, kept out of the old connection's sequence numbers; a SYN inside
/// the old range, or after a flow latched without its SYN seen, starts
/// nothing. Every verdict and RST as the reference's.
#[test]
fn a_reused_four_tuple_starts_a_fresh_flow() {
    if !require_bpf() {
        return;
    }
    let spec = stream_spec("hateless");
    let prog = load_stream(&spec);
    let isn2 = ISN + 100_000;
    let pass = Outcome::Pass;
    for v6 in [false, true] {
        // After a FIN, and after a latch: "te" starts the new stream.
        let (o, r) = check_flow(
            &prog,
            &spec,
            v6,
            &[
                syn(),
                Segment::fin(ISN + 1, b"I ha"),
                Segment::syn(isn2),
                Segment::data(isn2 + 1, b"te"),
                Segment::fin(isn2 + 3, b""),
            ],
        );
        assert_eq!(o, vec![pass.clone(); 5]);
        assert_eq!(r.app(), b"I ha");
        let (o, _) = check_flow(
            &prog,
            &spec,
            v6,
            &[
                syn(),
                data(0, b"I ha"),
                data(4, b"te"),
                Segment::syn(isn2),
                Segment::data(isn2 + 1, b"te"),
                Segment::fin(isn2 + 3, b""),
            ],
        );
        assert_eq!(o[2], Outcome::Reset(ISN + 5));
        assert_eq!(o[3..], [pass.clone(), pass.clone(), pass.clone()]);
        // A live flow: the SYN starts a fresh flow, and the old flow's
        // "te" (inside the old range, behind the fresh flow) never passes.
        let (o, r) = check_flow(
            &prog,
            &spec,
            v6,
            &[syn(), data(0, b"I ha"), Segment::syn(isn2), data(4, b"te")],
        );
        assert_eq!(o[2..], [pass.clone(), Outcome::Drop]);
        assert_eq!(r.app(), b"I ha");
        // Inside the old range (ISN+1 to ISN+5 after "I ha" and its FIN,
        // and one maximal segment past it): refused; the first ISN past
        // it starts.
        let past = ISN + 5 + predicate_ir::stream_diode::SEGMENT_MARGIN;
        for (new_isn, starts) in [
            (ISN + 2, false),
            (ISN + 5, false),
            (past - 1, false),
            (past, true),
        ] {
            let (o, _) = check_flow(
                &prog,
                &spec,
                v6,
                &[syn(), Segment::fin(ISN + 1, b"I ha"), Segment::syn(new_isn)],
            );
            assert_eq!(o[2] == pass, starts, "{new_isn}: {o:?}");
            // Live instead of finished: the same range.
            let (o, _) = check_flow(
                &prog,
                &spec,
                v6,
                &[syn(), data(0, b"I ha"), Segment::syn(new_isn)],
            );
            assert_eq!(o[2] == pass, starts, "live, {new_isn}: {o:?}");
            let (o, _) = check_flow(
                &prog,
                &spec,
                v6,
                &[
                    syn(),
                    data(0, b"I ha"),
                    Segment::reset(ISN + 5),
                    Segment::syn(new_isn),
                ],
            );
            assert_eq!(o[3] == pass, starts, "{new_isn}: {o:?}");
        }
        // A flow latched without its SYN seen: no fresh start.
        let (o, _) = check_flow(&prog, &spec, v6, &[data(0, b"mid"), Segment::syn(isn2)]);
        assert_eq!(o, vec![Outcome::Reset(ISN + 1), Outcome::Reset(ISN + 1)]);
        // The old receiver kept a hole (a passed segment lost behind the
        // diode, its RST ignored): a new flow starting just before the old
        // range may not run into it, and its FIN may not either.
        let new_isn = ISN - 10;
        let old = [
            (syn(), false),
            (data(0, b"I ha"), false),
            (data(4, b"ir"), true),
            (Segment::reset(ISN + 7), false),
            (Segment::syn(new_isn), false),
        ];
        for (last, want) in [
            (
                Segment::data(new_isn + 1, b"0123456789xxxxte"),
                Outcome::Reset(new_isn + 1),
            ),
            (Segment::data(new_isn + 1, b"0123456789"), pass.clone()),
            (Segment::fin(new_isn + 1, b"012345678"), pass.clone()),
            (
                Segment::fin(new_isn + 1, b"0123456789"),
                Outcome::Reset(new_isn + 1),
            ),
        ] {
            let mut segments = old.to_vec();
            segments.push((last, false));
            let (o, r) = check_lossy_flow(&prog, &spec, v6, &segments);
            assert_eq!(o[4], pass);
            assert_eq!(o[5], want);
            assert!(!r.was_reset());
            assert_eq!(r.app(), b"I ha");
        }
    }
}

#[test]
fn sequence_numbers_wrap() {
    if !require_bpf() {
        return;
    }
    let spec = stream_spec("hateless");
    let prog = load_stream(&spec);
    let isn = u32::MAX - 3;
    let seg = |off: u32, b: &[u8]| Segment::data(isn.wrapping_add(1).wrapping_add(off), b);
    for v6 in [false, true] {
        let (o, r) = check_flow(
            &prog,
            &spec,
            v6,
            &[
                Segment::syn(isn),
                seg(0, b"wrap"),
                seg(4, b"s around"),
                Segment::fin(isn.wrapping_add(13), b""),
            ],
        );
        assert!(o.iter().all(|x| *x == Outcome::Pass), "{o:?}");
        assert!(r.saw_fin());
        let (o, _) = check_flow(
            &prog,
            &spec,
            v6,
            &[Segment::syn(isn), seg(0, b"I ha"), seg(4, b"te it")],
        );
        assert_eq!(o[2], Outcome::Reset(isn.wrapping_add(5)));
    }
}

/// Payload fragments: pieces of the forbidden word and harmless bytes.
const WORDS: &[&[u8]] = &[
    b"h", b"a", b"t", b"e", b"ha", b"te", b"hat", b"ate", b"Hate", b" ", b"xy", b"ok ",
];
/// Payload fragments for the JSON diodes.
const JSONISH: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"a",
    b" ",
    b"\x01",
    b"{\"k\": [1]}",
];

/// Fragments of long clean text for the prefilter's flows: ordinary words,
/// decoys that start the word (`h`, `ha`, `hat`), and a 64-byte run with
/// no `h` (a chunk the prefilter skips whole).
const LONG_TEXT: &[&[u8]] = &[
    b"once upon a time ",
    b"there was a little frog who liked the garden; ",
    b"h",
    b"H",
    b"ha",
    b"hA ",
    b"hat ",
    b"ate",
    b"t",
    b"e",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// A flow of long in-order segments (40 to 1,400 bytes: the stream
/// prefilter tests 64-byte chunks) of clean text, with `hAtE` inserted at
/// one place when `word_at` says so (anywhere: inside a segment, across
/// two, across a chunk's edge).
fn long_segments_strategy() -> impl Strategy<Value = Vec<Segment>> {
    (
        prop::collection::vec(prop::sample::select(LONG_TEXT), 4..160)
            .prop_map(|parts| parts.concat()),
        prop::option::of(any::<prop::sample::Index>()),
        prop::collection::vec(40usize..1400, 1..8),
        any::<u32>(),
    )
        .prop_map(|(mut payload, word_at, cuts, isn)| {
            if let Some(at) = word_at {
                let at = at.index(payload.len() + 1);
                payload.splice(at..at, b"hAtE".iter().copied());
            }
            let mut out = vec![Segment::syn(isn)];
            let (mut at, mut i) = (0, 0);
            while at < payload.len() {
                let len = cuts[i % cuts.len()].min(payload.len() - at);
                out.push(Segment::data(
                    isn.wrapping_add(1).wrapping_add(at as u32),
                    &payload[at..at + len],
                ));
                at += len;
                i += 1;
            }
            out.push(Segment::fin(
                isn.wrapping_add(1).wrapping_add(payload.len() as u32),
                b"",
            ));
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(48), ..ProptestConfig::default() })]

    /// Long segments through the stream `hateless`, whose passes start their
    /// 64-byte chunks with the prefilter: verdicts and RSTs equal the
    /// reference's, with and without the word.
    #[test]
    fn long_segments_through_the_prefilter_equal_the_reference(
        segments in long_segments_strategy(),
        v6 in any::<bool>(),
    ) {
        if !require_bpf() {
            return Ok(());
        }
        thread_local! {
            static DIODE: (Spec, LoadedProgram) = {
                let s = stream_spec("hateless");
                let p = load_stream(&s);
                (s, p)
            };
        }
        DIODE.with(|(spec, prog)| {
            check_flow(prog, spec, v6, &segments);
        });
    }

    /// Random segmentations, reorderings, duplicates and overlaps of random
    /// payloads: the kernel's verdicts and RSTs equal the reference's.
    #[test]
    fn kernel_verdicts_equal_the_reference_on_random_flows(
        segments in segments_strategy(fragments_payload(WORDS)),
        v6 in any::<bool>(),
    ) {
        if !require_bpf() {
            return Ok(());
        }
        thread_local! {
            static DIODES: Vec<(Spec, LoadedProgram)> = ["hateless", "printable16", "json_prefix", "json_start", "json_depth"]
                .iter()
                .map(|n| { let s = stream_spec(n); let p = load_stream(&s); (s, p) })
                .collect();
        }
        DIODES.with(|diodes| {
            for (spec, prog) in diodes {
                check_flow(prog, spec, v6, &segments);
            }
        });
    }

    /// The same with JSON-ish bytes for the JSON diodes.
    #[test]
    fn json_diodes_equal_the_reference_on_random_flows(
        segments in segments_strategy(fragments_payload(JSONISH)),
        v6 in any::<bool>(),
    ) {
        if !require_bpf() {
            return Ok(());
        }
        thread_local! {
            static DIODES: Vec<(Spec, LoadedProgram)> = ["json_prefix", "json_start", "json_depth", "printable16"]
                .iter()
                .map(|n| { let s = stream_spec(n); let p = load_stream(&s); (s, p) })
                .collect();
        }
        DIODES.with(|diodes| {
            for (spec, prog) in diodes {
                check_flow(prog, spec, v6, &segments);
            }
        });
    }
}

/// Every stream reason is counted once per segment, and each drop or RST
/// records an event with its reason.
#[test]
fn stream_reasons_are_counted_and_recorded() {
    use emit_bpf::decision::Reason;
    use lagic_loader::decisions::DiodeMaps;
    if !require_bpf() {
        return;
    }
    let spec = stream_spec("hateless");
    let prog = load_stream(&spec);
    let mut maps = DiodeMaps::for_program(prog.fd()).unwrap();
    let mut low = data(2, b"x");
    low.ttl = 1;
    let segments = [
        syn(),          // pass
        data(0, b"ha"), // pass
        data(4, b"zz"), // out_of_order (gap)
        data(0, b"ha"), // out_of_order (already judged)
        low,            // malformed (TTL)
        data(2, b"te"), // predicate: latch, RST
        data(4, b"!"),  // latched
    ];
    let (o, _) = check_flow(&prog, &spec, false, &segments);
    assert_eq!(o[5], Outcome::Reset(ISN + 3));
    let (o, _) = check_flow(&prog, &spec, true, &[data(0, b"mid")]); // evicted
    assert_eq!(o, vec![Outcome::Reset(ISN + 1)]);
    let c = maps.counters().unwrap();
    for (reason, want) in [
        (Reason::Pass, 2),
        (Reason::OutOfOrder, 2),
        (Reason::Malformed, 1),
        (Reason::Predicate, 1),
        (Reason::Latched, 1),
        (Reason::Evicted, 1),
    ] {
        assert_eq!(c.get(reason), want, "{reason:?} in {c:?}");
    }
    let mut reasons = Vec::new();
    let mut located = Vec::new();
    let stream = predicate_ir::lower_stream(&spec).unwrap();
    let atoms = emit_bpf::decision::stream_atoms(&stream);
    while let Some(event) = maps.next_event() {
        let event = event.unwrap();
        if event.reason == Reason::Predicate {
            located.push(event.locate(&atoms));
        }
        reasons.push(event.reason);
    }
    // The predicate's segment "te" continues "ha" from the segment before:
    // the deciding byte, found by the IR's machine carried across both, is
    // the segment's byte 1 (its payload offsets count from the segment).
    let machine = &stream.program.scans[0].machine;
    let carried = machine.run(predicate_ir::Machine::INITIAL, b"ha");
    let deciding = b"te"
        .iter()
        .scan(carried, |s, &b| {
            *s = machine.step(*s, b);
            Some(machine.is_sink(*s))
        })
        .position(|sunk| sunk)
        .expect("\"te\" completes the word") as u32;
    assert_eq!(
        located,
        vec![Some(emit_bpf::decision::Located {
            offset: deciding,
            span: 1
        })]
    );
    reasons.sort_by_key(|r| *r as u32);
    assert_eq!(
        reasons,
        vec![
            Reason::Predicate,
            Reason::Malformed,
            Reason::Latched,
            Reason::OutOfOrder,
            Reason::OutOfOrder,
            Reason::Evicted
        ]
    );
}

/// A SYN refused on a flow that is not latched has its own reason,
/// `bad_syn` (the reference's `DropReason::BadSyn`): another initial
/// sequence number whose first byte lies inside the open flow's range, a
/// SYN with payload on an open flow, and one on a flow without state. Each
/// is dropped, counted once and recorded as an event; a refused SYN on a
/// latched flow stays a RST counted `latched`, as every segment there.
#[test]
fn refused_syns_are_counted_and_recorded_as_bad_syn() {
    use emit_bpf::decision::Reason;
    use lagic_loader::decisions::DiodeMaps;
    use predicate_ir::stream_diode::{DropReason, Verdict};
    if !require_bpf() {
        return;
    }
    let spec = stream_spec("hateless");
    let prog = load_stream(&spec);
    let mut maps = DiodeMaps::for_program(prog.fd()).unwrap();
    let mut syn_with_data = syn();
    syn_with_data.payload = b"early".to_vec();
    let flows: [(bool, Vec<Segment>); 3] = [
        (
            false,
            vec![
                syn(),                 // pass
                data(0, b"ok"),        // pass
                Segment::syn(ISN + 2), // bad_syn: first byte inside the range
                syn_with_data.clone(), // bad_syn: payload on an open flow
                Segment::syn(ISN),     // pass: a retransmitted SYN
            ],
        ),
        (true, vec![syn_with_data]), // bad_syn: payload, no state
        (
            true,
            vec![
                data(0, b"mid"),             // evicted: latched without its SYN
                Segment::syn(ISN + 100_000), // latched: a RST, no fresh start
            ],
        ),
    ];
    let mut bad_syns = 0;
    for (v6, segments) in &flows {
        let (outcomes, _) = check_flow(&prog, &spec, *v6, segments);
        let mut reference = StreamDiode::new(&spec, config()).unwrap();
        for (seg, got) in segments.iter().zip(&outcomes) {
            let bad = reference.on_segment(seg) == Verdict::Drop(DropReason::BadSyn);
            assert_eq!(bad, *got == Outcome::Drop, "{seg:?}: kernel {got:?}");
            bad_syns += usize::from(bad);
        }
    }
    assert_eq!(bad_syns, 3);
    let c = maps.counters().unwrap();
    for (reason, want) in [
        (Reason::Pass, 3),
        (Reason::BadSyn, 3),
        (Reason::Evicted, 1),
        (Reason::Latched, 1),
        (Reason::Malformed, 0),
    ] {
        assert_eq!(c.get(reason), want, "{reason:?} in {c:?}");
    }
    assert_eq!(c.bad_syn, 3);
    let mut reasons = Vec::new();
    while let Some(event) = maps.next_event() {
        reasons.push(event.unwrap().reason);
    }
    reasons.sort_by_key(|r| *r as u32);
    assert_eq!(
        reasons,
        vec![
            Reason::Latched,
            Reason::Evicted,
            Reason::BadSyn,
            Reason::BadSyn,
            Reason::BadSyn
        ]
    );
}

/// The random flows above are not all alike: over a fixed sample, the
/// kernel passes, drops and resets segments, and some flows end cleanly.
#[test]
fn random_flows_exercise_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    if !require_bpf() {
        return;
    }
    let spec = stream_spec("hateless");
    let prog = load_stream(&spec);
    let strategy = segments_strategy(fragments_payload(WORDS));
    let mut runner = TestRunner::deterministic();
    let (mut pass, mut drop, mut reset, mut clean) = (0, 0, 0, 0);
    for i in 0..40 {
        let segments = strategy.new_tree(&mut runner).unwrap().current();
        let (outcomes, receiver) = check_flow(&prog, &spec, i % 2 == 1, &segments);
        for o in outcomes {
            match o {
                Outcome::Pass => pass += 1,
                Outcome::Drop => drop += 1,
                Outcome::Reset(_) => reset += 1,
            }
        }
        clean += usize::from(receiver.saw_fin());
    }
    assert!(
        pass > 40 && drop > 5 && reset > 5 && clean > 3,
        "pass {pass}, drop {drop}, reset {reset}, clean ends {clean}"
    );
}

/// How a sender filled the TCP checksum field of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// The complete checksum (a stack that computes it, `CHECKSUM_NONE`).
    Complete,
    /// A wrong complete checksum.
    Wrong,
    /// The pseudo-header sum, as a local stack leaves it for offload
    /// (`CHECKSUM_PARTIAL`).
    Pseudo,
    /// A complete checksum that equals the pseudo-header sum: two payload
    /// bytes chosen so. The diode once took such a segment for an offloaded
    /// one and wrote the RST's pseudo-header sum as its complete checksum,
    /// so the receiver discarded the RST (one violating segment in 65,535;
    /// the random-flow property failed so about once in 2,000 cases).
    CompleteEqualToPseudo,
}

/// The pseudo-header sum (folded, length included) of the TCP segment at
/// `tcp` in `bytes`.
fn pseudo_sum(v6: bool, bytes: &[u8], tcp: usize) -> u16 {
    let addresses = if v6 { &bytes[22..54] } else { &bytes[26..34] };
    fold(ones_sum(addresses) + 6 + (bytes.len() - tcp) as u32)
}

/// The frame of `seg` in `flow` with its checksum field filled as `field`
/// says; for [`Field::CompleteEqualToPseudo`], the two payload bytes at
/// the last even offset before the end are chosen (the payload must have
/// at least two).
fn frame_with(flow: Flow, seg: &Segment, field: Field) -> (Vec<u8>, usize) {
    let mut seg = seg.clone();
    if field == Field::CompleteEqualToPseudo {
        // A zero word there, then the word w that makes the complete
        // checksum !fold(rest + w) equal the pseudo-header sum P:
        // w = !P - rest in ones' complement.
        let at = (seg.payload.len() - 2) & !1;
        seg.payload[at..at + 2].fill(0);
        let (bytes, tcp) = lagic_tests::stream::frame(flow, &seg);
        let p = pseudo_sum(flow.v6, &bytes, tcp);
        let mut zeroed = bytes[tcp..].to_vec();
        zeroed[16..18].fill(0);
        let addresses = if flow.v6 {
            &bytes[22..54]
        } else {
            &bytes[26..34]
        };
        let rest = fold(ones_sum(addresses) + 6 + zeroed.len() as u32 + ones_sum(&zeroed));
        let w = fold(u32::from(!p) + u32::from(!rest));
        seg.payload[at..at + 2].copy_from_slice(&w.to_be_bytes());
    }
    let (mut bytes, tcp) = lagic_tests::stream::frame(flow, &seg);
    let p = pseudo_sum(flow.v6, &bytes, tcp);
    match field {
        Field::Complete => {}
        Field::Wrong => bytes[tcp + 17] ^= 0x21,
        Field::Pseudo => bytes[tcp + 16..tcp + 18].copy_from_slice(&p.to_be_bytes()),
        Field::CompleteEqualToPseudo => assert_eq!(
            u16::from_be_bytes([bytes[tcp + 16], bytes[tcp + 17]]),
            p,
            "the chosen bytes make the complete checksum the pseudo-header sum"
        ),
    }
    if field != Field::Wrong {
        let valid = fold(
            ones_sum(if flow.v6 {
                &bytes[22..54]
            } else {
                &bytes[26..34]
            }) + 6
                + (bytes.len() - tcp) as u32
                + ones_sum(&bytes[tcp..]),
        ) == 0xFFFF;
        assert_eq!(valid, field != Field::Pseudo, "{field:?} as built");
    }
    (bytes, tcp)
}

/// Every RST the diode writes has a valid checksum (complete, and the
/// pseudo-header sum for offload: `parse_reset`), whatever the violating
/// segment looked like: IPv4 and IPv6, odd and even payloads, a word split
/// across segments, data with FIN, a large segment, sequence numbers
/// wrapping inside it, and each way of filling its checksum field,
/// including a complete checksum equal to the pseudo-header sum (the shape
/// of the flaky failure). The latched flow's next segment becomes a RST
/// too. Verdicts and RST sequence numbers are the reference's.
#[test]
fn resets_have_valid_checksums_in_every_shape() {
    if !require_bpf() {
        return;
    }
    let spec = stream_spec("hateless");
    let prog = load_stream(&spec);
    let mut large = b"once upon a time ".repeat(170);
    large.extend_from_slice(b"I hate it!");
    let shapes: Vec<(&str, Vec<Segment>)> = {
        let flow_of = |isn: u32, parts: Vec<(u32, &[u8], bool)>| {
            let at = |off: u32| isn.wrapping_add(1).wrapping_add(off);
            let mut segs = vec![Segment::syn(isn)];
            for (off, bytes, fin) in parts {
                segs.push(if fin {
                    Segment::fin(at(off), bytes)
                } else {
                    Segment::data(at(off), bytes)
                });
            }
            segs
        };
        vec![
            ("odd payload", flow_of(ISN, vec![(0, b"I hate it", false)])),
            ("even payload", flow_of(ISN, vec![(0, b"I hate!!", false)])),
            (
                "split word",
                flow_of(ISN, vec![(0, b"I ha", false), (4, b"te it", false)]),
            ),
            ("data with FIN", flow_of(ISN, vec![(0, b"hate, bye", true)])),
            ("large segment", flow_of(ISN, vec![(0, &large, false)])),
            (
                "wrapping sequence numbers",
                flow_of(
                    u32::MAX - 4,
                    vec![(0, b"ok ", false), (3, b"I hate it", false)],
                ),
            ),
        ]
    };
    let mut resets = 0;
    for v6 in [false, true] {
        for (name, segments) in &shapes {
            for field in [
                Field::Complete,
                Field::Wrong,
                Field::Pseudo,
                Field::CompleteEqualToPseudo,
            ] {
                let flow = flow(v6);
                let mut diode = StreamDiode::new(&spec, config()).unwrap();
                // The segments, then one more after the latch.
                let last = segments.last().unwrap();
                let after = Segment::data(
                    last.seq.wrapping_add(last.payload.len() as u32),
                    b"more text",
                );
                let all: Vec<&Segment> = segments.iter().chain([&after]).collect();
                let mut got = Vec::new();
                for (i, seg) in all.iter().enumerate() {
                    // The violating segment (each shape's last) and the
                    // one after the latch get the field's shape; the bytes
                    // chosen for `CompleteEqualToPseudo` end them, after
                    // the word.
                    let shape = if i + 2 >= all.len() {
                        field
                    } else {
                        Field::Complete
                    };
                    let (input, tcp) = frame_with(flow, seg, shape);
                    let mut as_sent = (*seg).clone();
                    as_sent.payload = input[tcp + 20..].to_vec();
                    let want = expected(&diode.on_segment(&as_sent));
                    let (retval, out) = prog.run_out(&input).unwrap();
                    let outcome = match retval {
                        2 => Outcome::Drop,
                        0 if out == input => Outcome::Pass,
                        0 => {
                            resets += 1;
                            Outcome::Reset(parse_reset(flow, &input, tcp, &out))
                        }
                        other => panic!("return value {other}"),
                    };
                    assert_eq!(outcome, want, "{name}, {field:?}, v6 {v6}, segment {i}");
                    got.push(outcome);
                }
                let n = got.len();
                assert!(
                    matches!(got[n - 2], Outcome::Reset(_))
                        && matches!(got[n - 1], Outcome::Reset(_)),
                    "{name}, {field:?}, v6 {v6}: {got:?}"
                );
            }
        }
    }
    assert_eq!(resets, 2 * 6 * 4 * 2);
}

/// The RST rewrite with IP and TCP options (IPv4; TCP options with IPv6;
/// trimmed away with the payload), and with a checksum left to offload or
/// not: either way the RST's checksum field holds its new pseudo-header
/// sum (what a stack completing a `CHECKSUM_PARTIAL` checksum needs) and is
/// its complete checksum too.
#[test]
fn resets_drop_options_and_keep_offloaded_checksums_offloaded() {
    if !require_bpf() {
        return;
    }
    let spec = stream_spec("hateless");
    let prog = load_stream(&spec);
    let timestamps = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    for (i, partial) in [false, true].into_iter().enumerate() {
        let port = 50_000 + i as u16;
        let build = |seq: u32, flags: u8, payload: &[u8], check: Option<u16>| {
            let f = Frame::ipv4()
                .ip_options(&[1, 1, 1, 0])
                .tcp()
                .ports(port, 8080)
                .seq(seq)
                .ack(9)
                .tcp_flags(flags)
                .tcp_options(&timestamps)
                .payload(payload);
            let f = match check {
                Some(c) => f.tcp_checksum(c),
                None => f,
            };
            f.build_with_layout()
        };
        let (syn, _) = build(ISN, tcp_flags::SYN | tcp_flags::ACK, b"", None);
        assert_eq!(prog.run_out(&syn).unwrap(), (0, syn.clone()));
        let (ok, _) = build(ISN + 1, tcp_flags::ACK, b"ha", None);
        assert_eq!(prog.run_out(&ok).unwrap(), (0, ok.clone()));
        // The pseudo-header sum of the violating segment, as a local stack
        // leaves it for offload.
        let (plain, layout) = build(ISN + 3, tcp_flags::ACK, b"te", None);
        let tcp_len = (plain.len() - layout.transport) as u32;
        let pseudo = fold(ones_sum(&plain[26..34]) + 6 + tcp_len);
        let (bad, layout) = build(ISN + 3, tcp_flags::ACK, b"te", partial.then_some(pseudo));
        let (retval, out) = prog.run_out(&bad).unwrap();
        assert_eq!(retval, 0);
        let tcp = layout.transport;
        assert_eq!(out.len(), tcp + 20, "options and payload trimmed");
        let th = &out[tcp..];
        assert_eq!(u32::from_be_bytes([th[4], th[5], th[6], th[7]]), ISN + 3);
        assert_eq!(th[12], 0x50);
        assert_eq!(th[13], tcp_flags::RST | tcp_flags::ACK);
        let ihl = usize::from(out[14] & 0x0F) * 4;
        assert_eq!(ihl, 24, "IP options kept");
        assert_eq!(
            fold(ones_sum(&out[14..14 + ihl])),
            0xFFFF,
            "IPv4 header checksum"
        );
        let new_pseudo = ones_sum(&out[26..34]) + 6 + 20;
        let field = u16::from_be_bytes([th[16], th[17]]);
        assert_eq!(field, fold(new_pseudo), "a pseudo-header sum");
        assert_eq!(
            fold(new_pseudo + ones_sum(th)),
            0xFFFF,
            "a complete checksum"
        );
    }
    // IPv6 with TCP options, checked as every RST of the other tests.
    for (i, partial) in [false, true].into_iter().enumerate() {
        let flow = Flow {
            port: 50_010 + i as u16,
            v6: true,
            net: 0,
        };
        let build = |seq: u32, flags: u8, payload: &[u8], check: Option<u16>| {
            let f = Frame::ipv6()
                .tcp()
                .ports(flow.port, 8080)
                .seq(seq)
                .ack(9)
                .tcp_flags(flags)
                .tcp_options(&timestamps)
                .payload(payload);
            let f = match check {
                Some(c) => f.tcp_checksum(c),
                None => f,
            };
            f.build_with_layout()
        };
        let (syn, _) = build(ISN, tcp_flags::SYN | tcp_flags::ACK, b"", None);
        assert_eq!(prog.run_out(&syn).unwrap(), (0, syn.clone()));
        let (ok, _) = build(ISN + 1, tcp_flags::ACK, b"ha", None);
        assert_eq!(prog.run_out(&ok).unwrap(), (0, ok.clone()));
        let (plain, layout) = build(ISN + 3, tcp_flags::ACK, b"te", None);
        let pseudo = pseudo_sum(true, &plain, layout.transport);
        let (bad, layout) = build(ISN + 3, tcp_flags::ACK, b"te", partial.then_some(pseudo));
        let (retval, out) = prog.run_out(&bad).unwrap();
        assert_eq!(retval, 0);
        assert_eq!(parse_reset(flow, &bad, layout.transport, &out), ISN + 3);
    }
}
