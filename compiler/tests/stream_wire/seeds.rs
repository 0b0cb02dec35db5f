//! The other scan kinds on the wire: a spec whose state must be carried across segments
//! other than `contains`, each through its per-packet seed (the leak) and its stream seed.
//!
//! - `json_depth` (`depth_le` 2): "[[" then "[1]]]": each segment alone nests at most 2,
//!   the stream nests 3.
//! - `json_start` (`len < 1400` and `prefix "{"`): two segments of 1,000 bytes that each
//!   start with "{": each is short, the stream is 2,000 bytes long.
//! - `json_prefix` (`prefix "{" or "["`), at the FIN: a FIN without data. A per-packet diode
//!   passes it (no payload), so the application sees a clean, empty response; a stream diode
//!   lets a FIN through only after a stream the spec accepts exactly (rule 3 of the
//!   guarantee), and the empty stream has no "{": a RST.
//!
//! The judgments come from the specification itself (`judge_stream` of the stream seed):
//! the per-packet run must deliver a stream the stream seed refuses, the stream run only an
//! acceptable prefix of the sender's stream, and a FIN only after a complete stream.

use predicate_ir::stream_diode::judge_stream;

use super::net::Family;
use super::raw_sender::{Script, Segment, DEFAULT_ISN};
use super::receiver::End;
use super::{describe, prerequisites, run_attack, workspace};

/// One case: the seeds, the attack and its honest counterpart.
pub struct Case {
    /// The per-packet seed.
    pub per_packet: &'static str,
    /// The stream seed.
    pub stream: &'static str,
    /// The attack.
    pub attack: Script,
    /// The honest counterpart.
    pub honest: Script,
}

fn script(segments: Vec<Segment>, stream: &[u8]) -> Script {
    Script {
        segments,
        stream: stream.to_vec(),
        isn: DEFAULT_ISN,
    }
}

/// `json_depth`: nesting split across segments.
pub fn json_depth() -> Case {
    Case {
        per_packet: "examples/json_depth.json",
        stream: "examples/stream/json_depth.json",
        attack: script(
            vec![Segment::data(0, b"[["), Segment::data(2, b"[1]]]")],
            b"[[[1]]]",
        ),
        honest: script(
            vec![Segment::data(0, b"[["), Segment::data(2, b"1]]")],
            b"[[1]]",
        ),
    }
}

/// `json_start`: a length limit spread over segments.
pub fn json_start() -> Case {
    let part = |fill: u8, len: usize| {
        let mut bytes = vec![fill; len];
        bytes[0] = b'{';
        bytes
    };
    let (a, b) = (part(b'a', 1000), part(b'b', 1000));
    let honest_b = vec![b'b'; 300];
    Case {
        per_packet: "examples/json_start.json",
        stream: "examples/stream/json_start.json",
        attack: script(
            vec![Segment::data(0, &a), Segment::data(1000, &b)],
            &[a.clone(), b.clone()].concat(),
        ),
        honest: script(
            vec![Segment::data(0, &a), Segment::data(1000, &honest_b)],
            &[a, honest_b].concat(),
        ),
    }
}

/// `json_prefix`: an empty stream ended by FIN.
pub fn json_prefix_at_fin() -> Case {
    Case {
        per_packet: "examples/json_prefix.json",
        stream: "examples/stream/json_prefix.json",
        attack: script(vec![Segment::fin(0)], b""),
        honest: script(vec![Segment::data(0, b"{}"), Segment::fin(2)], b"{}"),
    }
}

fn stream_spec(case: &Case) -> predicate_ir::Spec {
    let path = workspace().join(case.stream);
    let text = std::fs::read_to_string(&path).expect("the stream seed");
    predicate_ir::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether the application may have seen `read` end as `end` under the stream seed: an
/// acceptable stream so far, and complete if it ended by FIN.
fn allowed(spec: &predicate_ir::Spec, read: &[u8], end: &End) -> Result<(), String> {
    match judge_stream(spec, read) {
        Err(why) => Err(format!("the stream seed refuses what was read: {why}")),
        Ok(status) if *end == End::Fin && !status.complete => {
            Err("a FIN ended a stream the seed does not accept as complete".to_owned())
        }
        Ok(_) => Ok(()),
    }
}

/// Through the per-packet seed, the application reads the whole attack and a FIN, which the
/// stream seed refuses.
pub fn per_packet_leaks(tag: &str, case: Case, family: Family) {
    if !prerequisites() {
        return;
    }
    let spec = stream_spec(&case);
    let (received, report) = run_attack(tag, case.per_packet, &case.attack, family);
    let what = describe(&received, &report);
    assert_eq!(received.bytes, case.attack.stream, "{what}");
    assert_eq!(received.end, End::Fin, "{what}");
    assert!(
        allowed(&spec, &received.bytes, &received.end).is_err(),
        "the attack must be one the stream seed refuses; {what}"
    );
}

/// Through the stream seed, the application reads an acceptable prefix of the sender's
/// stream, and the connection ends by RST.
pub fn stream_blocks(tag: &str, case: Case, family: Family) {
    if !prerequisites() {
        return;
    }
    let spec = stream_spec(&case);
    let (received, report) = run_attack(tag, case.stream, &case.attack, family);
    let what = describe(&received, &report);
    if let Err(why) = allowed(&spec, &received.bytes, &received.end) {
        panic!("{why}; {what}");
    }
    assert!(case.attack.stream.starts_with(&received.bytes), "{what}");
    assert_eq!(
        received.end,
        End::Reset,
        "a latched flow must end by RST; {what}"
    );
    eprintln!(
        "{}: the application read {} bytes, then {:?}",
        case.stream,
        received.bytes.len(),
        received.end
    );
}

/// Through the stream seed, the honest counterpart arrives whole, with a FIN.
pub fn stream_passes_honest(tag: &str, case: Case, family: Family) {
    if !prerequisites() {
        return;
    }
    let spec = stream_spec(&case);
    let (received, report) = run_attack(tag, case.stream, &case.honest, family);
    let what = describe(&received, &report);
    assert!(
        allowed(&spec, &case.honest.stream, &End::Fin).is_ok(),
        "the honest stream must be one the stream seed accepts whole"
    );
    assert_eq!(received.bytes, case.honest.stream, "{what}");
    assert_eq!(received.end, End::Fin, "{what}");
}

macro_rules! seed_tests {
    ($($module:ident: $case:expr, $tag:literal;)*) => {$(
        mod $module {
            use super::*;

            #[test]
            fn per_packet_leaks() {
                super::per_packet_leaks(concat!($tag, "p"), $case, Family::V4);
            }

            #[test]
            fn stream_blocks() {
                super::stream_blocks(concat!($tag, "s"), $case, Family::V4);
            }

            #[test]
            fn stream_passes_honest() {
                super::stream_passes_honest(concat!($tag, "h"), $case, Family::V4);
            }
        }
    )*};
}

seed_tests! {
    json_depth_split_nesting: json_depth(), "jd";
    json_start_length_over_segments: json_start(), "js";
    json_prefix_empty_stream_at_fin: json_prefix_at_fin(), "jp";
}
