//! The stream diode's flow table in the kernel: it never evicts, so the
//! enclave cannot make the diode forget a flow (and the old range a new
//! connection on its 4-tuple must keep out of) by opening many made-up
//! flows; a full table refuses new flows, counted as `table_full`, and
//! keeps serving the flows it holds (docs/stream.md, "The flow table").
//!
//! Each test loads its own diode (so its own, empty table) and fills it
//! with [`emit_bpf::STREAM_FLOWS_MAX`] SYNs through `BPF_PROG_TEST_RUN`,
//! one run per SYN, reading the table from user space
//! ([`DiodeMaps::flow`], [`DiodeMaps::flow_table`]).

use emit_bpf::decision::Reason;
use emit_bpf::{stream_flow_key as key, stream_flow_value as value, STREAM_FLOWS_MAX};
use lagic_frames::{tcp_flags, Frame};
use lagic_loader::decisions::DiodeMaps;
use lagic_loader::LoadedProgram;
use lagic_testkit::require_bpf;

use lagic_tests::stream::{load_stream, parse_reset, stream_spec, Flow};

/// Offset of the TCP header in the IPv4 frames below (Ethernet + 20-byte IP).
const TCP: usize = 34;
/// Server port of every flow (the enclave's side, the judged direction's source).
const PORT: u16 = 8080;

/// What the diode did with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pass,
    Drop,
    /// Rewritten into a valid RST at this sequence number.
    Reset(u32),
}

/// A flow from the enclave: its address and client port pick the 4-tuple.
#[derive(Debug, Clone, Copy)]
struct Tuple {
    src: [u8; 4],
    client_port: u16,
}

impl Tuple {
    fn frame(self, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let psh = if payload.is_empty() {
            0
        } else {
            tcp_flags::PSH
        };
        Frame::ipv4()
            .src(self.src)
            .tcp()
            .ports(PORT, self.client_port)
            .seq(seq)
            .ack(1)
            .tcp_flags(flags | psh)
            .payload(payload)
            .build()
    }

    /// The flow key the diode stores this 4-tuple under (module docs of
    /// `emit-bpf/src/codegen/stream.rs`), taken from a frame's headers.
    fn key(self) -> Vec<u8> {
        let f = self.frame(0, tcp_flags::SYN, b"");
        let mut k = vec![0u8; key::SIZE as usize];
        k[key::FAMILY as usize] = 4;
        let (ports, saddr, daddr) = (
            key::PORTS as usize,
            key::SADDR as usize,
            key::DADDR as usize,
        );
        k[ports..ports + 4].copy_from_slice(&f[TCP..TCP + 4]);
        k[saddr..saddr + 4].copy_from_slice(&f[26..30]);
        k[daddr..daddr + 4].copy_from_slice(&f[30..34]);
        k
    }
}

/// The `i`-th made-up flow of a flood (addresses 10.100.0.0 and up, never
/// those of the flows under test).
fn made_up(i: u32) -> Tuple {
    Tuple {
        src: [10, 100 + (i >> 16) as u8, (i >> 8) as u8, i as u8],
        client_port: 50_000,
    }
}

fn run(prog: &LoadedProgram, frame: &[u8]) -> Outcome {
    let (retval, out) = prog.run_out(frame).unwrap();
    match retval {
        2 => Outcome::Drop,
        // A RST the diode forwards is one it wrote (a sender's RST latches
        // the flow and is rewritten, possibly into the same bytes).
        0 if out == frame && frame[TCP + 13] & tcp_flags::RST == 0 => Outcome::Pass,
        0 => {
            let flow = Flow {
                port: 0,
                v6: false,
                net: 0,
            };
            Outcome::Reset(parse_reset(flow, frame, TCP, &out))
        }
        other => panic!("return value {other}"),
    }
}

fn segment(prog: &LoadedProgram, t: Tuple, seq: u32, flags: u8, payload: &[u8]) -> Outcome {
    run(prog, &t.frame(seq, flags, payload))
}

fn syn(prog: &LoadedProgram, t: Tuple, isn: u32) -> Outcome {
    segment(prog, t, isn, tcp_flags::SYN | tcp_flags::ACK, b"")
}

fn data(prog: &LoadedProgram, t: Tuple, seq: u32, payload: &[u8]) -> Outcome {
    segment(prog, t, seq, tcp_flags::ACK, payload)
}

fn word(v: &[u8], at: i16) -> u32 {
    let at = at as usize;
    u32::from_le_bytes(v[at..at + 4].try_into().unwrap())
}

fn status(v: &[u8]) -> u32 {
    word(v, value::STATUS)
}

/// SYNs of made-up flows `from..to`, each stored one followed by a pure
/// ACK (so that, in an LRU map, the flows under test are not favoured by
/// recent use): how many SYNs passed (stored) and how many were reset
/// (refused). Nothing else may happen to a SYN.
fn flood(prog: &LoadedProgram, from: u32, to: u32) -> (u32, u32) {
    let (mut stored, mut refused) = (0, 0);
    for i in from..to {
        let t = made_up(i);
        let frame = t.frame(7_000, tcp_flags::SYN | tcp_flags::ACK, b"");
        let (retval, out) = prog.run_out(&frame).unwrap();
        assert_eq!(retval, 0, "SYN {i} dropped, neither stored nor refused");
        if out == frame {
            stored += 1;
            assert_eq!(data(prog, t, 7_001, b""), Outcome::Pass);
        } else {
            // Not `parse_reset`: over this many addresses, a few SYNs'
            // checksums read as offloaded ones, and their RSTs keep that
            // form (docs/stream.md, "The RST").
            let th = &out[TCP..];
            assert_eq!(out.len(), TCP + 20);
            assert_eq!(th[13], tcp_flags::RST | tcp_flags::ACK, "SYN {i}");
            assert_eq!(&th[4..8], &7_000u32.to_be_bytes(), "at the SYN's number");
            refused += 1;
        }
    }
    (stored, refused)
}

const ISN: u32 = 1000;

/// The attack of docs/stream.md ("The flow table"): flow F passes "I ha",
/// then "ir" that the receiver never gets (a hole: lost or discarded
/// behind the diode) and a RST from the sender that the receiver never
/// gets either, so the receiver still waits at F's stream offset 4. The
/// enclave then floods the diode with SYNs of made-up flows, three times
/// what the table holds, and opens a new connection on F's 4-tuple whose
/// first byte lands on that offset, carrying "te". Were F's entry evicted,
/// the new flow would start without F's old range and "te" would pass, and
/// the receiver would read "I hate": with the LRU map lagic had before,
/// this flood (with 1,000 more flows) evicted F here and both the SYN and
/// "te" passed. The
/// entry stays, so "te" never passes.
#[test]
fn a_flood_of_made_up_flows_cannot_evict_a_flow_to_reopen_its_sequence_numbers() {
    if !require_bpf() {
        return;
    }
    let prog = load_stream(&stream_spec("hateless"));
    let maps = DiodeMaps::for_program(prog.fd()).unwrap();
    let f = Tuple {
        src: [10, 200, 0, 1],
        client_port: 40_000,
    };
    assert_eq!(syn(&prog, f, ISN), Outcome::Pass);
    assert_eq!(data(&prog, f, ISN + 1, b"I ha"), Outcome::Pass);
    assert_eq!(data(&prog, f, ISN + 5, b"ir"), Outcome::Pass); // lost behind
    assert_eq!(
        segment(&prog, f, ISN + 7, tcp_flags::RST | tcp_flags::ACK, b""),
        Outcome::Reset(ISN + 7)
    ); // lost behind too
    let before = maps.flow(&f.key()).unwrap().expect("F has an entry");
    assert_ne!(status(&before) & value::LATCHED as u32, 0, "F is latched");

    let sent = 3 * STREAM_FLOWS_MAX;
    let (stored, refused) = flood(&prog, 0, sent);
    assert_eq!(
        (stored, refused),
        (STREAM_FLOWS_MAX - 1, sent - (STREAM_FLOWS_MAX - 1)),
        "the table holds {STREAM_FLOWS_MAX} flows, F among them; the rest are refused"
    );
    let table = maps.flow_table().unwrap().unwrap();
    assert_eq!(
        (table.flows, table.capacity),
        (u64::from(STREAM_FLOWS_MAX), STREAM_FLOWS_MAX)
    );
    assert_eq!(
        maps.counters().unwrap().get(Reason::TableFull),
        u64::from(refused)
    );

    // The new connection, its first byte at F's offset 4 (ISN + 5).
    assert_eq!(
        syn(&prog, f, ISN + 4),
        Outcome::Reset(ISN + 7),
        "a SYN inside F's old range must be refused (a RST on the latched flow)"
    );
    assert_eq!(
        data(&prog, f, ISN + 5, b"te"),
        Outcome::Reset(ISN + 7),
        "\"te\" must not pass: the receiver would read \"I hate\""
    );
    assert_eq!(
        maps.flow(&f.key()).unwrap().as_deref(),
        Some(before.as_slice()),
        "F's entry is still in the table, unchanged"
    );
}

/// A full table: a new honest flow is refused (its SYN becomes a RST, as
/// does each later segment of it, and a flow seen mid-connection is reset
/// the same way), counted as `table_full` and recorded as such; the flows
/// the table holds keep working, and a new connection on the 4-tuple of
/// an ended flow replaces its entry in place.
#[test]
fn a_full_table_refuses_new_flows_and_keeps_serving_the_flows_it_holds() {
    if !require_bpf() {
        return;
    }
    let prog = load_stream(&stream_spec("hateless"));
    let mut maps = DiodeMaps::for_program(prog.fd()).unwrap();
    let open = Tuple {
        src: [10, 201, 0, 1],
        client_port: 40_001,
    };
    let ended = Tuple {
        src: [10, 201, 0, 2],
        client_port: 40_002,
    };
    assert_eq!(syn(&prog, open, ISN), Outcome::Pass);
    assert_eq!(data(&prog, open, ISN + 1, b"I ha"), Outcome::Pass);
    assert_eq!(syn(&prog, ended, ISN), Outcome::Pass);
    assert_eq!(
        segment(
            &prog,
            ended,
            ISN + 1,
            tcp_flags::FIN | tcp_flags::ACK,
            b"hello"
        ),
        Outcome::Pass
    );

    let (stored, refused) = flood(&prog, 0, STREAM_FLOWS_MAX - 2);
    assert_eq!((stored, refused), (STREAM_FLOWS_MAX - 2, 0));
    let table = maps.flow_table().unwrap().unwrap();
    assert_eq!(table.flows, u64::from(STREAM_FLOWS_MAX), "full");
    let counted = |maps: &DiodeMaps| maps.counters().unwrap().get(Reason::TableFull);
    assert_eq!(counted(&maps), 0);

    // A new honest flow: refused at its SYN, and at every later segment.
    let new = Tuple {
        src: [10, 201, 0, 3],
        client_port: 40_003,
    };
    assert_eq!(syn(&prog, new, 5_000), Outcome::Reset(5_000));
    assert_eq!(data(&prog, new, 5_001, b"hello"), Outcome::Reset(5_001));
    assert_eq!(maps.flow(&new.key()).unwrap(), None, "nothing stored");
    // A flow seen mid-connection: reset, its latch not stored.
    let mid = Tuple {
        src: [10, 201, 0, 4],
        client_port: 40_004,
    };
    assert_eq!(data(&prog, mid, 9_000, b"mid"), Outcome::Reset(9_000));
    assert_eq!(maps.flow(&mid.key()).unwrap(), None);
    assert_eq!(counted(&maps), 3);

    // The flows held keep working: the open one goes on, judged across
    // segments as ever ("I happy" passes, "hate" after it is reset).
    assert_eq!(data(&prog, open, ISN + 5, b"ppy"), Outcome::Pass);
    assert_eq!(data(&prog, open, ISN + 8, b"hate"), Outcome::Reset(ISN + 8));
    let latched = maps.flow(&open.key()).unwrap().unwrap();
    assert_eq!(
        (status(&latched), word(&latched, value::BUSY)),
        (value::LATCHED as u32, 0),
        "latched by its judge, which released the judging flag"
    );
    // Latched now: a new connection on its 4-tuple replaces it in place too.
    let isn3 = ISN + 2_000_000;
    assert_eq!(syn(&prog, open, isn3), Outcome::Pass);
    let fresh = maps.flow(&open.key()).unwrap().unwrap();
    assert_eq!(
        [
            status(&fresh),
            word(&fresh, value::ISN),
            word(&fresh, value::NEXT),
            word(&fresh, value::BUSY)
        ],
        [value::OLD_RANGE as u32, isn3, isn3 + 1, 0],
        "a fresh flow written over the latched one, the flag released"
    );
    assert_eq!(data(&prog, open, isn3 + 1, b"te"), Outcome::Pass);
    // The ended one's 4-tuple takes a new connection in place as well.
    let isn2 = ISN + 1_000_000;
    assert_eq!(syn(&prog, ended, isn2), Outcome::Pass);
    let fresh = maps
        .flow(&ended.key())
        .unwrap()
        .expect("replaced, not removed");
    assert_eq!(status(&fresh), value::OLD_RANGE as u32, "a fresh flow");
    assert_eq!(data(&prog, ended, isn2 + 1, b"te you"), Outcome::Pass);
    assert_eq!(
        segment(&prog, ended, isn2 + 7, tcp_flags::FIN | tcp_flags::ACK, b""),
        Outcome::Pass
    );
    assert_eq!(counted(&maps), 3, "nothing else refused");
    assert_eq!(
        maps.flow_table().unwrap().unwrap().flows,
        u64::from(STREAM_FLOWS_MAX)
    );

    // The refusals are recorded as drop events of their reason.
    let mut full_events = 0;
    while let Some(event) = maps.next_event() {
        if event.unwrap().reason == Reason::TableFull {
            full_events += 1;
        }
    }
    assert_eq!(full_events, 3);
}

/// `Options::flows` (`lagic compile --flows`) sizes the table: a diode
/// built for 64 flows stores 64 and refuses the 65th, counted.
#[test]
fn the_table_holds_as_many_flows_as_it_was_built_for() {
    if !require_bpf() {
        return;
    }
    let program = predicate_ir::lower_stream(&stream_spec("hateless")).unwrap();
    let options = emit_bpf::Options {
        flows: 64,
        ..emit_bpf::Options::default()
    };
    let object = emit_bpf::compile_stream_object_with(&program, &options).unwrap();
    let prog = LoadedProgram::from_object(&object).unwrap();
    let maps = DiodeMaps::for_program(prog.fd()).unwrap();
    assert_eq!(flood(&prog, 0, 100), (64, 36));
    let table = maps.flow_table().unwrap().unwrap();
    assert_eq!((table.flows, table.capacity), (64, 64));
    assert_eq!(maps.counters().unwrap().get(Reason::TableFull), 36);
}
