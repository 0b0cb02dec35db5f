//! The interpreter's helpers and memory rules on small hand-made objects
//! (written with emit-bpf's ELF writer; the interpreter reads them with its
//! own reader and decoder).

use emit_bpf::insn::{helper, skb, AluOp, Insn, JmpCond, Size, R0, R1, R10, R2, R3, R4, R6, R7};
use emit_bpf::{Function, Module};
use lagic_validate::vm::{Skb, Vm};
use lagic_validate::Object;

fn object(entry: Vec<Insn>, callbacks: Vec<Vec<Insn>>) -> Vec<u8> {
    Module {
        entry: Function {
            name: "probe".into(),
            insns: entry,
        },
        callbacks: callbacks
            .into_iter()
            .enumerate()
            .map(|(i, insns)| Function {
                name: format!("cb{i}"),
                insns,
            })
            .collect(),
        license: "GPL".into(),
        maps: Vec::new(),
        rodata: Vec::new(),
    }
    .write_elf()
    .unwrap()
}

fn run(bytes: &[u8], frame: Vec<u8>) -> Result<u64, lagic_validate::VmError> {
    let object = Object::parse(bytes).unwrap();
    let mut vm = Vm::new(&object);
    vm.set_skb(Skb::linear(frame));
    vm.run_program()
}

/// Entry: count = 0; bpf_loop(nr, cb, &count, flags); return the helper's
/// result if `return_r0`, else the count the callback reached.
fn loop_object(nr: i32, flags: i32, stop_at: i32, return_r0: bool) -> Vec<u8> {
    let mut entry = vec![
        Insn::store_imm(Size::DW, R10, -8, 0),
        Insn::mov64_imm(R1, nr),
        Insn::ld_func(R2, 0),
        Insn::mov64_reg(R3, R10),
        Insn::alu64_imm(AluOp::Add, R3, -8),
        Insn::mov64_imm(R4, flags),
        Insn::call_helper(helper::BPF_FUNC_LOOP),
    ];
    if !return_r0 {
        entry.push(Insn::load(Size::DW, R0, R10, -8));
    }
    entry.push(Insn::exit());
    // count += 1; return count == stop_at.
    let callback = vec![
        Insn::load(Size::DW, R3, R2, 0),
        Insn::alu64_imm(AluOp::Add, R3, 1),
        Insn::store_reg(Size::DW, R2, 0, R3),
        Insn::mov64_imm(R0, 0),
        Insn::jmp_imm(JmpCond::Jne, R3, stop_at, 1),
        Insn::mov64_imm(R0, 1),
        Insn::exit(),
    ];
    object(entry, vec![callback])
}

#[test]
fn bpf_loop_runs_the_count_or_stops_when_the_callback_returns_1() {
    assert_eq!(
        run(&loop_object(10, 0, -1, false), vec![0; 60]).unwrap(),
        10
    );
    assert_eq!(run(&loop_object(10, 0, -1, true), vec![0; 60]).unwrap(), 10);
    // Stopped by the callback at its 4th call: 4 iterations run.
    assert_eq!(run(&loop_object(10, 0, 4, false), vec![0; 60]).unwrap(), 4);
    assert_eq!(run(&loop_object(10, 0, 4, true), vec![0; 60]).unwrap(), 4);
    assert_eq!(run(&loop_object(0, 0, -1, true), vec![0; 60]).unwrap(), 0);
    // Flags must be 0: -EINVAL, and the callback never runs.
    assert_eq!(
        run(&loop_object(10, 1, -1, true), vec![0; 60]).unwrap(),
        (-22i64) as u64
    );
    assert_eq!(run(&loop_object(10, 1, -1, false), vec![0; 60]).unwrap(), 0);
    // More than 2^23 iterations: -E2BIG.
    assert_eq!(
        run(&loop_object(1 << 24, 0, -1, true), vec![0; 60]).unwrap(),
        (-7i64) as u64
    );
}

#[test]
fn an_unknown_helper_is_an_error_naming_it() {
    let bytes = object(
        vec![
            Insn::mov64_imm(R1, 0),
            Insn::call_helper(1),
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ],
        vec![],
    );
    let err = run(&bytes, vec![0; 60]).unwrap_err().to_string();
    assert!(err.contains("helper 1 (bpf_map_lookup_elem)"), "{err}");
    assert!(err.contains("does not emulate"), "{err}");
}

#[test]
fn a_registered_helper_extends_the_table() {
    let bytes = object(vec![Insn::call_helper(1), Insn::exit()], vec![]);
    let object = Object::parse(&bytes).unwrap();
    let mut vm = Vm::new(&object);
    vm.register_helper(1, |_, _| Ok(42));
    vm.set_skb(Skb::linear(vec![0; 60]));
    assert_eq!(vm.run_program().unwrap(), 42);
}

#[test]
fn packet_reads_past_the_linear_data_and_stale_pointers_fail() {
    // Read the byte at data + 59 without a bounds check.
    let read = |off: i16| {
        object(
            vec![
                Insn::load(Size::W, R2, R1, skb::DATA),
                Insn::load(Size::B, R0, R2, off),
                Insn::exit(),
            ],
            vec![],
        )
    };
    assert_eq!(run(&read(59), vec![7; 60]).unwrap(), 7);
    let err = run(&read(60), vec![7; 60]).unwrap_err().to_string();
    assert!(err.contains("packet offset 60"), "{err}");

    // A pointer from before bpf_skb_pull_data is invalid after it.
    let stale = object(
        vec![
            Insn::mov64_reg(R6, R1),
            Insn::load(Size::W, R3, R6, skb::DATA),
            Insn::mov64_imm(R2, 0),
            Insn::call_helper(helper::BPF_FUNC_SKB_PULL_DATA),
            Insn::load(Size::B, R0, R3, 0),
            Insn::exit(),
        ],
        vec![],
    );
    // R3 is a caller-saved register: a call empties it.
    let err = run(&stale, vec![7; 60]).unwrap_err().to_string();
    assert!(err.contains("r3, which holds no value"), "{err}");
    // Kept in a callee-saved register, the old pointer points nowhere.
    let stale = object(
        vec![
            Insn::mov64_reg(R6, R1),
            Insn::load(Size::W, R7, R6, skb::DATA),
            Insn::mov64_reg(R1, R6),
            Insn::mov64_imm(R2, 0),
            Insn::call_helper(helper::BPF_FUNC_SKB_PULL_DATA),
            Insn::load(Size::B, R0, R7, 0),
            Insn::exit(),
        ],
        vec![],
    );
    let err = run(&stale, vec![7; 60]).unwrap_err().to_string();
    assert!(err.contains("stale packet pointer"), "{err}");
}

#[test]
fn reading_undefined_registers_or_unwritten_stack_fails() {
    let bytes = object(vec![Insn::mov64_reg(R0, R4), Insn::exit()], vec![]);
    let err = run(&bytes, vec![0; 60]).unwrap_err().to_string();
    assert!(err.contains("r4, which holds no value"), "{err}");
    let bytes = object(
        vec![Insn::load(Size::DW, R0, R10, -16), Insn::exit()],
        vec![],
    );
    let err = run(&bytes, vec![0; 60]).unwrap_err().to_string();
    assert!(err.contains("never written"), "{err}");
    let bytes = object(
        vec![
            Insn::store_imm(Size::W, R1, 0, 0),
            Insn::mov64_imm(R0, 0),
            Insn::exit(),
        ],
        vec![],
    );
    let err = run(&bytes, vec![0; 60]).unwrap_err().to_string();
    assert!(err.contains("writes the __sk_buff context"), "{err}");
}

/// Map references: an `ld_imm64` with a pseudo source is an error until an
/// emulation is registered, and then loads what it gives.
#[test]
fn map_references_need_a_registered_emulation() {
    let bytes = object(vec![Insn::ld_imm64(R0, 7), Insn::exit()], vec![]);
    // Make the constant a map-by-fd reference (src = 1) in the object bytes.
    let mut bytes = bytes;
    let at = lagic_validate::patch::slot_offset(&bytes, "classifier", 0).unwrap();
    bytes[at + 1] |= 1 << 4;
    let err = run(&bytes, vec![0; 60]).unwrap_err().to_string();
    assert!(
        err.contains("src 1 (a map reference) is not emulated"),
        "{err}"
    );
    let object = Object::parse(&bytes).unwrap();
    let mut vm = Vm::new(&object);
    vm.register_pseudo_load(1, |_, imm, _| Ok(0x5000_0000 + imm as u64));
    vm.set_skb(Skb::linear(vec![0; 60]));
    assert_eq!(vm.run_program().unwrap(), 0x5000_0007);
}

/// An object whose entry references the watch maps (index 0: counters,
/// 1: events), named as the emitter names them.
fn watch_object(entry: Vec<Insn>) -> Vec<u8> {
    use emit_bpf::decision::{COUNTERS_MAP, COUNTER_SLOTS, EVENTS_MAP, EVENTS_RING_SIZE};
    // `enum bpf_map_type`.
    const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
    const BPF_MAP_TYPE_RINGBUF: u32 = 27;
    Module {
        entry: Function {
            name: "probe".into(),
            insns: entry,
        },
        callbacks: vec![],
        license: "GPL".into(),
        maps: vec![
            emit_bpf::MapDef {
                name: COUNTERS_MAP.into(),
                map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
                key_size: 4,
                value_size: 8,
                max_entries: COUNTER_SLOTS,
            },
            emit_bpf::MapDef {
                name: EVENTS_MAP.into(),
                map_type: BPF_MAP_TYPE_RINGBUF,
                key_size: 0,
                value_size: 0,
                max_entries: EVENTS_RING_SIZE,
            },
        ],
        rodata: Vec::new(),
    }
    .write_elf()
    .unwrap()
}

fn run_watch(bytes: &[u8], ring_full: bool) -> Result<(u64, u64), lagic_validate::VmError> {
    let object = Object::parse(bytes).unwrap();
    let mut vm = Vm::new(&object);
    lagic_validate::watch::install(&mut vm);
    vm.watch.ring_full = ring_full;
    vm.set_skb(Skb::linear(vec![0; 60]));
    let r0 = vm.run_program()?;
    Ok((r0, vm.watch.submitted))
}

/// `bpf_map_lookup_elem` on the per-CPU counters: this CPU's value for a
/// key below the slot count, NULL for any other key.
#[test]
fn counter_lookups_return_a_value_or_null_past_the_array() {
    let lookup = |key: i32| {
        watch_object(vec![
            Insn::ld_map(R1, 0),
            Insn::store_imm(Size::W, R10, -4, key),
            Insn::mov64_reg(R2, R10),
            Insn::alu64_imm(AluOp::Add, R2, -4),
            Insn::call_helper(helper::BPF_FUNC_MAP_LOOKUP_ELEM),
            Insn::exit(),
        ])
    };
    let base = lagic_validate::watch::COUNTERS_BASE;
    assert_eq!(run_watch(&lookup(3), false).unwrap().0, base + 24);
    let slots = emit_bpf::decision::COUNTER_SLOTS as i32;
    assert_eq!(run_watch(&lookup(slots), false).unwrap().0, 0);
    assert_eq!(run_watch(&lookup(-1), false).unwrap().0, 0);
}

/// `bpf_ringbuf_reserve` gives a record or NULL (ring full); only the
/// outstanding record may be submitted.
#[test]
fn ring_buffer_reserve_may_fail_and_only_the_record_is_submitted() {
    let program = |submitted: bool| {
        let mut v = vec![
            Insn::ld_map(R1, 1),
            Insn::mov64_imm(R2, 64),
            Insn::mov64_imm(R3, 0),
            Insn::call_helper(helper::BPF_FUNC_RINGBUF_RESERVE),
            Insn::jmp_imm(JmpCond::Jne, R0, 0, 2),
            Insn::mov64_imm(R0, 7),
            Insn::exit(),
            Insn::store_imm(Size::W, R0, 60, 1),
        ];
        v.push(if submitted {
            Insn::mov64_reg(R1, R0)
        } else {
            Insn::mov64_reg(R1, R10) // not the record
        });
        v.extend([
            Insn::mov64_imm(R2, 0),
            Insn::call_helper(helper::BPF_FUNC_RINGBUF_SUBMIT),
            Insn::mov64_imm(R0, 9),
            Insn::exit(),
        ]);
        watch_object(v)
    };
    assert_eq!(run_watch(&program(true), false).unwrap(), (9, 1));
    assert_eq!(run_watch(&program(true), true).unwrap(), (7, 0));
    let err = run_watch(&program(false), false).unwrap_err().to_string();
    assert!(err.contains("not an outstanding record"), "{err}");
}
