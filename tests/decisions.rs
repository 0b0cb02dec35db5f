//! Counters and decision events of compiled diodes, read back through
//! `lagic_loader::decisions` after frames run through BPF_PROG_TEST_RUN.
//! Kernel tests: skipped without BPF unless CI=true, where they fail.

use emit_bpf::decision::{self, Reason};
use lagic_frames::Frame;
use lagic_loader::decisions::{Counters, DiodeMaps};
use lagic_loader::Verdict;
use lagic_testkit::require_bpf;
use lagic_tests::{compile_example, example_spec, load};

fn drain(maps: &mut DiodeMaps) -> Vec<lagic_loader::decisions::Decision> {
    let mut out = Vec::new();
    while let Some(event) = maps.next_event() {
        out.push(event.expect("every record decodes"));
    }
    out
}

#[test]
fn counters_and_events_are_exact_after_mixed_frames() {
    if !require_bpf() {
        return;
    }
    let diode = compile_example("hateless");
    // Its one atom is the scan of `contains` under the top-level `not`.
    match decision::atoms(&diode.program).as_slice() {
        [decision::Atom::Scan { scan: 0, path, .. }] => assert_eq!(path, "$.predicate.arg"),
        other => panic!("hateless's atoms: {other:?}"),
    }
    let program = load(&diode);
    let mut maps = DiodeMaps::for_program(program.fd()).expect("the diode's maps");
    assert_eq!(maps.counters().unwrap(), Counters::default(), "a new diode");

    let pass = Frame::ipv4()
        .src([10, 0, 0, 1])
        .dst([10, 0, 0, 2])
        .ports(8080, 40000)
        .payload("all is well")
        .build();
    let hate = Frame::ipv4()
        .src([10, 0, 0, 1])
        .dst([10, 0, 0, 2])
        .ports(8080, 40001)
        .payload("I really HATE this")
        .build();
    let arp = Frame::arp().build(); // passes by policy
    let non_ip = Frame::other_ethertype(0x88B5).payload([0u8; 46]).build();
    let udp = Frame::ipv4().udp().payload("x").build(); // other_ip: drop
    let fragment = Frame::ipv4().fragment(8, false).payload("x").build();
    let cases: [(&[u8], Verdict, usize); 6] = [
        (&pass, Verdict::Pass, 5),
        (&hate, Verdict::Drop, 3),
        (&arp, Verdict::Pass, 2),
        (&non_ip, Verdict::Drop, 4),
        (&udp, Verdict::Drop, 1),
        (&fragment, Verdict::Drop, 2),
    ];
    for (frame, want, times) in cases {
        for _ in 0..times {
            assert_eq!(program.run(frame).unwrap().verdict, want);
        }
    }
    let c = maps.counters().unwrap();
    let want = Counters {
        pass: 7,
        predicate: 3,
        policy_non_ip: 4,
        policy_other_ip: 1,
        fragment: 2,
        ..Counters::default()
    };
    assert_eq!(c, want);
    assert_eq!(c.drops(), 10);

    let events = drain(&mut maps);
    assert_eq!(events.len(), 10, "one event per drop, none per pass");
    let predicate: Vec<_> = events
        .iter()
        .filter(|e| e.reason == Reason::Predicate)
        .collect();
    assert_eq!(predicate.len(), 3);
    let payload = b"I really HATE this";
    let hate_at = 9u32; // "HATE" spans payload[9..13]
    for e in predicate {
        assert_eq!(e.decided_by, Some(0), "hateless has one atom: its scan");
        let flow = e.flow.as_ref().expect("an IPv4 TCP flow");
        assert_eq!(flow.src_ip.to_string(), "10.0.0.1");
        assert_eq!(flow.dest_ip.to_string(), "10.0.0.2");
        assert_eq!((flow.src_port, flow.dest_port), (Some(8080), Some(40001)));
        assert_eq!(flow.proto, 6);
        assert_eq!(e.payload_len as usize, payload.len());
        // The scan stops in the chunk where it sank: the byte that
        // completed "HATE" (payload[12]) lies in the reported span.
        let offset = e.offset.expect("the scan's pass stopped early");
        let completed = hate_at + 3;
        assert!(
            (offset..offset + e.offset_span).contains(&completed),
            "offset {offset} span {}",
            e.offset_span
        );
        assert_eq!(e.excerpt_start, offset, "the excerpt starts at the offset");
        let start = e.excerpt_start as usize;
        assert_eq!(e.excerpt, &payload[start..], "the excerpt is the payload's");
        assert!(e.excerpt.windows(4).any(|w| w == b"HATE"));
    }
    let reasons: Vec<_> = events.iter().map(|e| e.reason).collect();
    for (reason, n) in [
        (Reason::PolicyNonIp, 4),
        (Reason::PolicyOtherIp, 1),
        (Reason::Fragment, 2),
    ] {
        assert_eq!(
            reasons.iter().filter(|r| **r == reason).count(),
            n,
            "{reason:?}"
        );
    }
    assert!(events
        .iter()
        .filter(|e| e.reason != Reason::Predicate)
        .all(|e| e.decided_by.is_none() && e.offset.is_none() && e.excerpt.is_empty()));
}

#[test]
fn a_deep_match_is_located_within_its_chunk() {
    if !require_bpf() {
        return;
    }
    let diode = compile_example("hateless");
    let program = load(&diode);
    let mut maps = DiodeMaps::for_program(program.fd()).expect("the diode's maps");
    for at in [0usize, 63, 64, 150, 1000, 1400] {
        let mut payload = vec![b'.'; at];
        payload.extend_from_slice(b"hAtE");
        payload.extend(std::iter::repeat_n(b'-', 70));
        let frame = Frame::ipv4().payload(&payload).build();
        assert_eq!(program.run(&frame).unwrap().verdict, Verdict::Drop);
        let events = drain(&mut maps);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        let completed = (at + 3) as u32;
        let offset = e.offset.expect("an offset");
        assert!(
            (offset..offset + e.offset_span).contains(&completed),
            "match at {at}: offset {offset} span {}",
            e.offset_span
        );
        assert!(e.offset_span <= 64);
        let start = e.excerpt_start as usize;
        assert_eq!(e.excerpt, &payload[start..start + e.excerpt.len()]);
        assert!(
            e.excerpt.windows(4).any(|w| w == b"hAtE")
                || (start..start + e.excerpt.len()).contains(&(at + 3)),
            "the excerpt holds the deciding byte"
        );
    }
}

#[test]
fn a_full_ring_buffer_counts_lost_events_and_keeps_every_verdict() {
    if !require_bpf() {
        return;
    }
    let diode = compile_example("hateless");
    let program = load(&diode);
    let mut maps = DiodeMaps::for_program(program.fd()).expect("the diode's maps");
    let drop = Frame::ipv4().payload("hate").build();
    let pass = Frame::ipv4().payload("love").build();
    // Each record takes its size plus an 8-byte header: more drops than
    // that fit must overflow the ring.
    let record = decision::event_size(decision::DEFAULT_EXCERPT) + 8;
    let capacity = decision::EVENTS_RING_SIZE as usize / record;
    let drops = capacity + 500;
    for _ in 0..drops {
        assert_eq!(program.run(&drop).unwrap().verdict, Verdict::Drop);
        assert_eq!(program.run(&pass).unwrap().verdict, Verdict::Pass);
    }
    let c = maps.counters().unwrap();
    assert_eq!(c.predicate, drops as u64);
    assert_eq!(c.pass, drops as u64);
    let events = drain(&mut maps);
    assert!(events.len() <= capacity, "{} events", events.len());
    assert!(c.lost_events >= 500, "{} lost", c.lost_events);
    assert_eq!(events.len() as u64 + c.lost_events, drops as u64);
    assert!(events.iter().all(|e| e.reason == Reason::Predicate));

    // Drained, the ring takes events again.
    assert_eq!(program.run(&drop).unwrap().verdict, Verdict::Drop);
    assert_eq!(drain(&mut maps).len(), 1);
    assert_eq!(maps.counters().unwrap().lost_events, c.lost_events);
}

// ---------------------------------------------------------------------------
// The exact deciding byte (docs/watch.md, "Where in the payload"): the
// diode records the chunk its pass stopped in (or an inline window) and
// the scan's state there; `Decision::locate` replays the span over the
// excerpt. The expected byte is computed here from the IR alone.
// ---------------------------------------------------------------------------

use emit_bpf::decision::Located;
use predicate_ir::{Machine, Program};

/// The first payload index at which scan `id`'s machine, run from its
/// window's start in its initial state, enters a sink.
fn sink_index(program: &Program, id: usize, payload: &[u8]) -> Option<u32> {
    let scan = &program.scans[id];
    let end = scan
        .window
        .end
        .map_or(payload.len(), |e| (e as usize).min(payload.len()));
    let mut state = Machine::INITIAL;
    for (i, &b) in payload
        .iter()
        .enumerate()
        .take(end)
        .skip(scan.window.start as usize)
    {
        state = scan.machine.step(state, b);
        if scan.machine.is_sink(state) {
            return Some(i as u32);
        }
    }
    None
}

fn spec_of(json: &str) -> predicate_ir::Spec {
    predicate_ir::parse(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// `not contains WORD` (case-sensitive) over `window`.
fn without(name: &str, words: &[&[u8]], window: &str) -> String {
    let args: Vec<String> = words
        .iter()
        .map(|w| {
            let classes: Vec<String> = w.iter().map(|b| format!("[[{b},{b}]]")).collect();
            format!(
                r#"{{"op":"contains","window":{window},"pattern":[{}]}}"#,
                classes.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"version":1,"name":"{name}","description":"","policy":{{"arp":"pass","ipv6_nd":"pass","other_ip":"drop","non_ip":"drop"}},"predicate":{{"op":"not","arg":{{"op":"or","args":[{}]}}}}}}"#,
        args.join(",")
    )
}

/// Runs every payload (each must drop) through `spec` compiled with
/// excerpts on (the default) and off, and checks the located byte:
/// exact with the excerpt when `exact(payload, expected)` says the excerpt
/// can cover it, and a span holding it otherwise.
fn check_located(
    spec: &predicate_ir::Spec,
    payloads: &[Vec<u8>],
    excerpt_covers: impl Fn(&[u8], u32) -> bool,
) {
    let program = predicate_ir::lower(spec).unwrap();
    let atoms = decision::atoms(&program);
    let scan_of_atom = |atom: u32| match &atoms[atom as usize] {
        decision::Atom::Scan { scan, .. } => *scan,
        other => panic!("{}: atom {atom} is {other}, not a scan", spec.name),
    };
    for excerpt in [decision::DEFAULT_EXCERPT, 0] {
        let options = emit_bpf::Options {
            excerpt,
            ..emit_bpf::Options::default()
        };
        let object = emit_bpf::compile_object_with(&program, &options).unwrap();
        let loaded = lagic_loader::LoadedProgram::from_object(&object)
            .unwrap_or_else(|e| panic!("the kernel refused {}: {e}", spec.name));
        let mut maps = DiodeMaps::for_program(loaded.fd()).expect("the diode's maps");
        for payload in payloads {
            let frame = Frame::ipv4().payload(payload).build();
            assert_eq!(loaded.run(&frame).unwrap().verdict, Verdict::Drop);
            let events = drain(&mut maps);
            assert_eq!(events.len(), 1);
            let e = &events[0];
            let scan = scan_of_atom(e.decided_by.expect("a deciding atom"));
            let want = sink_index(&program, scan, payload).expect("the scan sank");
            let got = e.locate(&atoms);
            let what = format!(
                "{} (excerpt {excerpt}), deciding byte {want} of {}: recorded {:?}+{} from {:?}, located {got:?}",
                spec.name,
                payload.len(),
                e.offset,
                e.offset_span,
                e.span_state
            );
            if excerpt > 0 && excerpt_covers(payload, want) {
                assert_eq!(
                    got,
                    Some(Located {
                        offset: want,
                        span: 1
                    }),
                    "{what}"
                );
            } else {
                let l = got.unwrap_or_else(|| panic!("a span: {what}"));
                assert!((l.offset..l.offset + l.span).contains(&want), "{what}");
                // Without the bytes, exact only where the diode's span is one byte.
                assert_eq!(l.is_exact(), e.offset_span == 1, "{what}");
            }
        }
    }
}

/// Payloads of `fill` bytes with `word` planted at many places: around
/// 64-byte chunk boundaries, and so that it ends in the window's tiers of
/// 8-byte chunks and of single bytes (tails shorter than a chunk).
fn planted(word: &[u8], fill: u8) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for at in [
        0usize, 1, 5, 59, 60, 61, 62, 63, 64, 65, 100, 124, 125, 126, 127, 128, 200, 1000, 1396,
    ] {
        for tail in [0usize, 3, 9, 70] {
            let mut p = vec![fill; at];
            p.extend_from_slice(word);
            p.extend(std::iter::repeat_n(fill, tail));
            out.push(p);
        }
    }
    out
}

#[test]
fn the_deciding_byte_is_exact_across_chunks_and_tiers() {
    if !require_bpf() {
        return;
    }
    // hateless: a small branchy DFA, case-insensitive.
    let mut payloads = planted(b"hAtE", b'.');
    payloads.push(b"hate".to_vec());
    payloads.push(b"hhhhhate hate".to_vec());
    check_located(&example_spec("hateless"), &payloads, |_, _| true);
}

#[test]
fn the_deciding_byte_of_an_inline_window_is_exact_within_the_excerpt() {
    if !require_bpf() {
        return;
    }
    // A window ending early is walked inline: its span is the window, from
    // the initial state; the excerpt (64 bytes from the window's start)
    // locates a byte inside it, and a span stays beyond it.
    let spec = spec_of(&without("zq_head", &[b"zq"], r#"{"start":0,"end":100}"#));
    let program = predicate_ir::lower(&spec).unwrap();
    let (_, map) = emit_bpf::compile_mapped(&program).unwrap();
    assert!(!map.inline.is_empty(), "the window is walked inline");
    let payloads: Vec<Vec<u8>> = [0usize, 1, 30, 61, 62, 63, 64, 90, 97]
        .iter()
        .flat_map(|&at| {
            [0usize, 5, 300].map(|tail| {
                let mut p = vec![b'-'; at];
                p.extend_from_slice(b"zq");
                p.extend(std::iter::repeat_n(b'-', tail));
                p
            })
        })
        .collect();
    check_located(&spec, &payloads, |_, want| want < decision::DEFAULT_EXCERPT);
}

#[test]
fn the_deciding_byte_of_a_table_driven_list_is_exact() {
    if !require_bpf() {
        return;
    }
    // 1,000 words of 5 to 8 lowercase letters (a fixed pseudo-random list):
    // far past the branchy limit, so the automaton runs from tables.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let words: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            let len = 5 + (next() % 4) as usize;
            (0..len).map(|_| b'a' + (next() % 26) as u8).collect()
        })
        .collect();
    let refs: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
    let spec = spec_of(&without("list_1000", &refs, r#"{"start":0,"end":null}"#));
    let program = predicate_ir::lower(&spec).unwrap();
    let (module, _) = emit_bpf::compile_mapped(&program).unwrap();
    assert!(!module.rodata.is_empty(), "the list is table-driven");
    let mut payloads = Vec::new();
    for (i, w) in words.iter().enumerate().step_by(97) {
        payloads.extend(planted(w, b' ').into_iter().skip(i % 4).step_by(3));
    }
    check_located(&spec, &payloads, |_, _| true);
}

#[test]
fn the_deciding_byte_of_a_depth_counter_is_exact() {
    if !require_bpf() {
        return;
    }
    // json_depth: more than 2 levels fails on the third opening bracket
    // outside a string.
    let mut payloads = Vec::new();
    for at in [0usize, 40, 61, 62, 63, 64, 127, 130, 700] {
        for tail in [0usize, 6, 80] {
            let mut p = br#"{"s":"[[[[\"[", "#.to_vec();
            p.extend(std::iter::repeat_n(b' ', at));
            p.extend_from_slice(b"[[]");
            p.extend(std::iter::repeat_n(b'x', tail));
            payloads.push(p);
        }
    }
    check_located(&example_spec("json_depth"), &payloads, |_, _| true);
}
