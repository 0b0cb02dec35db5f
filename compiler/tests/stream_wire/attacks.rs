//! The attack classes of issue 10 as sender scripts, each with its honest counterpart.
//!
//! Every script carries the four-letter `word` in the stream "I " + word + " you": the
//! attack uses "hate", the honest counterpart "hare" (same letters but one, so a diode
//! that merely counts partial matches cannot tell). The word is cut after its second
//! letter: offsets 0..4 are the head "I ha", 4..10 the rest.
//!
//! The honest counterpart keeps the segmentation and the damage but, like an honest TCP
//! sender on a lossy path, never sends two different bytes at one offset: where the attack
//! inserts a foreign byte (a corrupted or expiring copy, a shorter first version), the
//! honest script sends the real byte.

use super::raw_sender::{Script, Segment, DEFAULT_ISN};

/// An attack class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The word split across two in-order segments.
    Split,
    /// One byte per segment, in order.
    OneByte,
    /// The second half first (out of order), then the first.
    SecondHalfFirst,
    /// An out-of-order segment, then a longer one at the same sequence number (Linux keeps
    /// the longer), then the gap filled.
    LongerReplacement,
    /// A byte at the word's cut with a bad TCP checksum (the client discards it), then the
    /// real bytes at the same offset.
    BadChecksum,
    /// A byte at the word's cut with TTL 1: the router behind the diode drops it.
    TtlExpiry,
    /// An urgent byte inside the word: Linux takes it out of what the application reads.
    Urgent,
    /// The FIN first (out of order, at the end), then the data.
    DataAfterFin,
}

/// A script and what a Linux application reads when every segment reaches it.
pub struct Attack {
    /// What the sender does.
    pub script: Script,
    /// What the application reads if nothing is dropped.
    pub app_reads: Vec<u8>,
}

/// The script of `class` carrying `word`; `honest` selects the counterpart's bytes where
/// the attack sends foreign ones.
pub fn script(class: Class, word: &[u8; 4], honest: bool) -> Attack {
    let mut stream = b"I ".to_vec();
    stream.extend_from_slice(word);
    stream.extend_from_slice(b" you");
    let (head, rest) = (stream[..4].to_vec(), stream[4..].to_vec());
    let foreign = |real: &[u8], fake: &[u8]| if honest { real.to_vec() } else { fake.to_vec() };
    let mut app_reads = stream.clone();
    let segments = match class {
        Class::Split => vec![Segment::data(0, &head), Segment::data(4, &rest)],
        Class::OneByte => stream
            .iter()
            .enumerate()
            .map(|(i, b)| Segment::data(i as u32, &[*b]))
            .collect(),
        Class::SecondHalfFirst => vec![Segment::data(4, &rest), Segment::data(0, &head)],
        Class::LongerReplacement => vec![
            Segment::data(4, &foreign(&rest[..2], b"xz")),
            Segment::data(4, &rest),
            Segment::data(0, &head),
        ],
        Class::BadChecksum => vec![
            Segment::data(0, &head),
            Segment::data(4, &foreign(&rest[..1], b"X")).bad_checksum(),
            Segment::data(4, &rest),
        ],
        Class::TtlExpiry => vec![
            Segment::data(0, &head),
            Segment::data(4, &foreign(&rest[..1], b"X")).ttl(1),
            Segment::data(4, &rest),
        ],
        Class::Urgent => {
            // The urgent byte is part of the sequence space; the application skips it.
            let mut urgent = b"X".to_vec();
            urgent.extend_from_slice(&rest);
            stream = [head.clone(), urgent.clone()].concat();
            vec![Segment::data(0, &head), Segment::data(4, &urgent).urgent(1)]
        }
        Class::DataAfterFin => vec![
            Segment::fin(stream.len() as u32),
            Segment::data(0, &head),
            Segment::data(4, &rest),
        ],
    };
    if class != Class::Urgent {
        app_reads = stream.clone();
    }
    Attack {
        script: Script {
            segments,
            stream,
            isn: DEFAULT_ISN,
        },
        app_reads,
    }
}

/// Whether `bytes` contain "hate" in any case mix (what the `hateless` diodes forbid).
pub fn has_hate(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w.eq_ignore_ascii_case(b"hate"))
}
