//! Objects written by lagic's own ELF writer (`emit_bpf::elf::write_object`) load through
//! [`LoadedProgram::from_object`] (Aya, BTF and `bpf_loop` callbacks included) and run in the
//! kernel. The programs are hand-assembled; compiled diodes are tested elsewhere.

use emit_bpf::elf::write_object;
use emit_bpf::insn::{
    helper, skb, AluOp, Insn, JmpCond, Size, R0, R1, R10, R2, R3, R4, R6, TC_ACT_OK, TC_ACT_SHOT,
};
use emit_bpf::{Function, Module};
use lagic_frames::Frame;
use lagic_loader::{LoadError, LoadedProgram, Verdict};
use lagic_testkit::require_bpf;

/// An entry that runs `bpf_loop` `skb->len` times with a callback that stores its index in a
/// stack slot of the caller, and drops the frame when the last index reached `limit` (so
/// when `skb->len > limit`). Storing the index, an unknown scalar to the verifier, rather
/// than incrementing a counter keeps the callback's state imprecise, so it is verified once;
/// a precise counter would make the verifier walk every iteration.
fn counting_module(limit: i32) -> Module {
    let mut entry = vec![
        Insn::mov64_reg(R6, R1),
        Insn::load(Size::W, R2, R6, skb::LEN),
        Insn::store_imm(Size::DW, R10, -8, 0),
        Insn::mov64_reg(R1, R2),
    ];
    entry.push(Insn::ld_func(R2, 0));
    entry.extend([
        Insn::mov64_reg(R3, R10),
        Insn::alu64_imm(AluOp::Add, R3, -8),
        Insn::mov64_imm(R4, 0),
        Insn::call_helper(helper::BPF_FUNC_LOOP),
        Insn::load(Size::DW, R1, R10, -8),
        Insn::mov64_imm(R0, TC_ACT_OK),
        Insn::jmp_imm(JmpCond::Jlt, R1, limit, 1),
        Insn::mov64_imm(R0, TC_ACT_SHOT),
        Insn::exit(),
    ]);
    let callback = vec![
        Insn::store_reg(Size::DW, R2, 0, R1),
        Insn::mov64_imm(R0, 0),
        Insn::exit(),
    ];
    Module {
        entry: Function {
            name: "count_gate".to_owned(),
            insns: entry,
        },
        callbacks: vec![Function {
            name: "count_one".to_owned(),
            insns: callback,
        }],
        license: "GPL".to_owned(),
        maps: Vec::new(),
        rodata: Vec::new(),
    }
}

/// The frame length above which `count_gate` drops.
const LIMIT: i32 = 100;

#[test]
fn written_object_with_a_bpf_loop_callback_loads_and_runs() {
    if !require_bpf() {
        return;
    }
    let elf = write_object(&counting_module(LIMIT)).expect("writing the object");
    let prog = LoadedProgram::from_object(&elf).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(prog.name(), "count_gate");
    for (len, expected) in [
        (60, Verdict::Pass),
        (100, Verdict::Pass),
        (101, Verdict::Drop),
    ] {
        let frame = Frame::ipv4().payload(vec![b'x'; 1]).pad_to(len).build();
        assert_eq!(frame.len(), len);
        assert_eq!(prog.run(&frame).unwrap().verdict, expected, "{len} bytes");
    }
    let big = Frame::ipv6().payload(vec![b'x'; 3000]).build();
    assert_eq!(prog.run(&big).unwrap().verdict, Verdict::Drop);

    // bpf_loop's callback is verified as a whole, not once per iteration. Every reachable
    // instruction is verified at least once (the two-slot ld_imm64 counts once); kernels
    // differ in how often they revisit the callback before its state converges, but walking
    // it per iteration would take at least `LIMIT` visits of it, and the frames above loop
    // up to 3,000 times.
    let stats = prog.stats().unwrap();
    let module = counting_module(LIMIT);
    let (entry, callback) = (module.entry.insns.len(), module.callbacks[0].insns.len());
    let verified = stats.verified_insns as usize;
    assert!(verified >= entry - 1 + callback, "{stats:?}");
    assert!(verified < LIMIT as usize * callback, "{stats:?}");
    eprintln!("count_gate: {stats:?}");
}

#[test]
fn written_object_rejected_by_the_verifier_reports_the_log() {
    if !require_bpf() {
        return;
    }
    // The callback exits with r0 unset: the verifier refuses it.
    let mut module = counting_module(100);
    module.callbacks[0].insns = vec![Insn::exit()];
    let elf = write_object(&module).expect("writing the object");
    match LoadedProgram::from_object(&elf) {
        Err(LoadError::Rejected {
            name, verifier_log, ..
        }) => {
            assert_eq!(name, "count_gate");
            assert!(
                verifier_log.contains("R0 not a scalar value"),
                "log: {verifier_log}"
            );
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// An entry that returns the u32 at offset 4 of its read-only data: the verdict comes from
/// `.rodata` as the loader fills it.
fn rodata_module(verdict: i32) -> Module {
    let mut rodata = vec![0xAA; 4];
    rodata.extend_from_slice(&verdict.to_le_bytes());
    Module {
        entry: Function {
            name: "rodata_gate".to_owned(),
            insns: vec![
                Insn::ld_map_value(R1, 4),
                Insn::load(Size::W, R0, R1, 0),
                Insn::exit(),
            ],
        },
        callbacks: Vec::new(),
        license: "GPL".to_owned(),
        maps: Vec::new(),
        rodata,
    }
}

/// Read-only data (`.rodata`, the tables of table-driven automata) passes the object check as
/// lagic's own, and the loader creates, fills and freezes its map: the program reads the bytes
/// the object holds.
#[test]
fn written_object_with_read_only_data_loads_and_reads_it() {
    for verdict in [TC_ACT_OK, TC_ACT_SHOT] {
        let elf = write_object(&rodata_module(verdict)).expect("writing the object");
        assert_eq!(
            lagic_loader::elf_check::check(&elf),
            Ok(lagic_loader::elf_check::Provenance::Lagic)
        );
        if !require_bpf() {
            return;
        }
        let prog = LoadedProgram::from_object(&elf).unwrap_or_else(|err| panic!("{err}"));
        let frame = Frame::ipv4().payload(vec![b'x'; 10]).build();
        let want = if verdict == TC_ACT_OK {
            Verdict::Pass
        } else {
            Verdict::Drop
        };
        assert_eq!(prog.run(&frame).unwrap().verdict, want);
    }
}
