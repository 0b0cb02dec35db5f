//! A tiny assembler: instructions plus forward/backward labels.
//!
//! Jumps are emitted against [`Label`]s, or copied in already resolved (a
//! finished block reused several times), and patched when the function is
//! finished. `finish` also removes code no path reaches and jumps to the
//! very next instruction: the kernel refuses programs with unreachable
//! instructions, and code generation is simpler when it may leave some.
//! An offset that does not fit the 16-bit jump field is an error, not a
//! silent truncation.

use crate::insn::{Insn, BPF_CALL, BPF_EXIT, BPF_JA, BPF_JMP, BPF_JMP32};

use super::CodegenError;

/// A jump target inside one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// Instructions of one function under construction.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    /// `labels[l]`: slot index the label is bound to.
    labels: Vec<Option<usize>>,
    /// (slot of a jump, label it targets).
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the next emitted slot.
    pub fn bind(&mut self, label: Label) {
        debug_assert!(self.labels[label.0].is_none(), "label bound twice");
        self.labels[label.0] = Some(self.insns.len());
    }

    pub fn emit(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    /// Appends instructions whose jumps are already resolved (relative
    /// offsets that stay inside the appended block).
    pub fn emit_all(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }

    /// `if dst <op> imm goto label`.
    pub fn jmp_imm(&mut self, op: u8, dst: crate::insn::Reg, imm: i32, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::jmp_imm(op, dst, imm, 0));
    }

    /// `if dst <op> src goto label`.
    pub fn jmp_reg(&mut self, op: u8, dst: crate::insn::Reg, src: crate::insn::Reg, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::jmp_reg(op, dst, src, 0));
    }

    /// `goto label`.
    pub fn ja(&mut self, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::ja(0));
    }

    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Resolves every jump, drops unreachable code and jumps to the next
    /// instruction; fails on an unbound label or an offset beyond 16 bits.
    pub fn finish(self) -> Result<Vec<Insn>, CodegenError> {
        self.resolve(false)
    }

    /// Like [`Asm::finish`], for a block that other code is appended after:
    /// jumps may also target the slot just past the block's end.
    pub fn finish_block(self) -> Result<Vec<Insn>, CodegenError> {
        self.resolve(true)
    }

    fn resolve(self, may_jump_past_end: bool) -> Result<Vec<Insn>, CodegenError> {
        let n = self.insns.len();
        // Absolute target of every jump slot.
        let mut target: Vec<Option<usize>> = vec![None; n];
        for (at, insn) in self.insns.iter().enumerate() {
            if is_jump(*insn) {
                let t = at as i64 + 1 + i64::from(insn.off);
                target[at] = Some(t as usize);
            }
        }
        for &(at, label) in &self.fixups {
            let t = self.labels[label.0].ok_or(CodegenError::Internal("unbound label"))?;
            target[at] = Some(t);
        }
        let limit = if may_jump_past_end { n + 1 } else { n };
        if target.iter().flatten().any(|&t| t >= limit) {
            return Err(CodegenError::Internal("jump past the end of a function"));
        }

        let mut keep = reachable(&self.insns, &target);
        // Jumps to the next kept instruction do nothing; dropping one can
        // make another one trivial, so repeat until none is left.
        loop {
            let mut changed = false;
            for at in 0..n {
                if keep[at] && self.insns[at].code == BPF_JMP | BPF_JA {
                    let next = (at + 1..n).find(|&i| keep[i]);
                    if target[at].is_some() && next == target[at] {
                        keep[at] = false;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }

        // New slot index of every old slot (a dropped slot maps to the next kept one).
        let mut new_index = vec![0usize; n + 1];
        let mut count = 0;
        for at in 0..n {
            new_index[at] = count;
            if keep[at] {
                count += 1;
            }
        }
        new_index[n] = count;

        let mut out = Vec::with_capacity(count);
        for at in 0..n {
            if !keep[at] {
                continue;
            }
            let mut insn = self.insns[at];
            if let Some(t) = target[at] {
                let from = new_index[at];
                let off = new_index[t] as i64 - from as i64 - 1;
                insn.off = i16::try_from(off).map_err(|_| CodegenError::JumpTooFar {
                    from,
                    to: new_index[t],
                })?;
            }
            out.push(insn);
        }
        Ok(out)
    }
}

/// A jump with a target (not a call or exit).
fn is_jump(insn: Insn) -> bool {
    let class = insn.class();
    let op = insn.code & 0xf0;
    (class == BPF_JMP || class == BPF_JMP32) && op != BPF_CALL && op != BPF_EXIT
}

/// Slots reachable from slot 0; the second slot of an `ld_imm64` goes with its first.
fn reachable(insns: &[Insn], target: &[Option<usize>]) -> Vec<bool> {
    let n = insns.len();
    let mut seen = vec![false; n];
    let mut work = vec![0usize];
    while let Some(at) = work.pop() {
        if at >= n || seen[at] {
            continue;
        }
        seen[at] = true;
        let insn = insns[at];
        if insn.is_ld_imm64() {
            if at + 1 < n {
                seen[at + 1] = true;
            }
            work.push(at + 2);
            continue;
        }
        let op = insn.code & 0xf0;
        let is_exit = insn.class() == BPF_JMP && op == BPF_EXIT;
        let is_goto = insn.code == BPF_JMP | BPF_JA || insn.code == BPF_JMP32 | BPF_JA;
        if let Some(t) = target[at] {
            work.push(t);
        }
        if !is_exit && !is_goto {
            work.push(at + 1);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{Insn, BPF_JEQ, R0, R1};

    #[test]
    fn resolves_forward_and_backward_jumps() {
        let mut a = Asm::new();
        let top = a.label();
        let end = a.label();
        a.bind(top);
        a.emit(Insn::mov64_imm(R0, 1));
        a.jmp_imm(BPF_JEQ, R1, 7, end);
        a.jmp_imm(BPF_JEQ, R1, 8, top);
        a.emit(Insn::mov64_imm(R0, 2));
        a.bind(end);
        a.emit(Insn::exit());
        let out = a.finish().unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(out[1].off, 2, "forward: to slot 4 from slot 1");
        assert_eq!(out[2].off, -3, "backward: to slot 0 from slot 2");
    }

    #[test]
    fn drops_unreachable_code_and_trivial_jumps() {
        let mut a = Asm::new();
        let next = a.label();
        let far = a.label();
        a.ja(next); // jumps to the next slot: dropped
        a.bind(next);
        a.jmp_imm(BPF_JEQ, R1, 1, far);
        a.emit(Insn::mov64_imm(R0, 0));
        a.emit(Insn::exit());
        a.emit(Insn::mov64_imm(R0, 9)); // unreachable: dropped
        a.bind(far);
        a.emit(Insn::mov64_imm(R0, 2));
        a.emit(Insn::exit());
        let out = a.finish().unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(out[0].off, 2, "the conditional jump lands on `r0 = 2`");
        assert!(!out.contains(&Insn::mov64_imm(R0, 9)));
    }

    #[test]
    fn keeps_resolved_blocks_consistent_when_code_is_dropped() {
        // A pre-resolved block with an internal forward jump.
        let block = [
            Insn::jmp_imm(BPF_JEQ, R1, 3, 1),
            Insn::mov64_imm(R0, 1),
            Insn::mov64_imm(R0, 2),
        ];
        let mut a = Asm::new();
        let skip = a.label();
        a.ja(skip);
        a.emit(Insn::mov64_imm(R0, 7)); // unreachable
        a.bind(skip);
        a.emit_all(block);
        a.emit(Insn::exit());
        let out = a.finish().unwrap();
        assert_eq!(out, vec![block[0], block[1], block[2], Insn::exit()]);
    }

    #[test]
    fn a_jump_beyond_16_bits_is_an_error() {
        let mut a = Asm::new();
        let far = a.label();
        a.jmp_imm(BPF_JEQ, R1, 0, far);
        for _ in 0..40_000 {
            a.emit(Insn::mov64_imm(R0, 0));
        }
        a.bind(far);
        a.emit(Insn::exit());
        assert!(matches!(a.finish(), Err(CodegenError::JumpTooFar { .. })));
    }
}
