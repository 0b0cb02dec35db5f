//! More attack classes of a hostile enclave (docs/stream.md, "The guarantee", the classes
//! after issue 10's): segments the diode's packet model and the receiving Linux stack might
//! read differently. Each carries "I hate you" (or the honest "I hare you") as `attacks`
//! does, and tries to slip the word past the diode by a segment the receiver treats
//! otherwise than an ordinary one.
//!
//! Three kinds:
//! - *the word in IP fragments* ([`Class::Fragmented`]): the receiver reassembles them; the
//!   diode drops every fragment (its packet model), so the sender must resend the segment
//!   whole, and then it is judged.
//! - *a foreign byte the receiver discards and the diode drops* (SYN with FIN, data on a
//!   SYN mid-stream, data without ACK): like the TTL-1 byte of `attacks`, the diode keeps
//!   its judged stream what the receiver keeps, so the real bytes after it are judged in
//!   order (a RST for the word, the honest stream whole).
//! - *a foreign byte the receiver discards and the diode passes* (an acknowledgment of data
//!   the client never sent, a TCP MD5 signature option the client expects none of): like the
//!   bad checksum of `attacks`, the diode's judged stream runs one byte ahead of what the
//!   receiver keeps, and the flow stalls; the tests check the safety half only.
//!
//! Plus a RST: one at an offset that is in the receiver's window but not its next byte
//! (Linux answers it with a challenge ACK and keeps the connection) must not let the
//! stream go on, and a RST carrying the word's second half must not deliver it.

use super::raw_sender::{Craft, Script, Segment, DEFAULT_ISN};
use super::*;
use lagic_frames::tcp_flags;

/// An attack class of this file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The whole stream in one segment, sent as two IP fragments cut after "I ha".
    Fragmented,
    /// A foreign byte at the cut with SYN and FIN set.
    SynFin,
    /// A foreign byte at the cut on a SYN (data on a SYN mid-stream; Linux answers a SYN on
    /// an established connection with a challenge ACK and discards it).
    SynData,
    /// A foreign byte at the cut without the ACK flag (Linux discards such data).
    NoAck,
    /// A foreign byte at the cut acknowledging data the client never sent (Linux discards
    /// the segment).
    AckAhead,
    /// A foreign byte at the cut with a TCP MD5 signature option (a Linux socket without an
    /// MD5 key discards it where the kernel has MD5 support, and ignores the option where
    /// it has none).
    Md5,
    /// A RST at an offset in the receiver's window past its next byte (Linux: a challenge
    /// ACK, the connection stays), then the rest of the word.
    RstInWindow,
    /// The whole stream in one segment whose bytes at the cut are "XX"-like filler, sent as a
    /// partial checksum (`virtio_net_hdr` `NEEDS_CSUM`) whose offset names those two
    /// payload bytes: where the checksum is completed after the diode (a router's device
    /// without transmit checksum offload; a NIC inserting it where the offset says), the
    /// completion writes "te" there.
    PartialChecksum,
}

/// The script of `class` carrying `word`; `honest` sends the real byte where the attack
/// sends a foreign one.
pub fn script(class: Class, word: &[u8; 4], honest: bool) -> Script {
    let mut stream = b"I ".to_vec();
    stream.extend_from_slice(word);
    stream.extend_from_slice(b" you");
    let (head, rest) = (stream[..4].to_vec(), stream[4..].to_vec());
    let foreign = if honest {
        rest[..1].to_vec()
    } else {
        b"X".to_vec()
    };
    let at_cut = |craft: Craft| {
        vec![
            Segment::data(0, &head),
            Segment::data(4, &foreign).craft(craft),
            Segment::data(4, &rest),
        ]
    };
    let segments = match class {
        Class::Fragmented => {
            vec![Segment::data(0, &stream).craft(Craft::Fragmented { first_data: 4 })]
        }
        Class::SynFin => at_cut(Craft::Flags(
            tcp_flags::SYN | tcp_flags::FIN | tcp_flags::ACK | tcp_flags::PSH,
        )),
        Class::SynData => at_cut(Craft::Flags(
            tcp_flags::SYN | tcp_flags::ACK | tcp_flags::PSH,
        )),
        Class::NoAck => at_cut(Craft::Flags(tcp_flags::PSH)),
        Class::AckAhead => at_cut(Craft::AckAhead(1000)),
        Class::Md5 => {
            // Kind 19, length 18, a made-up 16-byte digest.
            let mut option = vec![19, 18];
            option.extend_from_slice(&[0xa5; 16]);
            at_cut(Craft::TcpOptions(option))
        }
        Class::PartialChecksum => {
            let mut filler = stream.clone();
            filler[4..6].copy_from_slice(b"XX");
            vec![
                Segment::data(0, &filler).craft(Craft::PartialChecksumInPayload {
                    at: 4,
                    becomes: [stream[4], stream[5]],
                }),
            ]
        }
        Class::RstInWindow => vec![
            Segment::data(0, &head),
            Segment::data(6, b"").craft(Craft::Flags(tcp_flags::RST | tcp_flags::ACK)),
            Segment::data(4, &rest),
        ],
    };
    Script {
        segments,
        stream,
        isn: DEFAULT_ISN,
    }
}

/// What the topology needs for `class`: for the partial checksum, a router that completes
/// it in software on the way to the client.
fn setup(class: Class) -> fn(&net::Topology) {
    match class {
        Class::PartialChecksum => |topology| net::disable_tx_checksum(&topology.router_ns, "rtr1"),
        _ => |_| {},
    }
}

/// Without the stream diode the attack delivers the word: through the per-packet `hateless`
/// (or, for fragments, which every lagic diode drops, through no diode), the application
/// reads exactly "I hate you" and a FIN. So the client's stack really discards the foreign
/// byte (it would read `I haXe you` otherwise), reassembles the fragments, or keeps the
/// connection after the RST.
fn leaks_without_the_stream_diode(tag: &str, class: Class, family: Family) {
    if !prerequisites() {
        return;
    }
    let attack = script(class, b"hate", false);
    let spec = (class != Class::Fragmented).then_some(PER_PACKET_HATELESS);
    let (received, report) =
        run_attack_through(tag, spec, &attack, family, ATTACK_DEADLINE, setup(class));
    let what = describe(&received, &report);
    assert_eq!(
        received.bytes, attack.stream,
        "{class:?}: expected the application to read the whole stream; {what}"
    );
    assert!(has_hate(&received.bytes), "{class:?}: no leak; {what}");
    assert_eq!(received.end, End::Fin, "{class:?}: {what}");
    eprintln!("{class:?} leaks without the stream diode: {what}");
}

/// Through the stream `hateless` the attack is blocked and the receiver learns by a RST.
fn stream_blocks(tag: &str, class: Class, family: Family) {
    if !prerequisites() {
        return;
    }
    let attack = script(class, b"hate", false);
    let (received, report) = run_attack_through(
        tag,
        Some(STREAM_HATELESS),
        &attack,
        family,
        ATTACK_DEADLINE,
        setup(class),
    );
    let what = describe(&received, &report);
    assert_blocked(class, &attack.stream, &received.bytes, &received.end, &what);
    eprintln!("{class:?} is blocked by the stream diode: {what}");
}

/// Through the stream `hateless` the honest counterpart arrives whole, with a FIN.
fn stream_passes_honest(tag: &str, class: Class, family: Family) {
    if !prerequisites() {
        return;
    }
    let attack = script(class, b"hare", true);
    let (received, report) = run_attack(tag, STREAM_HATELESS, &attack, family);
    let what = describe(&received, &report);
    assert_whole(class, &attack.stream, &received.bytes, &received.end, &what);
}

/// For the classes whose foreign byte the diode passes and the receiver discards: the word
/// never crosses, and the application reads a prefix of a stream the diode judged: the
/// sender's (the receiver discarded the byte) or the sender's with the foreign byte in
/// place (the receiver kept it, as a kernel without MD5 support does), however the
/// connection ends.
fn stream_is_safe(tag: &str, class: Class, family: Family) {
    if !prerequisites() {
        return;
    }
    let attack = script(class, b"hate", false);
    let (received, report) = run_attack(tag, STREAM_HATELESS, &attack, family);
    let what = describe(&received, &report);
    let mut with_foreign = attack.stream.clone();
    with_foreign[4] = b'X';
    assert!(
        !has_hate(&received.bytes),
        "{class:?}: the word crossed the stream diode; {what}"
    );
    assert!(
        attack.stream.starts_with(&received.bytes) || with_foreign.starts_with(&received.bytes),
        "{class:?}: the application read bytes the diode never judged in that place; {what}"
    );
    eprintln!("{class:?} is safe through the stream diode: {what}");
}

/// [`Class::PartialChecksum`] through the stream `hateless`, with the router completing
/// partial checksums in software on its way to the client (where the completion would
/// write "te" over the judged "XX"): the diode drops the segment, whose checksum is left to
/// be completed after it (rule 0, `partial_checksum`), so the application reads none of it
/// and no FIN. (Before rule 0 it read "I hate you" and a FIN, IPv4 and IPv6.) No RST: the
/// diode does not rewrite a segment whose completion the sender aimed (docs/stream.md).
fn stream_drops_partial(tag: &str, class: Class, family: Family) {
    if !prerequisites() {
        return;
    }
    let attack = script(class, b"hate", false);
    let (received, report) = run_attack_through(
        tag,
        Some(STREAM_HATELESS),
        &attack,
        family,
        ATTACK_DEADLINE,
        setup(class),
    );
    let what = describe(&received, &report);
    assert!(!has_hate(&received.bytes), "{class:?}: {what}");
    assert!(
        received.bytes.is_empty(),
        "{class:?}: the application read bytes of a segment whose checksum was left to be \
         completed after the diode; {what}"
    );
    assert_ne!(received.end, End::Fin, "{class:?}: {what}");
    eprintln!("{class:?} is dropped by the stream diode: {what}");
}

/// Tests of the classes; `[test, ...]` names the functions above that apply.
macro_rules! attack2_tests {
    ($family:expr; $($module:ident: $class:expr, $tag:literal, [$($test:ident),*];)*) => {$(
        mod $module {
            use super::*;
            $(
                #[test]
                fn $test() {
                    // "li", "sb", "sp", "si", "sd": one namespace set per test.
                    let name = stringify!($test);
                    let tag = format!("{}{}{}", $tag, &name[..1], &name[7..8]);
                    super::$test(&tag, $class, $family);
                }
            )*
        }
    )*};
}

/// Per class, IPv4.
mod ipv4 {
    use super::*;

    attack2_tests! {
        Family::V4;
        fragments: Class::Fragmented, "x4fr",
            [leaks_without_the_stream_diode, stream_blocks, stream_passes_honest];
        syn_fin: Class::SynFin, "x4sf",
            [leaks_without_the_stream_diode, stream_blocks, stream_passes_honest];
        syn_data: Class::SynData, "x4sd",
            [leaks_without_the_stream_diode, stream_blocks, stream_passes_honest];
        no_ack: Class::NoAck, "x4na",
            [leaks_without_the_stream_diode, stream_blocks, stream_passes_honest];
        ack_ahead: Class::AckAhead, "x4aa", [leaks_without_the_stream_diode, stream_is_safe];
        md5_option: Class::Md5, "x4md", [stream_is_safe];
        rst_in_window: Class::RstInWindow, "x4rw",
            [leaks_without_the_stream_diode, stream_blocks];
        partial_checksum: Class::PartialChecksum, "x4pc",
            [leaks_without_the_stream_diode, stream_drops_partial];
    }
}

/// Per class, IPv6 (fragments in Fragment extension headers).
mod ipv6 {
    use super::*;

    attack2_tests! {
        Family::V6;
        fragments: Class::Fragmented, "x6fr",
            [leaks_without_the_stream_diode, stream_blocks, stream_passes_honest];
        syn_fin: Class::SynFin, "x6sf",
            [leaks_without_the_stream_diode, stream_blocks, stream_passes_honest];
        syn_data: Class::SynData, "x6sd",
            [leaks_without_the_stream_diode, stream_blocks, stream_passes_honest];
        no_ack: Class::NoAck, "x6na",
            [leaks_without_the_stream_diode, stream_blocks, stream_passes_honest];
        ack_ahead: Class::AckAhead, "x6aa", [leaks_without_the_stream_diode, stream_is_safe];
        md5_option: Class::Md5, "x6md", [stream_is_safe];
        rst_in_window: Class::RstInWindow, "x6rw",
            [leaks_without_the_stream_diode, stream_blocks];
        partial_checksum: Class::PartialChecksum, "x6pc",
            [leaks_without_the_stream_diode, stream_drops_partial];
    }
}
