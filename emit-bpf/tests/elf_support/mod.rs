//! Hand-assembled test modules shared by the ELF tests: an entry that
//! counts `bpf_loop` iterations through a stack slot passed as the loop
//! context, and returns TC_ACT_SHOT when the count is as expected.
#![allow(dead_code)]

use emit_bpf::insn::*;
use emit_bpf::{Function, Module};

/// Iterations of the first loop.
pub const LOOPS_A: i32 = 1000;
/// Iterations of the second loop (two-callback module).
pub const LOOPS_B: i32 = 7;
/// What the second callback adds per iteration.
pub const STEP_B: i32 = 3;

/// A callback `int name(int idx, void *ctx)` adding `step` to `*(u64 *)ctx`.
pub fn adder(name: &str, step: i32) -> Function {
    Function {
        name: name.into(),
        insns: vec![
            Insn::load(Size::DW, R1, R2, 0),
            Insn::alu64_imm(AluOp::Add, R1, step),
            Insn::store_reg(Size::DW, R2, 0, R1),
            Insn::mov64_imm(R0, 0), // 0: continue looping
            Insn::exit(),
        ],
    }
}

/// `bpf_loop(n, callbacks[index], r10 - 8, 0)`.
fn loop_call(n: i32, index: i32) -> Vec<Insn> {
    let mut v = vec![Insn::mov64_imm(R1, n)];
    v.push(Insn::ld_func(R2, index));
    v.extend([
        Insn::mov64_reg(R3, R10),
        Insn::alu64_imm(AluOp::Add, R3, -8),
        Insn::mov64_imm(R4, 0),
        Insn::call_helper(helper::BPF_FUNC_LOOP),
    ]);
    v
}

/// Entry: counter = 0; one `bpf_loop` per (iterations, callback index);
/// return SHOT if counter == expected else OK.
fn counting_entry(name: &str, loops: &[(i32, i32)], expected: i32) -> Function {
    let mut insns = vec![Insn::store_imm(Size::DW, R10, -8, 0)];
    for &(n, index) in loops {
        insns.extend(loop_call(n, index));
    }
    insns.extend([
        Insn::load(Size::DW, R1, R10, -8),
        Insn::mov64_imm(R0, TC_ACT_OK),
        Insn::jmp_imm(JmpCond::Jne, R1, expected, 1),
        Insn::mov64_imm(R0, TC_ACT_SHOT),
        Insn::exit(),
    ]);
    Function {
        name: name.into(),
        insns,
    }
}

pub fn one_callback() -> Module {
    Module {
        entry: counting_entry("count_one", &[(LOOPS_A, 0)], LOOPS_A),
        callbacks: vec![adder("add_one", 1)],
        license: "GPL".into(),
        maps: Vec::new(),
        rodata: Vec::new(),
    }
}

pub fn two_callbacks() -> Module {
    Module {
        entry: counting_entry(
            "count_two",
            &[(LOOPS_A, 0), (LOOPS_B, 1)],
            LOOPS_A + LOOPS_B * STEP_B,
        ),
        callbacks: vec![adder("add_one", 1), adder("add_three", STEP_B)],
        license: "GPL".into(),
        maps: Vec::new(),
        rodata: Vec::new(),
    }
}

/// One callback used by two loops, and an unreferenced second callback.
pub fn shared_callback() -> Module {
    Module {
        entry: counting_entry(
            "count_shared",
            &[(LOOPS_A, 0), (LOOPS_B, 0)],
            LOOPS_A + LOOPS_B,
        ),
        callbacks: vec![adder("add_one", 1), adder("unused", 5)],
        license: "GPL".into(),
        maps: Vec::new(),
        rodata: Vec::new(),
    }
}

/// No callbacks: returns SHOT if the frame is at least 64 bytes long.
pub fn no_callbacks() -> Module {
    Module {
        entry: Function {
            name: "plain".into(),
            insns: vec![
                Insn::load(Size::W, R1, R1, skb::LEN),
                Insn::mov64_imm(R0, TC_ACT_OK),
                Insn::jmp_imm(JmpCond::Jlt, R1, 64, 1),
                Insn::mov64_imm(R0, TC_ACT_SHOT),
                Insn::exit(),
            ],
        },
        callbacks: vec![],
        license: "GPL".into(),
        maps: Vec::new(),
        rodata: Vec::new(),
    }
}
