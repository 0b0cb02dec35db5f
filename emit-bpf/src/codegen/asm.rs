//! A tiny assembler: instructions plus forward/backward labels.
//!
//! Jumps are emitted against [`Label`]s, or copied in already resolved (a
//! finished block reused several times), and patched when the function is
//! finished. `finish` also removes code no path reaches and jumps to the
//! very next instruction: the kernel refuses programs with unreachable
//! instructions, and code generation is simpler when it may leave some.
//! An offset that does not fit the 16-bit jump field is an error, not a
//! silent truncation.

use crate::insn::{Insn, JmpCond, Register};

use super::CodegenError;

/// A jump target inside one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// Instructions of one function under construction.
#[derive(Debug, Default)]
pub(crate) struct Asm {
    insns: Vec<Insn>,
    /// `labels[l]`: instruction index the label is bound to.
    labels: Vec<Option<usize>>,
    /// (index of a jump, label it targets).
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub(crate) fn new() -> Asm {
        Asm::default()
    }

    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the next emitted instruction.
    pub(crate) fn bind(&mut self, label: Label) {
        debug_assert!(self.labels[label.0].is_none(), "label bound twice");
        self.labels[label.0] = Some(self.insns.len());
    }

    pub(crate) fn emit(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    /// Appends instructions whose jumps are already resolved (relative
    /// offsets that stay inside the appended block).
    #[cfg(test)]
    pub(crate) fn emit_all(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }

    /// `if dst <cond> imm goto label`.
    pub(crate) fn jmp_imm(&mut self, cond: JmpCond, dst: Register, imm: i32, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::jmp_imm(cond, dst, imm, 0));
    }

    /// `if dst <cond> src goto label`.
    pub(crate) fn jmp_reg(&mut self, cond: JmpCond, dst: Register, src: Register, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::jmp_reg(cond, dst, src, 0));
    }

    /// `goto label`.
    pub(crate) fn ja(&mut self, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::ja(0));
    }

    /// Instructions emitted so far.
    pub(crate) fn len(&self) -> usize {
        self.insns.len()
    }

    /// Resolves every jump, drops unreachable code and jumps to the next
    /// instruction; fails on an unbound label or an offset beyond 16 bits.
    #[cfg(test)]
    pub(crate) fn finish(self) -> Result<Vec<Insn>, CodegenError> {
        Ok(self.finish_marked(&[])?.0)
    }

    /// [`Asm::finish`], also giving the final slot of each label in
    /// `marks` (a label on dropped code maps to the next kept instruction).
    pub(crate) fn finish_marked(
        self,
        marks: &[Label],
    ) -> Result<(Vec<Insn>, Vec<usize>), CodegenError> {
        let n = self.insns.len();
        // Slot of every instruction (an ld_imm64 takes two), and the end.
        let mut slot_of = Vec::with_capacity(n + 1);
        let mut slots = 0usize;
        for insn in &self.insns {
            slot_of.push(slots);
            slots += insn.slots();
        }
        slot_of.push(slots);

        // Target instruction of every jump: resolved offsets count slots
        // and must land on an instruction (or the end).
        let mut target: Vec<Option<usize>> = vec![None; n];
        for (at, insn) in self.insns.iter().enumerate() {
            if let Some(off) = insn.jump_offset() {
                let slot = slot_of[at] as i64 + 1 + i64::from(off);
                let index = usize::try_from(slot)
                    .ok()
                    .and_then(|s| slot_of.binary_search(&s).ok())
                    .ok_or(CodegenError::Internal(
                        "jump into the middle of an instruction or before the function",
                    ))?;
                target[at] = Some(index);
            }
        }
        for &(at, label) in &self.fixups {
            let t = self.labels[label.0].ok_or(CodegenError::Internal("unbound label"))?;
            target[at] = Some(t);
        }
        if target.iter().flatten().any(|&t| t >= n) {
            return Err(CodegenError::Internal("jump past the end of a function"));
        }

        let mut keep = reachable(&self.insns, &target);
        // Jumps to the next kept instruction do nothing; dropping one can
        // make another one trivial, so repeat until none is left.
        loop {
            let mut changed = false;
            for at in 0..n {
                if keep[at] && matches!(self.insns[at], Insn::Ja { .. }) {
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

        // New slot of every old instruction (a dropped one maps to the next
        // kept one), and of the end.
        let mut new_slot = vec![0usize; n + 1];
        let mut count = 0;
        for at in 0..n {
            new_slot[at] = count;
            if keep[at] {
                count += self.insns[at].slots();
            }
        }
        new_slot[n] = count;

        let mut out = Vec::with_capacity(n);
        for at in 0..n {
            if !keep[at] {
                continue;
            }
            let mut insn = self.insns[at];
            if let Some(t) = target[at] {
                let from = new_slot[at];
                let off = new_slot[t] as i64 - from as i64 - 1;
                insn = i32::try_from(off)
                    .ok()
                    .and_then(|off| insn.with_jump_offset(off))
                    .ok_or(CodegenError::JumpTooFar {
                        path: "$".to_string(),
                        from,
                        to: new_slot[t],
                    })?;
            }
            out.push(insn);
        }
        let marked = marks
            .iter()
            .map(|m| {
                self.labels[m.0]
                    .map(|at| new_slot[at])
                    .ok_or(CodegenError::Internal("unbound mark"))
            })
            .collect::<Result<Vec<usize>, CodegenError>>()?;
        Ok((out, marked))
    }
}

/// Instructions reachable from the first one.
fn reachable(insns: &[Insn], target: &[Option<usize>]) -> Vec<bool> {
    let n = insns.len();
    let mut seen = vec![false; n];
    let mut work = vec![0usize];
    while let Some(at) = work.pop() {
        if at >= n || seen[at] {
            continue;
        }
        seen[at] = true;
        if let Some(t) = target[at] {
            work.push(t);
        }
        if insns[at].falls_through() {
            work.push(at + 1);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{Insn, JmpCond::Jeq, R0, R1, R2};

    #[test]
    fn resolves_forward_and_backward_jumps() {
        let mut a = Asm::new();
        let top = a.label();
        let end = a.label();
        a.bind(top);
        a.emit(Insn::mov64_imm(R0, 1));
        a.jmp_imm(Jeq, R1, 7, end);
        a.jmp_imm(Jeq, R1, 8, top);
        a.emit(Insn::mov64_imm(R0, 2));
        a.bind(end);
        a.emit(Insn::exit());
        let out = a.finish().unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(
            out[1].jump_offset(),
            Some(2),
            "forward: to slot 4 from slot 1"
        );
        assert_eq!(
            out[2].jump_offset(),
            Some(-3),
            "backward: to slot 0 from slot 2"
        );
    }

    #[test]
    fn drops_unreachable_code_and_trivial_jumps() {
        let mut a = Asm::new();
        let next = a.label();
        let far = a.label();
        a.ja(next); // jumps to the next slot: dropped
        a.bind(next);
        a.jmp_imm(Jeq, R1, 1, far);
        a.emit(Insn::mov64_imm(R0, 0));
        a.emit(Insn::exit());
        a.emit(Insn::mov64_imm(R0, 9)); // unreachable: dropped
        a.bind(far);
        a.emit(Insn::mov64_imm(R0, 2));
        a.emit(Insn::exit());
        let out = a.finish().unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(
            out[0].jump_offset(),
            Some(2),
            "the conditional jump lands on `r0 = 2`"
        );
        assert!(!out.contains(&Insn::mov64_imm(R0, 9)));
    }

    #[test]
    fn keeps_resolved_blocks_consistent_when_code_is_dropped() {
        // A pre-resolved block with an internal forward jump.
        let block = [
            Insn::jmp_imm(Jeq, R1, 3, 1),
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
    fn offsets_count_the_two_slots_of_ld_imm64() {
        // A resolved block jumping over an ld_imm64 (1 instruction, 2 slots).
        let block = [
            Insn::jmp_imm(Jeq, R1, 0, 2),
            Insn::ld_imm64(R0, 7),
            Insn::mov64_imm(R0, 1),
        ];
        let mut a = Asm::new();
        let end = a.label();
        a.emit_all(block);
        a.jmp_imm(Jeq, R1, 1, end);
        a.emit(Insn::ld_func(R2, 0));
        a.bind(end);
        a.emit(Insn::exit());
        let out = a.finish().unwrap();
        assert_eq!(out[0].jump_offset(), Some(2), "over both slots");
        assert_eq!(out[3].jump_offset(), Some(2), "label past an ld_func");
        // A resolved offset into the middle of an ld_imm64 is refused.
        let mut a = Asm::new();
        a.emit_all([Insn::jmp_imm(Jeq, R1, 0, 1), Insn::ld_imm64(R0, 7)]);
        a.emit(Insn::exit());
        assert!(matches!(a.finish(), Err(CodegenError::Internal(_))));
    }

    #[test]
    fn a_jump_beyond_16_bits_is_an_error() {
        let mut a = Asm::new();
        let far = a.label();
        a.jmp_imm(Jeq, R1, 0, far);
        for _ in 0..40_000 {
            a.emit(Insn::mov64_imm(R0, 0));
        }
        a.bind(far);
        a.emit(Insn::exit());
        assert!(matches!(a.finish(), Err(CodegenError::JumpTooFar { .. })));
    }
}
