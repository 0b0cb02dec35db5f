//! The packet model (the entry's prologue) in the interpreter: malformed,
//! evasive and well-formed frames, built with the workspace's frame
//! builder, under two opposite policies. Each frame is judged three ways:
//! the expected verdict of the packet model (README's table, written here
//! row by row), the interpreter running the object, and, where BPF is
//! available, the kernel (BPF_PROG_TEST_RUN). All three must agree.
//!
//! The interpreter also runs every cut of each TCP frame (every length
//! short of whole), including the cuts shorter than the kernel's test runs
//! accept; a cut frame's IP length then exceeds the frame: DROP.

mod support;

use lagic_frames::{ExtHeader, Frame, VlanTag, ETH_P_ARP, IPPROTO_FRAGMENT};
use lagic_loader::LoadedProgram;
use lagic_validate::vm::{Skb, Vm};
use lagic_validate::Object;
use predicate_ir::{Action, ByteClass, Mode, Policy, Pred, Spec, Window};

const PASS: u64 = 0;
const DROP: u64 = 2;
const GOOD: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const BAD: &[u8] = b"I hate Mondays";

fn spec(policy: Policy) -> Spec {
    let ci = |b: u8| ByteClass::from_bytes([b, b.to_ascii_uppercase()]);
    Spec {
        name: "packet_model".into(),
        description: String::new(),
        policy,
        mode: Mode::Packet,
        predicate: Pred::And(vec![
            Pred::All {
                window: Window::ALL,
                class: ByteClass::text(),
            },
            Pred::Not(Box::new(Pred::Contains {
                window: Window::ALL,
                pattern: b"hate".iter().map(|&b| ci(b)).collect(),
            })),
        ]),
    }
}

fn opposite() -> Policy {
    Policy {
        arp: Action::Drop,
        ipv6_nd: Action::Drop,
        other_ip: Action::Pass,
        non_ip: Action::Pass,
    }
}

/// (name, frame, verdict under the defaults, under the opposite policy).
fn rows() -> Vec<(String, Vec<u8>, u64, u64)> {
    let both = |name: &str, f: Vec<u8>, v: u64| (name.to_string(), f, v, v);
    let arp_request = Frame::arp().build();
    let nd = |t: u8, len: usize| {
        Frame::ipv6()
            .hop_limit(255)
            .icmpv6(t, 0)
            .payload(vec![0u8; len - 4])
            .build()
    };
    vec![
        both("IPv4 good", Frame::ipv4().payload(GOOD).build(), PASS),
        both("IPv4 bad", Frame::ipv4().payload(BAD).build(), DROP),
        both("IPv6 good", Frame::ipv6().payload(GOOD).build(), PASS),
        both("IPv6 bad", Frame::ipv6().payload(BAD).build(), DROP),
        both("IPv4 empty payload", Frame::ipv4().build(), PASS),
        both("IPv6 empty payload", Frame::ipv6().build(), PASS),
        both(
            "IPv4 options and TCP options",
            Frame::ipv4()
                .ip_options(&[7, 7, 4, 0, 0, 0, 0, 1, 1, 1, 1, 0])
                .tcp_options(&[2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1])
                .payload(GOOD)
                .build(),
            PASS,
        ),
        both(
            "IPv4 fragment",
            Frame::ipv4().fragment(0, true).payload(GOOD).build(),
            DROP,
        ),
        both(
            "IPv4 IHL 4",
            Frame::ipv4().ihl(4).payload(GOOD).build(),
            DROP,
        ),
        both(
            "IPv4 version 6 in an IPv4 frame",
            Frame::ipv4().ip_version(6).payload(GOOD).build(),
            DROP,
        ),
        both(
            "TCP data offset 4",
            Frame::ipv4().data_offset(4).payload(GOOD).build(),
            DROP,
        ),
        both(
            "IPv4 length beyond the frame",
            Frame::ipv4().total_len(2000).payload(GOOD).build(),
            DROP,
        ),
        both(
            "IPv4 length hides a bad tail",
            Frame::ipv4()
                .total_len(40 + GOOD.len() as u16)
                .payload([GOOD, BAD].concat())
                .build(),
            DROP,
        ),
        both(
            "trailer after the IP packet",
            Frame::ipv4().payload(GOOD).trailer(BAD).build(),
            DROP,
        ),
        both(
            "VLAN-tagged",
            Frame::ipv4().vlan(VlanTag::dot1q(5)).payload(GOOD).build(),
            DROP,
        ),
        both(
            "IPv6 fragment header",
            Frame::ipv6()
                .ext_header(ExtHeader::fragment(0, false, 1))
                .payload(GOOD)
                .build(),
            DROP,
        ),
        both(
            "IPv6 next header fragment, no header",
            Frame::ipv6()
                .next_header(IPPROTO_FRAGMENT)
                .payload(GOOD)
                .build(),
            DROP,
        ),
        ("ARP request".into(), arp_request.clone(), PASS, DROP),
        (
            "ARP with a tail".into(),
            Frame::arp().trailer(&[0x41; 40]).build(),
            DROP,
            DROP,
        ),
        ("ND neighbour solicitation".into(), nd(135, 24), PASS, DROP),
        ("ND router solicitation".into(), nd(133, 8), PASS, DROP),
        (
            "ND with hop limit 64".into(),
            Frame::ipv6()
                .hop_limit(64)
                .icmpv6(135, 0)
                .payload(vec![0u8; 20])
                .build(),
            DROP,
            DROP,
        ),
        (
            "ND too short".into(),
            nd(136, 24)[..14 + 40 + 10].to_vec(),
            DROP,
            DROP,
        ),
        (
            "UDP".into(),
            Frame::ipv4().udp().payload(BAD).build(),
            DROP,
            PASS,
        ),
        (
            "ICMPv6 echo".into(),
            Frame::ipv6().icmpv6(128, 0).payload(BAD).build(),
            DROP,
            PASS,
        ),
        (
            "non-IP EtherType".into(),
            Frame::ipv4().ethertype(0x88b5).payload(BAD).build(),
            DROP,
            PASS,
        ),
        (
            "ARP EtherType, garbage body".into(),
            Frame::ipv4().ethertype(ETH_P_ARP).payload(BAD).build(),
            DROP,
            DROP,
        ),
        (
            "ICMPv6 type unknown to ND".into(),
            Frame::ipv6().icmpv6(140, 0).payload(GOOD).build(),
            DROP,
            PASS,
        ),
    ]
}

fn interpret(object: &Object, skb: Skb) -> u64 {
    let mut vm = Vm::new(object);
    lagic_validate::watch::install(&mut vm);
    vm.set_skb(skb);
    vm.run_program()
        .unwrap_or_else(|e| panic!("interpreter: {e}"))
}

#[test]
fn interpreter_kernel_and_packet_model_agree() {
    let kernel = lagic_testkit::require_bpf();
    let mut failures = Vec::new();
    let mut agreed = 0;
    for (policy_name, policy, pick) in [
        ("defaults", Policy::default(), 0),
        ("opposite", opposite(), 1),
    ] {
        let c = support::compile_program(predicate_ir::lower(&spec(policy)).unwrap());
        lagic_validate::validate(&c.program, &c.object, &c.map).expect("validates");
        let object = Object::parse(&c.object).unwrap();
        let loaded =
            kernel.then(|| LoadedProgram::from_object(&c.object).expect("the kernel loads it"));
        for (name, frame, defaults, opposite) in rows() {
            let want = if pick == 0 { defaults } else { opposite };
            let got = interpret(&object, Skb::linear(frame.clone()));
            if got != want {
                failures.push(format!(
                    "{name} [{policy_name}]: interpreter {got}, packet model {want}"
                ));
            }
            if let Some(loaded) = &loaded {
                let k = u64::from(loaded.run_raw(&frame).expect("test run").retval);
                if k != got {
                    failures.push(format!(
                        "{name} [{policy_name}]: kernel {k}, interpreter {got}"
                    ));
                }
            }
            agreed += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{agreed} frames agree (kernel compared: {kernel})");
}

/// Every cut of a TCP frame drops (its IP length then exceeds the frame),
/// including the cuts inside the Ethernet and IP headers that the kernel's
/// test runs refuse.
#[test]
fn every_cut_of_a_tcp_frame_drops() {
    let c = support::compile_program(predicate_ir::lower(&spec(Policy::default())).unwrap());
    let object = Object::parse(&c.object).unwrap();
    for frame in [
        Frame::ipv4().payload(GOOD).build(),
        Frame::ipv6().payload(GOOD).build(),
    ] {
        assert_eq!(interpret(&object, Skb::linear(frame.clone())), PASS);
        for len in 0..frame.len() {
            let got = interpret(&object, Skb::linear(frame[..len].to_vec()));
            assert_eq!(got, DROP, "cut at {len} of {}", frame.len());
        }
    }
}

/// The prologue's other inputs: an offloaded VLAN tag drops, a failing
/// pull drops, and a frame whose payload lies outside the linear area is
/// pulled in and judged (bad payload in the fragments still drops).
#[test]
fn offloaded_tags_pull_failures_and_nonlinear_frames() {
    let c = support::compile_program(predicate_ir::lower(&spec(Policy::default())).unwrap());
    let object = Object::parse(&c.object).unwrap();
    let good = Frame::ipv4().payload(GOOD).build();
    let mut tagged = Skb::linear(good.clone());
    tagged.vlan_present = true;
    assert_eq!(interpret(&object, tagged), DROP);
    let mut failing = Skb::linear(good.clone());
    failing.pull_fails = true;
    assert_eq!(interpret(&object, failing), DROP);
    let mut head_only = Skb::linear(good);
    head_only.linear = 54;
    assert_eq!(interpret(&object, head_only), PASS);
    let mut bad = Skb::linear(Frame::ipv4().payload([GOOD, BAD].concat()).build());
    bad.linear = 60;
    assert_eq!(interpret(&object, bad), DROP);
}

/// A prologue mutant: the neighbour-discovery hop limit changed from 255
/// to 254 in the object bytes. The interpreter's verdict on a valid
/// neighbour solicitation then departs from the packet model's table.
#[test]
fn a_prologue_mutant_is_caught() {
    use lagic_validate::patch;
    let c = support::compile_program(predicate_ir::lower(&spec(Policy::default())).unwrap());
    let entry_len = (0..)
        .take_while(|&s| patch::slot_bytes(&c.object, "classifier", s).is_ok())
        .count();
    // `if r5 != 255 goto drop`: JNE with an immediate.
    let slot = patch::find(&c.object, "classifier", 0..entry_len, 0x55, Some(255))
        .expect("the hop limit test");
    let mut bad = c.object.clone();
    patch::set_imm(&mut bad, "classifier", slot, 254).unwrap();
    let solicitation = Frame::ipv6()
        .hop_limit(255)
        .icmpv6(135, 0)
        .payload(vec![0u8; 20])
        .build();
    assert_eq!(
        interpret(
            &Object::parse(&c.object).unwrap(),
            Skb::linear(solicitation.clone())
        ),
        PASS
    );
    assert_eq!(
        interpret(&Object::parse(&bad).unwrap(), Skb::linear(solicitation)),
        DROP
    );
}
