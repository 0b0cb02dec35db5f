//! The packet-model prologue (docs/design.md, "The packet model").
//!
//! On exit from the prologue's fall-through path: `r6` = skb, `r7` = payload
//! start, `r8` = payload end (from the IP length fields, never the frame
//! length), `r9` = `n` > 0 (in stream mode `n` may be 0: SYN, FIN and pure
//! ACKs are judged by the flow's state too), and the packet pointers (after a full pull) are
//! spilled into the scan context. Every other path jumps to a verdict:
//! policy verdicts for ARP, neighbour discovery, non-TCP and non-IP, PASS for
//! an empty TCP payload, DROP for anything malformed or not inspectable.
//!
//! Invariants the rest of the entry function relies on:
//! `r7 <= r8 <= frame length <= MAX_FRAME`, and `r7` is at most
//! [`MAX_PAYLOAD_START`] (so `data + r7` stays a verifiable packet pointer).

use predicate_ir::{Action, Policy};

use super::asm::{Asm, Label};
use super::scan::ctx;
use super::{frame, Verdicts, MAX_FRAME};
use crate::insn::*;

const ETH_HLEN: i32 = 14;
const ETH_P_IP: i32 = 0x0800;
const ETH_P_IPV6: i32 = 0x86DD;
const ETH_P_ARP: i32 = 0x0806;
const ETH_P_8021Q: i32 = 0x8100;
const ETH_P_8021AD: i32 = 0x88A8;
const ETH_P_QINQ1: i32 = 0x9100;
/// Smallest Ethernet frame without FCS; shorter payloads are padded up to it,
/// and only such frames may carry bytes after the IP packet.
const ETH_ZLEN: i32 = 60;

const IPPROTO_TCP: i32 = 6;
const IPPROTO_ICMPV6: i32 = 58;
/// IPv6 extension headers (RFC 8200, RFC 5533, RFC 7401, RFC 3692 and IPsec):
/// never parsed, always dropped, whatever the `other_ip` policy says.
const IPV6_EXTENSION_HEADERS: [i32; 11] = [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254];
/// ICMPv6 neighbour discovery: router/neighbour solicitation/advertisement, redirect.
const ND_TYPES: (i32, i32) = (133, 137);
/// The fixed part of each ND message (RFC 4861, sections 4.1-4.5), in bytes.
const ND_MIN_LEN: [(i32, i32); 5] = [(133, 8), (134, 16), (135, 24), (136, 24), (137, 40)];
/// ND messages are only valid with this hop limit (RFC 4861).
const ND_HOP_LIMIT: i32 = 255;

/// ARP for Ethernet and IPv4 (RFC 826): hardware type, operations, body length.
const ARPHRD_ETHER: i32 = 1;
const ARPOP_REQUEST: i32 = 1;
const ARPOP_REPLY: i32 = 2;
const ARP_ETH_IPV4_LEN: i32 = 28;

const IPV4_HLEN: i32 = 20;
const IPV6_HLEN: i32 = 40;
const TCP_HLEN: i32 = 20;
/// IPv4 flags/fragment field: reserved bit, MF, fragment offset (DF is allowed).
const IPV4_FRAG_MASK: i32 = 0xBFFF;

/// Largest TCP header offset: Ethernet + IPv4 with 40 bytes of options.
pub(crate) const MAX_L4_OFFSET: i32 = ETH_HLEN + 60;
/// Largest payload start: [`MAX_L4_OFFSET`] plus a TCP header with options.
#[allow(dead_code)]
pub const MAX_PAYLOAD_START: i32 = MAX_L4_OFFSET + 60;

pub(crate) fn emit_prologue(a: &mut Asm, policy: &Policy, v: &Verdicts, stream: bool) {
    let action = |act: Action, drop: Label| match act {
        Action::Pass => v.pass,
        Action::Drop => drop,
    };

    // r6 = skb. A VLAN tag the driver moved into skb metadata is still a
    // VLAN-tagged frame: not parsed, dropped.
    a.emit(Insn::mov64_reg(R6, R1));
    a.emit(Insn::load(Size::W, R2, R6, skb::VLAN_PRESENT));
    a.jmp_imm(JmpCond::Jne, R2, 0, v.vlan);

    // Make the whole frame linear so that direct packet access reaches every
    // payload byte (GSO skbs on veth keep most of their payload in frags).
    a.emit(Insn::load(Size::W, R2, R6, skb::LEN));
    a.jmp_imm(JmpCond::Jgt, R2, MAX_FRAME, v.oversize);
    a.emit(Insn::mov64_reg(R1, R6));
    a.emit(Insn::call_helper(helper::BPF_FUNC_SKB_PULL_DATA));
    a.jmp_imm(JmpCond::Jne, R0, 0, v.drop);

    // r9 = frame length, r2 = data, r3 = data_end (reloaded: the pull
    // invalidated every packet pointer).
    a.emit(Insn::load(Size::W, R9, R6, skb::LEN));
    a.jmp_imm(JmpCond::Jgt, R9, MAX_FRAME, v.oversize);
    a.emit(Insn::load(Size::W, R4, R6, skb::LEN));
    a.emit(Insn::alu64_reg(AluOp::Sub, R4, R9));
    a.emit(Insn::store_reg(Size::DW, R10, frame::OPAQUE_ZERO, R4));
    a.emit(Insn::load(Size::W, R2, R6, skb::DATA));
    a.emit(Insn::load(Size::W, R3, R6, skb::DATA_END));

    // Ethernet II.
    bounds_check(a, ETH_HLEN, v);
    a.emit(Insn::load(Size::H, R4, R2, 12));
    a.emit(Insn::be(R4, SwapWidth::B16));
    let ipv4 = a.label();
    let ipv6 = a.label();
    a.jmp_imm(JmpCond::Jeq, R4, ETH_P_IP, ipv4);
    a.jmp_imm(JmpCond::Jeq, R4, ETH_P_IPV6, ipv6);
    let arp = a.label();
    a.jmp_imm(JmpCond::Jeq, R4, ETH_P_ARP, arp);
    for vlan in [ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ1] {
        a.jmp_imm(JmpCond::Jeq, R4, vlan, v.vlan);
    }
    a.ja(action(policy.non_ip, v.policy_non_ip));

    let tcp = a.label();

    // ARP: under a pass policy, only a well-formed Ethernet/IPv4 request or
    // reply crosses (anything else could carry arbitrary bytes unjudged):
    // the 28-byte body, then nothing but minimum-frame padding.
    a.bind(arp);
    if policy.arp == Action::Pass {
        a.jmp_imm(JmpCond::Jlt, R9, ETH_HLEN + ARP_ETH_IPV4_LEN, v.drop);
        a.jmp_imm(
            JmpCond::Jgt,
            R9,
            ETH_ZLEN.max(ETH_HLEN + ARP_ETH_IPV4_LEN),
            v.drop,
        );
        bounds_check(a, ETH_HLEN + ARP_ETH_IPV4_LEN, v);
        for (offset, size, want) in [
            (0, Size::H, ARPHRD_ETHER),
            (2, Size::H, ETH_P_IP),
            (4, Size::B, 6), // hardware address length
            (5, Size::B, 4), // protocol address length
        ] {
            a.emit(Insn::load(size, R4, R2, (ETH_HLEN + offset) as i16));
            if size == Size::H {
                a.emit(Insn::be(R4, SwapWidth::B16));
            }
            a.jmp_imm(JmpCond::Jne, R4, want, v.drop);
        }
        a.emit(Insn::load(Size::H, R4, R2, (ETH_HLEN + 6) as i16));
        a.emit(Insn::be(R4, SwapWidth::B16));
        a.jmp_imm(JmpCond::Jlt, R4, ARPOP_REQUEST, v.drop);
        a.jmp_imm(JmpCond::Jgt, R4, ARPOP_REPLY, v.drop);
    }
    a.ja(action(policy.arp, v.policy_arp));

    // IPv4: version 4, IHL >= 5, not a fragment, total length consistent.
    a.bind(ipv4);
    bounds_check(a, ETH_HLEN + IPV4_HLEN, v);
    a.emit(Insn::load(Size::B, R4, R2, ETH_HLEN as i16));
    a.emit(Insn::mov64_reg(R5, R4));
    a.emit(Insn::alu64_imm(AluOp::Rsh, R5, 4));
    a.jmp_imm(JmpCond::Jne, R5, 4, v.drop);
    a.emit(Insn::alu64_imm(AluOp::And, R4, 0x0F));
    a.jmp_imm(JmpCond::Jlt, R4, 5, v.drop);
    a.emit(Insn::alu64_imm(AluOp::Lsh, R4, 2)); // r4 = header length in bytes
    a.emit(Insn::load(Size::H, R5, R2, (ETH_HLEN + 6) as i16));
    a.emit(Insn::be(R5, SwapWidth::B16));
    a.emit(Insn::alu64_imm(AluOp::And, R5, IPV4_FRAG_MASK));
    a.jmp_imm(JmpCond::Jne, R5, 0, v.fragment);
    a.emit(Insn::load(Size::H, R8, R2, (ETH_HLEN + 2) as i16));
    a.emit(Insn::be(R8, SwapWidth::B16)); // r8 = total length
    a.jmp_reg(JmpCond::Jlt, R8, R4, v.drop);
    a.emit(Insn::alu64_imm(AluOp::Add, R8, ETH_HLEN)); // r8 = IP end
    frame_consistency(a, v);
    a.emit(Insn::mov64_reg(R7, R4));
    a.emit(Insn::alu64_imm(AluOp::Add, R7, ETH_HLEN)); // r7 = L4 offset
    a.emit(Insn::load(Size::B, R4, R2, (ETH_HLEN + 9) as i16));
    a.jmp_imm(JmpCond::Jeq, R4, IPPROTO_TCP, tcp);
    a.ja(action(policy.other_ip, v.policy_other_ip));

    // IPv6: version 6, payload length consistent, TCP or ND directly after
    // the fixed header; extension headers are not parsed, so they drop.
    a.bind(ipv6);
    bounds_check(a, ETH_HLEN + IPV6_HLEN, v);
    a.emit(Insn::load(Size::B, R4, R2, ETH_HLEN as i16));
    a.emit(Insn::alu64_imm(AluOp::Rsh, R4, 4));
    a.jmp_imm(JmpCond::Jne, R4, 6, v.drop);
    a.emit(Insn::load(Size::H, R8, R2, (ETH_HLEN + 4) as i16));
    a.emit(Insn::be(R8, SwapWidth::B16));
    a.emit(Insn::alu64_imm(AluOp::Add, R8, ETH_HLEN + IPV6_HLEN)); // r8 = IP end
    frame_consistency(a, v);
    a.emit(Insn::mov64_imm(R7, ETH_HLEN + IPV6_HLEN));
    a.emit(Insn::load(Size::B, R4, R2, (ETH_HLEN + 6) as i16));
    a.jmp_imm(JmpCond::Jeq, R4, IPPROTO_TCP, tcp);
    for ext in IPV6_EXTENSION_HEADERS {
        a.jmp_imm(JmpCond::Jeq, R4, ext, v.ipv6_extension);
    }
    let icmpv6 = a.label();
    a.jmp_imm(JmpCond::Jeq, R4, IPPROTO_ICMPV6, icmpv6);
    a.ja(action(policy.other_ip, v.policy_other_ip));

    // ICMPv6: a 4-byte header inside the IP packet; ND types follow the ND
    // policy. Under a pass policy an ND message must be one a router or
    // neighbour could send: hop limit 255 (RFC 4861 drops anything else)
    // and at least the fixed part of its type. Its options are not judged.
    a.bind(icmpv6);
    a.jmp_imm(JmpCond::Jlt, R8, ETH_HLEN + IPV6_HLEN + 4, v.drop);
    bounds_check(a, ETH_HLEN + IPV6_HLEN + 4, v);
    a.emit(Insn::load(Size::B, R4, R2, (ETH_HLEN + IPV6_HLEN) as i16));
    let not_nd = a.label();
    a.jmp_imm(JmpCond::Jlt, R4, ND_TYPES.0, not_nd);
    a.jmp_imm(JmpCond::Jgt, R4, ND_TYPES.1, not_nd);
    if policy.ipv6_nd == Action::Pass {
        a.emit(Insn::load(Size::B, R5, R2, (ETH_HLEN + 7) as i16));
        a.jmp_imm(JmpCond::Jne, R5, ND_HOP_LIMIT, v.drop);
        // r5 = the ICMPv6 message's length.
        a.emit(Insn::mov64_reg(R5, R8));
        a.emit(Insn::alu64_imm(AluOp::Sub, R5, ETH_HLEN + IPV6_HLEN));
        for (nd_type, min_len) in ND_MIN_LEN {
            let other_type = a.label();
            a.jmp_imm(JmpCond::Jne, R4, nd_type, other_type);
            a.jmp_imm(JmpCond::Jlt, R5, min_len, v.drop);
            a.bind(other_type);
        }
    }
    a.ja(action(policy.ipv6_nd, v.policy_ipv6_nd));
    a.bind(not_nd);
    a.ja(action(policy.other_ip, v.policy_other_ip));

    // TCP at offset r7: the header (with options) lies inside the IP packet.
    a.bind(tcp);
    a.emit(Insn::mov64_reg(R4, R7));
    a.emit(Insn::alu64_imm(AluOp::Add, R4, TCP_HLEN));
    a.jmp_reg(JmpCond::Jgt, R4, R8, v.drop);
    a.jmp_imm(JmpCond::Jgt, R7, MAX_L4_OFFSET, v.drop);
    a.emit(Insn::mov64_reg(R5, R2));
    a.emit(Insn::alu64_reg(AluOp::Add, R5, R7)); // r5 = &tcp header
    a.emit(Insn::mov64_reg(R4, R5));
    a.emit(Insn::alu64_imm(AluOp::Add, R4, TCP_HLEN));
    a.jmp_reg(JmpCond::Jgt, R4, R3, v.drop);
    if stream {
        // The stream code reads the TCP header and rewrites the segment
        // into a RST: keep where it is and how long the segment was.
        super::stream::spill_tcp(a);
    }
    a.emit(Insn::load(Size::B, R4, R5, 12));
    a.emit(Insn::alu64_imm(AluOp::Rsh, R4, 4));
    a.jmp_imm(JmpCond::Jlt, R4, 5, v.drop);
    a.emit(Insn::alu64_imm(AluOp::Lsh, R4, 2));
    a.emit(Insn::alu64_reg(AluOp::Add, R7, R4)); // r7 = payload start
    a.jmp_reg(JmpCond::Jgt, R7, R8, v.drop);

    // n == 0 (pure ACK, SYN, FIN) passes; otherwise the predicate decides.
    a.emit(Insn::mov64_reg(R9, R8));
    a.emit(Insn::alu64_reg(AluOp::Sub, R9, R7));
    if !stream {
        a.jmp_imm(JmpCond::Jeq, R9, 0, v.pass);
    }

    // Spill the packet pointers for the callbacks and the byte tests.
    a.emit(Insn::store_reg(Size::DW, R10, frame::CTX + ctx::DATA, R2));
    a.emit(Insn::store_reg(
        Size::DW,
        R10,
        frame::CTX + ctx::DATA_END,
        R3,
    ));
    a.emit(Insn::store_reg(
        Size::H,
        R10,
        frame::CTX + ctx::PAYLOAD_START,
        R7,
    ));
    a.emit(Insn::store_reg(
        Size::H,
        R10,
        frame::CTX + ctx::PAYLOAD_LEN,
        R9,
    ));
    // No pass has stopped early yet (see `ctx::STOP`); from the opaque
    // zero, so the verifier tracks no constant there.
    a.emit(Insn::load(Size::DW, R1, R10, frame::OPAQUE_ZERO));
    a.emit(Insn::store_reg(Size::W, R10, frame::CTX + ctx::STOP, R1));
}

/// Drops unless `len` bytes from the frame start (`r2`) are below `r3`.
fn bounds_check(a: &mut Asm, len: i32, v: &Verdicts) {
    a.emit(Insn::mov64_reg(R4, R2));
    a.emit(Insn::alu64_imm(AluOp::Add, R4, len));
    a.jmp_reg(JmpCond::Jgt, R4, R3, v.drop);
}

/// With the IP end in `r8` and the frame length in `r9`: the IP packet must
/// fit the frame, and bytes after it are allowed only as the padding of a
/// minimum-size Ethernet frame (they are never judged). Any other trailer
/// could carry data past the diode, so it drops.
fn frame_consistency(a: &mut Asm, v: &Verdicts) {
    a.jmp_reg(JmpCond::Jgt, R8, R9, v.drop);
    let consistent = a.label();
    a.jmp_reg(JmpCond::Jeq, R8, R9, consistent);
    a.jmp_imm(JmpCond::Jgt, R9, ETH_ZLEN, v.drop);
    a.bind(consistent);
}
