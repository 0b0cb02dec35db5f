//! A concrete eBPF interpreter for lagic objects, written from the
//! kernel's instruction-set documentation and helper descriptions, sharing
//! no code with the emitter.
//!
//! Memory is a flat 64-bit address space of disjoint regions (stack frames
//! of 512 bytes, the packet's linear data, scratch buffers the checks set
//! up); an access must lie wholly inside one region, else it is an error,
//! as the verifier would refuse it. The `__sk_buff` context is not memory:
//! loads from it are answered field by field (`len`, `vlan_present`,
//! `protocol`, `data`, `data_end`), the way the kernel rewrites them; any
//! other field, or a store, is an error. Registers are tracked as defined
//! or not: reading an undefined register (or stack byte never written) is
//! an error, so a range of code that depends on something the check did not
//! set up cannot pass by accident.
//!
//! Helpers are a table from id to an emulation ([`Vm::register_helper`]);
//! an unknown helper is an error naming it. `bpf_loop` calls the callback
//! with (index, ctx) until it returns 1 or the count ends and returns the
//! number of iterations run; `bpf_skb_pull_data` makes the first `len`
//! bytes linear and invalidates every packet pointer (the packet moves to
//! a new address). Callers may also *intercept* a helper: execution stops
//! at the call and returns its arguments, to resume later.

use std::collections::BTreeMap;

use crate::isa::{self, Alu, Insn, Operand};
use crate::object::{Object, PSEUDO_FUNC};

/// Base of the `__sk_buff` context (never memory).
pub const CTX_BASE: u64 = 0x1000_0000;
/// Base of the packet's linear data; each pull moves it by `PACKET_STRIDE`.
pub const PACKET_BASE: u64 = 0x2000_0000;
const PACKET_STRIDE: u64 = 0x0100_0000;
/// Base of stack frame `depth`; `r10` points one past its top.
pub const STACK_BASE: u64 = 0x4000_0000;
const STACK_STRIDE: u64 = 0x0001_0000;
/// The kernel's stack size per frame.
pub const STACK_SIZE: usize = 512;
/// Base of scratch buffers set up by checks.
pub const SCRATCH_BASE: u64 = 0x6000_0000;
/// A function's address as `ld_imm64` with `src` = 4 produces it here:
/// `FUNC_BASE + callback index`.
pub const FUNC_BASE: u64 = 0x7000_0000;

/// Helper ids (`enum bpf_func_id`) the table knows by name.
pub mod helper {
    /// `bpf_map_lookup_elem`.
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    /// `bpf_map_update_elem`.
    pub const MAP_UPDATE_ELEM: i32 = 2;
    /// `bpf_ktime_get_ns`.
    pub const KTIME_GET_NS: i32 = 5;
    /// `bpf_skb_load_bytes`.
    pub const SKB_LOAD_BYTES: i32 = 26;
    /// `bpf_skb_pull_data`.
    pub const SKB_PULL_DATA: i32 = 39;
    /// `bpf_l4_csum_replace`.
    pub const L4_CSUM_REPLACE: i32 = 11;
    /// `bpf_ringbuf_output`.
    pub const RINGBUF_OUTPUT: i32 = 130;
    /// `bpf_ringbuf_reserve`.
    pub const RINGBUF_RESERVE: i32 = 131;
    /// `bpf_ringbuf_submit`.
    pub const RINGBUF_SUBMIT: i32 = 132;
    /// `bpf_ringbuf_discard`.
    pub const RINGBUF_DISCARD: i32 = 133;
    /// `bpf_loop`.
    pub const LOOP: i32 = 181;

    /// The helper's name, for messages.
    pub fn name(id: i32) -> &'static str {
        match id {
            MAP_LOOKUP_ELEM => "bpf_map_lookup_elem",
            MAP_UPDATE_ELEM => "bpf_map_update_elem",
            KTIME_GET_NS => "bpf_ktime_get_ns",
            SKB_LOAD_BYTES => "bpf_skb_load_bytes",
            SKB_PULL_DATA => "bpf_skb_pull_data",
            L4_CSUM_REPLACE => "bpf_l4_csum_replace",
            RINGBUF_OUTPUT => "bpf_ringbuf_output",
            RINGBUF_RESERVE => "bpf_ringbuf_reserve",
            RINGBUF_SUBMIT => "bpf_ringbuf_submit",
            RINGBUF_DISCARD => "bpf_ringbuf_discard",
            LOOP => "bpf_loop",
            _ => "an unknown helper",
        }
    }
}

/// Which function of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// The TC program (section `classifier`).
    Entry,
    /// The `.text` function at this index (a `bpf_loop` callback).
    Callback(usize),
}

/// The register file; `defined` has bit `r` set when `r` holds a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Regs {
    /// Register values, `r0` to `r10`.
    pub v: [u64; 11],
    /// Bit `r` set: register `r` holds a value.
    pub defined: u16,
}

impl Regs {
    /// Gives `r` a value.
    pub fn set(&mut self, r: u8, value: u64) {
        self.v[r as usize] = value;
        self.defined |= 1 << r;
    }
    /// Makes `r` hold no value (reading it is then an error).
    pub fn undefine(&mut self, r: u8) {
        self.defined &= !(1 << r);
    }
    /// Whether `r` holds a value.
    pub fn is_defined(&self, r: u8) -> bool {
        self.defined & (1 << r) != 0
    }
    /// `r`'s value, if it holds one.
    pub fn get(&self, r: u8) -> Option<u64> {
        self.is_defined(r).then_some(self.v[r as usize])
    }
    /// The registers after a helper call returned `r0`: the call clobbers
    /// `r1`-`r5`, so they hold no value.
    pub fn helper_returned(&mut self, r0: u64) {
        for r in 1..=5 {
            self.undefine(r);
        }
        self.set(0, r0);
    }
}

/// The packet as the diode sees it.
#[derive(Debug, Clone)]
pub struct Skb {
    /// The whole frame (`skb->len` bytes).
    pub frame: Vec<u8>,
    /// Bytes in the linear area before any pull.
    pub linear: usize,
    /// `skb->vlan_present`.
    pub vlan_present: bool,
    /// Whether `bpf_skb_pull_data` fails (as it may under memory pressure).
    pub pull_fails: bool,
    /// `skb->ifindex` and `skb->ingress_ifindex` (only recorded in drop
    /// events; no verdict reads them).
    pub ifindex: u32,
    /// See `ifindex`.
    pub ingress_ifindex: u32,
}

impl Skb {
    /// A fully linear frame without offloaded VLAN tag.
    pub fn linear(frame: Vec<u8>) -> Skb {
        Skb {
            linear: frame.len(),
            frame,
            vlan_present: false,
            pull_fails: false,
            ifindex: 2,
            ingress_ifindex: 2,
        }
    }
}

#[derive(Debug, Clone)]
struct Region {
    base: u64,
    bytes: Vec<u8>,
    /// Per byte: written since the region was made (stacks only track it).
    init: Option<Vec<bool>>,
    writable: bool,
}

/// An execution error: what went wrong, in which function, at which slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{function} slot {slot}: {what}")]
pub struct VmError {
    /// The function executing.
    pub function: String,
    /// The slot executing.
    pub slot: usize,
    /// What went wrong.
    pub what: String,
}

/// How an execution stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The function returned this `r0`.
    Exit(u64),
    /// Execution reached a slot the caller asked to stop at.
    At(usize),
    /// A call to an intercepted helper at `slot` with arguments r1-r5.
    Helper {
        /// The call's slot.
        slot: usize,
        /// The helper id.
        id: i32,
        /// `r1` to `r5` at the call.
        args: [u64; 5],
    },
}

/// A helper's emulation: arguments r1-r5, result r0.
pub type HelperFn = fn(&mut Vm<'_>, [u64; 5]) -> Result<u64, String>;

/// The value of an `ld_imm64` with a pseudo source (a map by file
/// descriptor or index, a map value, ...): given its `imm` and the
/// constant's upper half, what the register holds.
pub type PseudoLoadFn = fn(&mut Vm<'_>, i32, u64) -> Result<u64, String>;

/// The interpreter over one object.
#[derive(Clone)]
pub struct Vm<'o> {
    object: &'o Object,
    regions: Vec<Region>,
    skb: Option<Skb>,
    packet_generation: u64,
    helpers: BTreeMap<i32, HelperFn>,
    pseudo_loads: BTreeMap<u8, PseudoLoadFn>,
    intercept: Vec<i32>,
    /// Instructions left before execution is stopped as runaway.
    pub budget: u64,
    depth: usize,
    /// When set, every packet load is logged (offset from `data`, width).
    pub packet_loads: Option<Vec<(u64, u8)>>,
    /// When set, any store is an error (for code that must not write memory).
    pub forbid_stores: bool,
    /// When set, the state at marked slots of one callback is captured.
    pub probe: Option<Probe>,
    /// When set, [`Vm::exec`] of the entry function also stops at every
    /// slot marked here (a constant-time test, for many stops).
    pub entry_stops: Option<Vec<bool>>,
    /// The maps' state, once [`crate::watch::install`] gave them a meaning.
    pub watch: crate::watch::WatchState,
    /// The function and slot of the `ld_imm64` a pseudo-load emulation is
    /// answering (so it can find the relocation naming the map).
    loading_at: (Func, usize),
}

/// Captures the machine state the first time a callback reaches each of
/// some slots.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// The callback probed.
    pub callback: usize,
    /// `marked[slot]`: capture there.
    pub marked: Vec<bool>,
    /// Slot to the state at first arrival.
    pub captured: BTreeMap<usize, Snapshot>,
}

/// One stack frame's bytes and which of them were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackState {
    bytes: Vec<u8>,
    init: Vec<bool>,
}

/// Registers and memory at one point of an execution.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The registers there.
    pub regs: Regs,
    regions: Vec<Region>,
    skb: Option<Skb>,
    packet_generation: u64,
}

const EINVAL: i64 = 22;
const E2BIG: i64 = 7;
const ENOMEM: i64 = 12;
const EFAULT: i64 = 14;
/// `bpf_loop`'s largest count (`BPF_MAX_LOOPS`).
const MAX_LOOPS: u64 = 1 << 23;
/// Call depth the kernel allows (`MAX_CALL_FRAMES`).
const MAX_FRAMES: usize = 8;

impl<'o> Vm<'o> {
    /// An interpreter with the helpers lagic objects use today.
    pub fn new(object: &'o Object) -> Vm<'o> {
        let mut vm = Vm {
            object,
            regions: Vec::new(),
            skb: None,
            packet_generation: 0,
            helpers: BTreeMap::new(),
            pseudo_loads: BTreeMap::new(),
            intercept: Vec::new(),
            budget: 200_000_000,
            depth: 0,
            packet_loads: None,
            forbid_stores: false,
            probe: None,
            entry_stops: None,
            watch: Default::default(),
            loading_at: (Func::Entry, 0),
        };
        vm.register_helper(helper::LOOP, emulate_loop);
        vm.register_helper(helper::SKB_PULL_DATA, emulate_pull);
        vm.register_helper(helper::L4_CSUM_REPLACE, emulate_l4_csum_replace);
        crate::rodata::install(&mut vm);
        vm
    }

    /// The memory and packet as they are now, with `regs`.
    pub fn snapshot(&self, regs: Regs) -> Snapshot {
        Snapshot {
            regs,
            regions: self.regions.clone(),
            skb: self.skb.clone(),
            packet_generation: self.packet_generation,
        }
    }

    /// Puts memory and packet back as in `snap`; returns its registers.
    pub fn restore(&mut self, snap: &Snapshot) -> Regs {
        self.regions.clone_from(&snap.regions);
        self.skb.clone_from(&snap.skb);
        self.packet_generation = snap.packet_generation;
        snap.regs
    }

    /// Puts the stack frames back as in `snap` (the packet is left as it
    /// is: for code that never changes it); returns its registers.
    pub fn restore_stacks(&mut self, snap: &Snapshot) -> Regs {
        for saved in snap.regions.iter().filter(|r| r.init.is_some()) {
            match self.regions.iter_mut().find(|r| r.base == saved.base) {
                Some(r) => {
                    r.bytes.copy_from_slice(&saved.bytes);
                    if let (Some(dst), Some(src)) = (&mut r.init, &saved.init) {
                        dst.copy_from_slice(src);
                    }
                }
                None => self.regions.push(saved.clone()),
            }
        }
        snap.regs
    }

    /// The bytes and written-marks of stack frame `depth`.
    pub fn stack_state(&self, depth: usize) -> StackState {
        let base = STACK_BASE + depth as u64 * STACK_STRIDE;
        self.regions
            .iter()
            .find(|r| r.base == base)
            .map(|r| StackState {
                bytes: r.bytes.clone(),
                init: r.init.clone().unwrap_or_default(),
            })
            .unwrap_or_default()
    }

    /// A copy of stack frame `depth`'s bytes (empty if it does not exist).
    pub fn clone_stack_bytes(&self, depth: usize) -> Vec<u8> {
        let base = STACK_BASE + depth as u64 * STACK_STRIDE;
        self.regions
            .iter()
            .find(|r| r.base == base)
            .map(|r| r.bytes.clone())
            .unwrap_or_default()
    }

    /// Puts stack frame `depth` back to `state` (it must exist).
    pub fn set_stack_state(&mut self, depth: usize, state: &StackState) {
        let base = STACK_BASE + depth as u64 * STACK_STRIDE;
        if let Some(r) = self.regions.iter_mut().find(|r| r.base == base) {
            r.bytes.clone_from(&state.bytes);
            r.init = Some(state.init.clone());
        }
    }

    /// The current packet's `data` address.
    pub fn packet_data(&self) -> Option<u64> {
        self.packet_bounds().map(|(d, _)| d)
    }

    /// Overwrites packet bytes (the linear data) from offset `at`.
    pub fn poke_packet(&mut self, at: usize, bytes: &[u8]) -> Result<(), String> {
        let data = self.packet_data().ok_or("no packet set up")?;
        if let Some(skb) = &mut self.skb {
            if let Some(dst) = skb.frame.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        self.poke(data + at as u64, bytes)
    }

    /// Adds or replaces a helper's emulation.
    pub fn register_helper(&mut self, id: i32, f: HelperFn) {
        self.helpers.insert(id, f);
    }

    /// Gives `ld_imm64` with pseudo source `src` (1 = map by fd, 2 = map
    /// value, 5/6 = by index) a meaning; without one such a load is an
    /// error. Function addresses (`src` = 4) are built in.
    pub fn register_pseudo_load(&mut self, src: u8, f: PseudoLoadFn) {
        self.pseudo_loads.insert(src, f);
    }

    /// The function and slot of the `ld_imm64` a pseudo-load emulation
    /// is answering.
    pub fn loading_at(&self) -> (Func, usize) {
        self.loading_at
    }

    /// The object run.
    pub fn object(&self) -> &'o Object {
        self.object
    }

    /// The whole frame (linear or not), if a packet is set up.
    pub fn frame(&self) -> Option<&[u8]> {
        self.skb.as_ref().map(|s| s.frame.as_slice())
    }

    /// Maps a zeroed region of `len` bytes at `base`, writable or not
    /// (map values, ring buffer records); replaces one at the same base.
    pub fn map_region(&mut self, base: u64, len: usize, writable: bool) {
        self.regions.retain(|r| r.base != base);
        self.regions.push(Region {
            base,
            bytes: vec![0; len],
            init: None,
            writable,
        });
    }

    /// Removes the region at `base`; whether there was one.
    pub fn unmap_region(&mut self, base: u64) -> bool {
        let before = self.regions.len();
        self.regions.retain(|r| r.base != base);
        self.regions.len() != before
    }

    /// Stops execution at every call of helper `id` (see [`Stop::Helper`]).
    pub fn intercept(&mut self, id: i32) {
        self.intercept.push(id);
    }

    /// Installs the packet; its linear data becomes a region.
    pub fn set_skb(&mut self, skb: Skb) {
        self.skb = Some(skb);
        self.packet_generation = 0;
        self.map_packet();
    }

    fn map_packet(&mut self) {
        let Some(skb) = &self.skb else { return };
        let base = PACKET_BASE + self.packet_generation * PACKET_STRIDE;
        let bytes = skb.frame[..skb.linear.min(skb.frame.len())].to_vec();
        self.regions
            .retain(|r| !(PACKET_BASE..STACK_BASE).contains(&r.base));
        self.regions.push(Region {
            base,
            bytes,
            init: None,
            writable: false,
        });
    }

    fn packet_bounds(&self) -> Option<(u64, u64)> {
        let skb = self.skb.as_ref()?;
        let base = PACKET_BASE + self.packet_generation * PACKET_STRIDE;
        Some((base, base + skb.linear.min(skb.frame.len()) as u64))
    }

    /// The entry's registers at its first instruction, as the kernel calls
    /// a TC program: a fresh stack frame (`r10`, also returned) and the
    /// context in `r1`; nothing else holds a value.
    pub fn entry_start(&mut self) -> (Regs, u64) {
        let r10 = self.new_stack(0);
        let mut regs = Regs::default();
        regs.set(10, r10);
        regs.set(1, CTX_BASE);
        (regs, r10)
    }

    /// A fresh, uninitialized stack frame at call depth `depth`; returns `r10`.
    pub fn new_stack(&mut self, depth: usize) -> u64 {
        let base = STACK_BASE + depth as u64 * STACK_STRIDE;
        self.regions.retain(|r| r.base != base);
        self.regions.push(Region {
            base,
            bytes: vec![0; STACK_SIZE],
            init: Some(vec![false; STACK_SIZE]),
            writable: true,
        });
        base + STACK_SIZE as u64
    }

    /// Stack frame `depth` made uninitialized again (created if missing,
    /// its memory reused otherwise); returns `r10`.
    pub fn reset_stack(&mut self, depth: usize) -> u64 {
        let base = STACK_BASE + depth as u64 * STACK_STRIDE;
        match self.regions.iter_mut().find(|r| r.base == base) {
            Some(r) => {
                if let Some(init) = &mut r.init {
                    init.fill(false);
                }
                base + STACK_SIZE as u64
            }
            None => self.new_stack(depth),
        }
    }

    /// Maps a read-only scratch buffer at `SCRATCH_BASE + offset`.
    pub fn map_scratch(&mut self, offset: u64, bytes: Vec<u8>) -> u64 {
        let base = SCRATCH_BASE + offset;
        self.regions.retain(|r| r.base != base);
        self.regions.push(Region {
            base,
            bytes,
            init: None,
            writable: false,
        });
        base
    }

    /// Writes bytes into memory (for checks setting up state); the range
    /// must lie in one region.
    pub fn poke(&mut self, addr: u64, bytes: &[u8]) -> Result<(), String> {
        let r = self.region_index(addr, bytes.len() as u64)?;
        let region = &mut self.regions[r];
        let at = (addr - region.base) as usize;
        region.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        if let Some(init) = &mut region.init {
            init[at..at + bytes.len()].fill(true);
        }
        Ok(())
    }

    /// Reads bytes from memory; every byte must have been written.
    pub fn peek(&self, addr: u64, len: usize) -> Result<&[u8], String> {
        if let Some(read) = crate::rodata::read(self.object, addr, len) {
            return read;
        }
        let r = self.region_index(addr, len as u64)?;
        let region = &self.regions[r];
        let at = (addr - region.base) as usize;
        if let Some(init) = &region.init {
            if init[at..at + len].iter().any(|&i| !i) {
                return Err(format!("reads stack bytes never written at {addr:#x}"));
            }
        }
        Ok(&region.bytes[at..at + len])
    }

    /// Reads a little-endian unsigned value of `len` bytes.
    pub fn peek_u64(&self, addr: u64, len: usize) -> Result<u64, String> {
        let b = self.peek(addr, len)?;
        let mut buf = [0u8; 8];
        buf[..len].copy_from_slice(b);
        Ok(u64::from_le_bytes(buf))
    }

    fn region_index(&self, addr: u64, len: u64) -> Result<usize, String> {
        self.regions
            .iter()
            .position(|r| {
                addr >= r.base
                    && addr
                        .checked_add(len)
                        .is_some_and(|e| e <= r.base + r.bytes.len() as u64)
            })
            .ok_or_else(|| {
                format!(
                    "accesses {len} bytes at {addr:#x}, outside every region{}",
                    self.describe(addr)
                )
            })
    }

    fn describe(&self, addr: u64) -> String {
        match self.packet_bounds() {
            Some((data, end)) if (PACKET_BASE..STACK_BASE).contains(&addr) => {
                if addr >= data && addr <= end + 64 {
                    format!(
                        " (packet offset {}, linear data ends at {})",
                        addr - data,
                        end - data
                    )
                } else {
                    " (a stale packet pointer)".to_string()
                }
            }
            _ => String::new(),
        }
    }

    fn ctx_load(&self, off: i64, width: u8) -> Result<u64, String> {
        let skb = self
            .skb
            .as_ref()
            .ok_or("reads the context, but no packet is set up")?;
        if width != 4 {
            return Err(format!(
                "reads __sk_buff offset {off} with width {width}, not emulated"
            ));
        }
        let (data, end) = self.packet_bounds().expect("skb set");
        Ok(match off {
            0 => skb.frame.len() as u64,
            16 => {
                // skb->protocol, in network byte order, from the EtherType.
                let et = skb
                    .frame
                    .get(12..14)
                    .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
                u64::from(et)
            }
            20 => u64::from(skb.vlan_present),
            36 => u64::from(skb.ingress_ifindex),
            40 => u64::from(skb.ifindex),
            76 => data,
            80 => end,
            _ => return Err(format!("reads __sk_buff offset {off}, not emulated")),
        })
    }

    fn function(&self, f: Func) -> &'o crate::object::Function {
        match f {
            Func::Entry => &self.object.entry,
            Func::Callback(i) => &self.object.callbacks[i],
        }
    }

    /// Runs `f` from `slot` with `regs` until it exits, reaches a slot in
    /// `stop_at`, or calls an intercepted helper.
    pub fn exec(
        &mut self,
        f: Func,
        mut pc: usize,
        regs: &mut Regs,
        stop_at: &[usize],
    ) -> Result<Stop, VmError> {
        let function = self.function(f);
        let insns = &function.insns;
        let fail = |pc: usize, what: String| VmError {
            function: function.name.clone(),
            slot: pc,
            what,
        };
        macro_rules! reg {
            ($r:expr, $pc:expr) => {
                regs.get($r)
                    .ok_or_else(|| fail($pc, format!("reads r{}, which holds no value", $r)))?
            };
        }
        loop {
            if stop_at.contains(&pc)
                || (f == Func::Entry
                    && self
                        .entry_stops
                        .as_ref()
                        .is_some_and(|m| m.get(pc).copied().unwrap_or(false)))
            {
                return Ok(Stop::At(pc));
            }
            if let Some(probe) = &self.probe {
                if Func::Callback(probe.callback) == f
                    && probe.marked.get(pc).copied().unwrap_or(false)
                    && !probe.captured.contains_key(&pc)
                {
                    let snap = self.snapshot(*regs);
                    if let Some(p) = &mut self.probe {
                        p.captured.insert(pc, snap);
                    }
                }
            }
            if self.budget == 0 {
                return Err(fail(pc, "runs past the instruction budget".into()));
            }
            self.budget -= 1;
            let Some(&insn) = insns.get(pc) else {
                return Err(fail(pc, "runs off the end of the function".into()));
            };
            match insn {
                Insn::Alu {
                    wide,
                    op,
                    dst,
                    src,
                    off,
                    to_be,
                } => {
                    if dst == 10 {
                        return Err(fail(pc, "writes r10".into()));
                    }
                    let s = match src {
                        Operand::Reg(r) => reg!(r, pc),
                        Operand::Imm(i) => i as i64 as u64,
                    };
                    let d = if matches!(op, Alu::Mov) {
                        0
                    } else {
                        reg!(dst, pc)
                    };
                    regs.set(dst, isa::alu(op, wide, d, s, off, to_be));
                }
                Insn::Load {
                    width,
                    dst,
                    src,
                    off,
                    signed,
                } => {
                    let base = reg!(src, pc);
                    let addr = base.wrapping_add(off as i64 as u64);
                    let v = if base == CTX_BASE {
                        self.ctx_load(off.into(), width).map_err(|e| fail(pc, e))?
                    } else {
                        if self.packet_loads.is_some() {
                            if let Some((data, end)) = self.packet_bounds() {
                                if addr >= data && addr < end {
                                    if let Some(log) = &mut self.packet_loads {
                                        log.push((addr - data, width));
                                    }
                                }
                            }
                        }
                        self.peek_u64(addr, width as usize)
                            .map_err(|e| fail(pc, e))?
                    };
                    let v = if signed {
                        match width {
                            1 => v as i8 as i64 as u64,
                            2 => v as i16 as i64 as u64,
                            4 => v as i32 as i64 as u64,
                            _ => v,
                        }
                    } else {
                        v
                    };
                    if dst == 10 {
                        return Err(fail(pc, "writes r10".into()));
                    }
                    regs.set(dst, v);
                }
                Insn::Store {
                    width,
                    dst,
                    off,
                    src,
                } => {
                    let addr = reg!(dst, pc).wrapping_add(off as i64 as u64);
                    let v = match src {
                        Operand::Reg(r) => reg!(r, pc),
                        Operand::Imm(i) => i as i64 as u64,
                    };
                    if reg!(dst, pc) == CTX_BASE {
                        return Err(fail(pc, "writes the __sk_buff context".into()));
                    }
                    if self.forbid_stores {
                        return Err(fail(
                            pc,
                            format!("writes memory at {addr:#x} where it must not"),
                        ));
                    }
                    let r = self
                        .region_index(addr, width.into())
                        .map_err(|e| fail(pc, e))?;
                    if !self.regions[r].writable {
                        return Err(fail(pc, format!("writes read-only memory at {addr:#x}")));
                    }
                    self.poke(addr, &v.to_le_bytes()[..width as usize])
                        .map_err(|e| fail(pc, e))?;
                }
                Insn::AtomicXchg {
                    width,
                    dst,
                    src,
                    off,
                    compare,
                } => {
                    let addr = reg!(dst, pc).wrapping_add(off as i64 as u64);
                    let new = reg!(src, pc);
                    if self.forbid_stores {
                        return Err(fail(
                            pc,
                            format!("writes memory at {addr:#x} where it must not"),
                        ));
                    }
                    let r = self
                        .region_index(addr, width.into())
                        .map_err(|e| fail(pc, e))?;
                    if !self.regions[r].writable {
                        return Err(fail(pc, format!("writes read-only memory at {addr:#x}")));
                    }
                    let old = self
                        .peek_u64(addr, width as usize)
                        .map_err(|e| fail(pc, e))?;
                    let mask = if width == 8 {
                        u64::MAX
                    } else {
                        u64::from(u32::MAX)
                    };
                    if compare {
                        let expected = reg!(0, pc) & mask;
                        if old == expected {
                            self.poke(addr, &new.to_le_bytes()[..width as usize])
                                .map_err(|e| fail(pc, e))?;
                        }
                        regs.set(0, old);
                    } else {
                        self.poke(addr, &new.to_le_bytes()[..width as usize])
                            .map_err(|e| fail(pc, e))?;
                        regs.set(src, old);
                    }
                }
                Insn::LoadImm64 {
                    dst,
                    src,
                    value,
                    imm,
                } => {
                    let v = match src {
                        0 => value,
                        PSEUDO_FUNC => {
                            let index = self
                                .object
                                .text_offsets
                                .iter()
                                .position(|&o| o as i64 == i64::from(imm))
                                .ok_or_else(|| {
                                    fail(
                                        pc,
                                        format!(
                                            "loads .text offset {imm}, where no function starts"
                                        ),
                                    )
                                })?;
                            FUNC_BASE + index as u64
                        }
                        other => match self.pseudo_loads.get(&other).copied() {
                            Some(emulation) => {
                                self.loading_at = (f, pc);
                                emulation(self, imm, value >> 32).map_err(|e| fail(pc, e))?
                            }
                            None => {
                                return Err(fail(
                                    pc,
                                    format!(
                                    "ld_imm64 with src {other} (a map reference) is not emulated"
                                ),
                                ))
                            }
                        },
                    };
                    regs.set(dst, v);
                    pc += 2;
                    continue;
                }
                Insn::Wide => return Err(fail(pc, "jumps into the middle of an ld_imm64".into())),
                Insn::Jump {
                    wide,
                    cond,
                    dst,
                    src,
                    off,
                } => {
                    let taken = match cond {
                        None => true,
                        Some(c) => {
                            let a = reg!(dst, pc);
                            let b = match src {
                                Operand::Reg(r) => reg!(r, pc),
                                Operand::Imm(i) => i as i64 as u64,
                            };
                            isa::holds(c, wide, a, b)
                        }
                    };
                    if taken {
                        let target = pc as i64 + 1 + i64::from(off);
                        if target < 0 || target as usize >= insns.len() {
                            return Err(fail(
                                pc,
                                format!("jumps to slot {target}, outside the function"),
                            ));
                        }
                        pc = target as usize;
                        continue;
                    }
                }
                Insn::Call { src, imm } => {
                    if src != 0 {
                        return Err(fail(
                            pc,
                            format!(
                                "call with src {src} (local function or kfunc) is not emulated"
                            ),
                        ));
                    }
                    let mut args = [0u64; 5];
                    for (i, a) in args.iter_mut().enumerate() {
                        // Undefined arguments are passed as poison; a helper
                        // that uses one fails on it.
                        *a = regs.get(i as u8 + 1).unwrap_or(u64::MAX);
                    }
                    if self.intercept.contains(&imm) {
                        return Ok(Stop::Helper {
                            slot: pc,
                            id: imm,
                            args,
                        });
                    }
                    let Some(&h) = self.helpers.get(&imm) else {
                        return Err(fail(
                            pc,
                            format!(
                                "calls helper {imm} ({}), which validation does not emulate",
                                helper::name(imm)
                            ),
                        ));
                    };
                    let r0 = h(self, args)
                        .map_err(|e| fail(pc, format!("{}: {e}", helper::name(imm))))?;
                    regs.helper_returned(r0);
                }
                Insn::Exit => {
                    let r0 = reg!(0, pc);
                    return Ok(Stop::Exit(r0));
                }
            }
            pc += 1;
        }
    }

    /// Calls function `f` as the kernel calls a program or callback: a
    /// fresh stack frame, `r1`-`r5` as given, and runs it to its exit.
    pub fn call(&mut self, f: Func, args: &[u64]) -> Result<u64, VmError> {
        if self.depth + 1 >= MAX_FRAMES {
            return Err(VmError {
                function: self.function(f).name.clone(),
                slot: 0,
                what: "call depth beyond the kernel's limit".into(),
            });
        }
        self.depth += 1;
        let mut regs = Regs::default();
        regs.set(10, self.new_stack(self.depth));
        for (i, &a) in args.iter().enumerate() {
            regs.set(i as u8 + 1, a);
        }
        let result = self.exec(f, 0, &mut regs, &[]);
        self.depth -= 1;
        match result? {
            Stop::Exit(r0) => Ok(r0),
            other => Err(VmError {
                function: self.function(f).name.clone(),
                slot: 0,
                what: format!("stopped without returning ({other:?})"),
            }),
        }
    }

    /// Runs the whole program on the packet set up with [`Vm::set_skb`].
    pub fn run_program(&mut self) -> Result<u64, VmError> {
        self.depth = 0;
        self.new_stack(0);
        let mut regs = Regs::default();
        regs.set(10, STACK_BASE + STACK_SIZE as u64);
        regs.set(1, CTX_BASE);
        match self.exec(Func::Entry, 0, &mut regs, &[])? {
            Stop::Exit(r0) => Ok(r0),
            other => Err(VmError {
                function: self.object.entry.name.clone(),
                slot: 0,
                what: format!("stopped without returning ({other:?})"),
            }),
        }
    }

    /// The callback index of a function address, if it is one.
    pub fn callback_of(&self, addr: u64) -> Option<usize> {
        let i = addr.checked_sub(FUNC_BASE)? as usize;
        (i < self.object.callbacks.len()).then_some(i)
    }
}

/// `long bpf_loop(u32 nr_loops, void *callback_fn, void *callback_ctx, u64 flags)`.
fn emulate_loop(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    let [nr, cb, ctx, flags, _] = args;
    if flags != 0 {
        return Ok((-EINVAL) as u64);
    }
    let nr = nr as u32 as u64;
    if nr > MAX_LOOPS {
        return Ok((-E2BIG) as u64);
    }
    let index = vm
        .callback_of(cb)
        .ok_or_else(|| format!("callback argument {cb:#x} is not a function"))?;
    for i in 0..nr {
        let r = vm
            .call(Func::Callback(index), &[i, ctx, 0, 0, 0])
            .map_err(|e| e.to_string())?;
        match r {
            0 => {}
            1 => return Ok(i + 1),
            other => return Err(format!("callback returned {other}, not 0 or 1")),
        }
    }
    Ok(nr)
}

/// `long bpf_skb_pull_data(struct sk_buff *skb, u32 len)`.
/// `bpf_l4_csum_replace` as the kernel does it on a `CHECKSUM_NONE` skb
/// (what `BPF_PROG_TEST_RUN` and every probe packet is), for the one form
/// the emitter uses: a difference (`from` 0, size 0) with
/// `BPF_F_PSEUDO_HDR`, `field = csum_fold(diff + ~field)`. Packet
/// pointers are invalidated, as by every helper that may move the data.
fn emulate_l4_csum_replace(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    const BPF_F_PSEUDO_HDR: u64 = 0x10;
    let [skb_ptr, offset, from, diff, flags] = args;
    if skb_ptr != CTX_BASE {
        return Err("first argument is not the context".into());
    }
    if from != 0 || flags != BPF_F_PSEUDO_HDR {
        return Err(format!(
            "only a pseudo-header difference is modelled (from {from}, flags {flags:#x})"
        ));
    }
    let skb = vm.skb.as_mut().ok_or("no packet set up")?;
    let at = offset as u32 as usize;
    if at + 2 > skb.linear.min(skb.frame.len()) {
        return Ok((-EFAULT) as u64);
    }
    let field = u16::from_ne_bytes([skb.frame[at], skb.frame[at + 1]]);
    let sum = u64::from(diff as u32) + u64::from(!u32::from(field));
    let mut folded = (sum & 0xFFFF_FFFF) + (sum >> 32);
    while folded > 0xFFFF {
        folded = (folded & 0xFFFF) + (folded >> 16);
    }
    let new = !(folded as u16);
    skb.frame[at..at + 2].copy_from_slice(&new.to_ne_bytes());
    vm.packet_generation = (vm.packet_generation + 1) % 16;
    vm.map_packet();
    Ok(0)
}

fn emulate_pull(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    let [skb_ptr, len, ..] = args;
    if skb_ptr != CTX_BASE {
        return Err("first argument is not the context".into());
    }
    let skb = vm.skb.as_mut().ok_or("no packet set up")?;
    let len = len as u32 as usize;
    if skb.pull_fails || len > skb.frame.len() {
        return Ok((-ENOMEM) as u64);
    }
    // len 0 means "the linear head", which is already linear.
    skb.linear = skb.linear.max(len);
    // Every packet pointer is invalidated: the data moves.
    vm.packet_generation = (vm.packet_generation + 1) % 16;
    vm.map_packet();
    Ok(0)
}
