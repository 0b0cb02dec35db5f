//! The wire tests' expectations, checked against the reference stream diode.
//!
//! `predicate_ir::stream_diode` is the executable specification of stream mode (a diode
//! and a model of the receiving Linux stack and application). Here every attack script
//! and its honest counterpart run through it, with the same persistent sender as on the
//! wire (retransmit what is not acknowledged, then FIN), and must meet the very
//! assertions the wire tests make of the kernel's diode. So a wire test that fails shows
//! the kernel diverging from the specification (or the harness from the model), never a
//! test expecting what the specification does not promise. No kernel needed.

use predicate_ir::stream_diode::{
    DiodeConfig, Receiver, Segment as RefSegment, StreamDiode, Verdict,
};

use super::attacks::{script, Class};
use super::raw_sender::{Script, Segment, MAX_SEGMENT, ROUNDS};
use super::receiver::End;
use super::{assert_blocked, assert_whole, workspace, STREAM_HATELESS};

/// The reference's settings: keeping every judged byte, and keeping none (a kernel diode
/// that cannot hold the stream drops every overlap with judged bytes).
fn configs() -> [DiodeConfig; 2] {
    [
        DiodeConfig::default(),
        DiodeConfig {
            retain: 0,
            ..DiodeConfig::default()
        },
    ]
}

/// The receiver is behind the router: a segment needs TTL 2 at the diode to arrive (the
/// model drops a segment whose TTL is below its hop count).
const HOPS_TO_RECEIVER: u8 = 2;

const ALL: [Class; 8] = [
    Class::Split,
    Class::OneByte,
    Class::SecondHalfFirst,
    Class::LongerReplacement,
    Class::BadChecksum,
    Class::TtlExpiry,
    Class::Urgent,
    Class::DataAfterFin,
];

fn to_reference(script: &Script, segment: &Segment) -> RefSegment {
    let seq = script.isn.wrapping_add(1).wrapping_add(segment.offset);
    let mut out = if segment.fin {
        RefSegment::fin(seq, &segment.data)
    } else {
        RefSegment::data(seq, &segment.data)
    };
    if let Some(pointer) = segment.urgent {
        out.flags.urg = true;
        out.urgent_pointer = pointer;
    }
    out.checksum_ok = !segment.bad_checksum;
    out.ttl = segment.ttl;
    out
}

/// Runs `script` through the reference diode into the receiver model, the sender behaving
/// as `raw_sender::serve` does after its script; what the application read and how the
/// connection ended.
fn run(script: &Script, config: DiodeConfig) -> (Vec<u8>, End, Vec<Verdict>) {
    let text = std::fs::read_to_string(workspace().join(STREAM_HATELESS)).expect("the spec");
    let spec = predicate_ir::parse(&text).expect("a valid spec");
    let mut diode = StreamDiode::new(&spec, config).expect("a stream spec");
    let mut receiver = Receiver::new(HOPS_TO_RECEIVER, false);
    let mut verdicts = Vec::new();
    let mut send = |segment: RefSegment, receiver: &mut Receiver| {
        let verdict = diode.on_segment(&segment);
        match &verdict {
            Verdict::Pass => receiver.receive(&segment),
            Verdict::Reset { seq, .. } => receiver.receive(&RefSegment::reset(*seq)),
            Verdict::Drop(_) => {}
        }
        verdicts.push(verdict);
    };
    send(RefSegment::syn(script.isn), &mut receiver);
    for segment in &script.segments {
        send(to_reference(script, segment), &mut receiver);
    }
    let len = script.stream.len();
    for _ in 0..ROUNDS {
        if receiver.was_reset() || receiver.saw_fin() {
            break;
        }
        // The reference diode never passes an urgent byte, so what the application can
        // read is exactly what the receiver acknowledges.
        let acked = receiver.app().len();
        let segment = if acked < len {
            let end = (acked + MAX_SEGMENT).min(len);
            Segment::data(acked as u32, &script.stream[acked..end])
        } else {
            Segment::fin(len as u32)
        };
        send(to_reference(script, &segment), &mut receiver);
    }
    let end = if receiver.was_reset() {
        End::Reset
    } else if receiver.saw_fin() {
        End::Fin
    } else {
        End::Timeout
    };
    (receiver.app(), end, verdicts)
}

#[test]
fn the_reference_diode_blocks_every_attack_as_the_wire_tests_expect() {
    for (class, config) in ALL.into_iter().flat_map(|c| configs().map(|f| (c, f))) {
        let attack = script(class, b"hate", false);
        let (read, end, verdicts) = run(&attack.script, config);
        let what = format!(
            "reference {config:?}: read {:?}, ended by {end:?}, verdicts {verdicts:?}",
            String::from_utf8_lossy(&read)
        );
        assert_blocked(class, &attack.script.stream, &read, &end, &what);
    }
}

#[test]
fn the_reference_diode_passes_every_honest_counterpart_whole() {
    for (class, config) in ALL.into_iter().flat_map(|c| configs().map(|f| (c, f))) {
        let attack = script(class, b"hare", true);
        let (read, end, verdicts) = run(&attack.script, config);
        let what = format!(
            "reference {config:?}: read {:?}, ended by {end:?}, verdicts {verdicts:?}",
            String::from_utf8_lossy(&read)
        );
        assert_whole(class, &attack.script.stream, &read, &end, &what);
    }
}

#[test]
fn the_reference_diode_passes_the_wrapping_honest_stream_whole() {
    let mut attack = script(Class::OneByte, b"hare", true);
    attack.script.isn = u32::MAX - 3;
    for config in configs() {
        let (read, end, verdicts) = run(&attack.script, config);
        let what = format!("reference {config:?}: verdicts {verdicts:?}");
        assert_whole(Class::OneByte, &attack.script.stream, &read, &end, &what);
    }
}
