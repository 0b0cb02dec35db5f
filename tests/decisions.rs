//! Counters and decision events of compiled diodes, read back through
//! `lagic_loader::decisions` after frames run through BPF_PROG_TEST_RUN.
//! Kernel tests: skipped without BPF unless CI=true, where they fail.

use emit_bpf::decision::{self, Reason};
use lagic_frames::Frame;
use lagic_loader::decisions::{Counters, DiodeMaps};
use lagic_loader::Verdict;
use lagic_testkit::require_bpf;
use lagic_tests::{compile_example, load};

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
