//! The gate before any number is taken: every baseline must give the same
//! verdict as the Rust reference diode and as lagic's object on thousands of
//! generated frames, run through the kernel with `BPF_PROG_TEST_RUN`. A
//! faster wrong program proves nothing, so a mismatch aborts the benchmark
//! with the frame that shows it.
//!
//! Frames: well-formed IPv4 and IPv6 TCP frames carrying generated payloads
//! (random text, random bytes, the word "hate" in mixed case at random
//! places, JSON-like brackets and strings; lengths biased to the diodes'
//! boundaries), whose expected verdict is `n == 0 || reference(payload)`;
//! plus packet-model shapes (VLAN, fragments, extension headers, UDP, ARP,
//! minimum-size padding, trailers, truncations, TCP and IP options) whose
//! expected verdict follows the README's packet-model table.

use lagic_frames::{ExtHeader, Frame, IpVersion, VlanTag};
use lagic_loader::{LoadedProgram, Verdict, MAX_TEST_RUN_FRAME};

use crate::rng::Rng;
use crate::BenchError;

/// One frame and, where the packet model fixes it, the verdict it must get.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the frame is (for counterexamples).
    pub what: String,
    /// The frame's bytes.
    pub frame: Vec<u8>,
    /// The verdict the diode must give.
    pub expected: Verdict,
}

/// Lengths near every seed diode's boundaries, and a spread up to the
/// largest payload a test run takes.
const INTERESTING_LENS: [usize; 18] = [
    1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 511, 512, 1399, 1400, 1401, 3000, 3590,
];

fn random_len(rng: &mut Rng) -> usize {
    match rng.below(4) {
        0 => *rng.pick(&INTERESTING_LENS),
        1 => rng.below(40),
        2 => rng.below(600),
        _ => rng.below(3590),
    }
}

const TEXT: &[u8] =
    b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,:;!?-_'\r\n\t";
const JSONISH: &[u8] = b"{}[]\"\\:, abc01{}[]\"";
const WORDS: [&[u8]; 6] = [b"hate", b"HATE", b"HaTe", b"hAtE", b"hat", b"ate"];

/// A generated payload of `len` bytes.
pub fn payload(rng: &mut Rng, len: usize) -> Vec<u8> {
    let style = rng.below(5);
    let mut p: Vec<u8> = (0..len)
        .map(|_| match style {
            0 => rng.below(256) as u8,
            1 | 2 => *rng.pick(TEXT),
            3 => *rng.pick(JSONISH),
            _ => {
                if rng.chance(1, 50) {
                    rng.below(256) as u8
                } else {
                    *rng.pick(TEXT)
                }
            }
        })
        .collect();
    // Sprinkle words and brackets at random places, sometimes at the very end.
    if len >= 4 && rng.chance(1, 2) {
        for _ in 0..=rng.below(3) {
            let word = *rng.pick(&WORDS);
            if word.len() <= len {
                let at = if rng.chance(1, 4) {
                    len - word.len()
                } else {
                    rng.below(len - word.len() + 1)
                };
                p[at..at + word.len()].copy_from_slice(word);
            }
        }
    }
    if len > 0 && rng.chance(1, 3) {
        p[0] = *rng.pick(b"{[ a\x00");
    }
    p
}

fn tcp(payload: &[u8], v6: bool) -> Vec<u8> {
    lagic_frames::tcp_frame(payload, if v6 { IpVersion::V6 } else { IpVersion::V4 })
}

/// `count` well-formed TCP frames plus the packet-model shapes, for diode
/// `reference` (payload -> passes).
pub fn cases(reference: fn(&[u8]) -> bool, count: usize, seed: u64) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    let verdict = |p: &[u8]| Verdict::from_bool(p.is_empty() || reference(p));
    let mut out = Vec::with_capacity(count + 64);
    for i in 0..count {
        let v6 = rng.chance(1, 2);
        let len = random_len(&mut rng);
        let p = payload(&mut rng, len);
        let frame = tcp(&p, v6);
        if frame.len() > MAX_TEST_RUN_FRAME {
            continue;
        }
        out.push(Case {
            what: format!(
                "case {i}: {} TCP, {len}-byte payload",
                if v6 { "IPv6" } else { "IPv4" }
            ),
            expected: verdict(&p),
            frame,
        });
    }
    // Packet-model shapes around a few payloads.
    for p in [
        &b"{\"a\": 1}"[..],
        b"plain text",
        b"\x01\x02",
        b"I hate it",
        b"[[[x]]]",
    ] {
        let pass = verdict(p);
        let shapes: Vec<(String, Vec<u8>, Verdict)> = vec![
            (
                "IPv4 with IP and TCP options".into(),
                Frame::ipv4()
                    .ip_options(&[1, 1, 1, 0])
                    .tcp()
                    .tcp_options(&[2, 4, 5, 0xb4])
                    .payload(p)
                    .build(),
                pass,
            ),
            (
                "IPv4 padded to 60 bytes".into(),
                Frame::ipv4().payload(p).pad_to(60).build(),
                pass,
            ),
            (
                "IPv4 with a 4-byte trailer".into(),
                Frame::ipv4().payload(p).trailer(&[0; 4]).pad_to(80).build(),
                Verdict::Drop,
            ),
            (
                "IPv4 first fragment".into(),
                Frame::ipv4().fragment(0, true).payload(p).build(),
                Verdict::Drop,
            ),
            (
                "IPv4 later fragment".into(),
                Frame::ipv4().fragment(8, false).payload(p).build(),
                Verdict::Drop,
            ),
            (
                "IPv4 in 802.1Q".into(),
                Frame::ipv4().vlan(VlanTag::dot1q(7)).payload(p).build(),
                Verdict::Drop,
            ),
            (
                "IPv6 with hop-by-hop header".into(),
                Frame::ipv6()
                    .ext_header(ExtHeader::hop_by_hop(&[1, 4, 0, 0, 0, 0]))
                    .payload(p)
                    .build(),
                Verdict::Drop,
            ),
            (
                "IPv4 UDP".into(),
                Frame::ipv4().udp().payload(p).build(),
                Verdict::Drop,
            ),
            (
                "IPv6 UDP".into(),
                Frame::ipv6().udp().payload(p).build(),
                Verdict::Drop,
            ),
            (
                "IPv6 ICMPv6 neighbour solicitation, hop limit 255".into(),
                Frame::ipv6()
                    .hop_limit(255)
                    .icmpv6(135, 0)
                    .payload([0u8; 20])
                    .build(),
                Verdict::Pass,
            ),
            (
                "IPv6 ICMPv6 neighbour solicitation, hop limit 64".into(),
                Frame::ipv6()
                    .hop_limit(64)
                    .icmpv6(135, 0)
                    .payload([0u8; 20])
                    .build(),
                Verdict::Drop,
            ),
            (
                "IPv6 ICMPv6 echo".into(),
                Frame::ipv6().icmpv6(128, 0).payload(p).build(),
                Verdict::Drop,
            ),
            ("ARP request".into(), Frame::arp().build(), Verdict::Pass),
            (
                "ARP reply padded to 60".into(),
                Frame::arp().arp_op(2).pad_to(60).build(),
                Verdict::Pass,
            ),
            (
                "ARP operation 3".into(),
                Frame::arp().arp_op(3).build(),
                Verdict::Drop,
            ),
            (
                "ARP with 30 bytes after it".into(),
                Frame::arp().pad_to(72).build(),
                Verdict::Drop,
            ),
            (
                "EtherType 0x88B5".into(),
                Frame::other_ethertype(0x88B5).payload(p).build(),
                Verdict::Drop,
            ),
            (
                "IPv4 total length beyond the frame".into(),
                Frame::ipv4().payload(p).total_len(400).build(),
                Verdict::Drop,
            ),
            (
                "IPv4 IHL 4".into(),
                Frame::ipv4().ihl(4).payload(p).build(),
                Verdict::Drop,
            ),
            (
                "IPv4 version 5".into(),
                Frame::ipv4().ip_version(5).payload(p).build(),
                Verdict::Drop,
            ),
            (
                "TCP data offset 4".into(),
                Frame::ipv4().data_offset(4).payload(p).build(),
                Verdict::Drop,
            ),
            (
                "IPv6 version 4".into(),
                Frame::ipv6().ip_version(4).payload(p).build(),
                Verdict::Drop,
            ),
            ("pure ACK".into(), Frame::ipv4().build(), Verdict::Pass),
            (
                "IPv4 TCP cut inside the TCP header".into(),
                Frame::ipv4().payload(p).truncate(14 + 20 + 10).build(),
                Verdict::Drop,
            ),
        ];
        for (what, frame, expected) in shapes {
            out.push(Case {
                what: format!("{what}, payload {:?}", String::from_utf8_lossy(p)),
                frame,
                expected,
            });
        }
    }
    out
}

/// Runs every case through every program; the first disagreement with the
/// expected verdict is an error naming the program, the frame and both verdicts.
pub fn check(
    diode: &str,
    programs: &[(&str, &LoadedProgram)],
    cases: &[Case],
) -> Result<usize, BenchError> {
    for case in cases {
        for (side, program) in programs {
            let got = program
                .run(&case.frame)
                .map_err(|e| BenchError::Run(format!("{diode} ({side}), {}: {e}", case.what)))?
                .verdict;
            if got != case.expected {
                return Err(BenchError::Mismatch(Box::new(crate::Counterexample {
                    diode: diode.to_string(),
                    side: side.to_string(),
                    what: case.what.clone(),
                    expected: case.expected.to_string(),
                    got: got.to_string(),
                    frame_hex: case.frame.iter().map(|b| format!("{b:02x}")).collect(),
                })));
            }
        }
    }
    Ok(cases.len())
}
