//! A tiny assembler: instructions plus forward/backward labels.
//!
//! Jumps are emitted against [`Label`]s and patched when the function is
//! finished; an offset that does not fit the 16-bit jump field is an error,
//! not a silent truncation.

use crate::insn::{Insn, Reg, BPF_JMP};

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

    pub fn emit_all(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.insns.extend(insns);
    }

    /// `if dst <op> imm goto label`.
    pub fn jmp_imm(&mut self, op: u8, dst: Reg, imm: i32, label: Label) {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(Insn::jmp_imm(op, dst, imm, 0));
    }

    /// `if dst <op> src goto label`.
    pub fn jmp_reg(&mut self, op: u8, dst: Reg, src: Reg, label: Label) {
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

    /// Resolves every jump; fails on an unbound label or an offset beyond 16 bits.
    pub fn finish(mut self) -> Result<Vec<Insn>, CodegenError> {
        for &(at, label) in &self.fixups {
            let target = self.labels[label.0].ok_or(CodegenError::Internal("unbound label"))?;
            let off = target as i64 - at as i64 - 1;
            let off = i16::try_from(off).map_err(|_| CodegenError::JumpTooFar {
                from: at,
                to: target,
            })?;
            debug_assert_eq!(self.insns[at].code & 0x07, BPF_JMP);
            self.insns[at].off = off;
        }
        Ok(self.insns)
    }
}
