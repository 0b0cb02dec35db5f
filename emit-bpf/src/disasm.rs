//! A disassembler for eBPF instructions and for the objects lagic writes.
//!
//! [`disassemble`] prints one line per instruction (an `ld_imm64` pair is
//! one line, numbered by its first slot), in the style of the kernel's
//! verifier log and llvm-objdump: `   1: r2 = *(u32 *)(r6 + 80)`,
//! `   2: if r3 > r2 goto +5 <8>` (the target slot in angle brackets),
//! `   7: call bpf_loop#181`. Every encoding the kernel accepts has a
//! rendering; anything else prints as `.insn 0x<8 bytes in hex>` rather
//! than failing. [`disassemble_object`] reads an ELF object back and prints
//! its license and each program section with its functions. The output is
//! deterministic (sections in file order, functions by address then name)
//! because golden tests compare it.
//!
//! Instructions are decoded into the typed ISA ([`crate::decode`]) and
//! printed from there; a slot that decodes to no instruction, or to one
//! the kernel refuses, prints raw. [`disassemble_object`] reads only what
//! lagic writes: 64-bit little-endian relocatable ELF for `EM_BPF`; any
//! other object (an x86 executable, say) is a [`DisasmError`], never
//! foreign machine code printed as eBPF.

use std::fmt::Write as _;

use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};
use thiserror::Error;

use crate::decode::decode;
use crate::insn::*;

/// Why an object cannot be disassembled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DisasmError {
    /// No ELF magic.
    #[error("not an ELF object (no ELF magic); lagic disassembles eBPF ELF objects")]
    NotElf,
    /// An ELF object that is not 64-bit.
    #[error("not an eBPF object: ELF class {class} is not ELFCLASS64 (2)")]
    NotElf64 {
        /// `e_ident[EI_CLASS]`.
        class: u8,
    },
    /// An ELF object that is not little-endian.
    #[error("not an eBPF object lagic reads: ELF data encoding {data} is not little-endian (ELFDATA2LSB, 1)")]
    NotLittleEndian {
        /// `e_ident[EI_DATA]`.
        data: u8,
    },
    /// An ELF object for another machine.
    #[error("not an eBPF object: ELF machine {machine} is not EM_BPF (247)")]
    NotBpf {
        /// `e_machine`.
        machine: u16,
    },
    /// An eBPF ELF file that is not a relocatable object.
    #[error("not a relocatable eBPF object: ELF type {elf_type} is not ET_REL (1)")]
    NotRelocatable {
        /// `e_type`.
        elf_type: u16,
    },
    /// The object's structure could not be read.
    #[error("reading object: {0}")]
    Read(String),
}

/// Checks the ELF header fields lagic's writer fixes (class, byte order,
/// machine, type) before anything else is read.
fn check_header(bytes: &[u8]) -> Result<(), DisasmError> {
    const EI_CLASS: usize = 4;
    const EI_DATA: usize = 5;
    const ELFCLASS64: u8 = 2;
    const ELFDATA2LSB: u8 = 1;
    const ET_REL: u16 = 1;
    const EM_BPF: u16 = 247;
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(DisasmError::NotElf);
    }
    let header_u16 = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| DisasmError::Read("ELF header truncated".into()))
    };
    let ident = |at: usize| {
        bytes
            .get(at)
            .copied()
            .ok_or_else(|| DisasmError::Read("ELF header truncated".into()))
    };
    let class = ident(EI_CLASS)?;
    if class != ELFCLASS64 {
        return Err(DisasmError::NotElf64 { class });
    }
    let data = ident(EI_DATA)?;
    if data != ELFDATA2LSB {
        return Err(DisasmError::NotLittleEndian { data });
    }
    // e_type at 16, e_machine at 18 (both little-endian, checked above).
    let machine = header_u16(18)?;
    if machine != EM_BPF {
        return Err(DisasmError::NotBpf { machine });
    }
    let elf_type = header_u16(16)?;
    if elf_type != ET_REL {
        return Err(DisasmError::NotRelocatable { elf_type });
    }
    Ok(())
}

/// Helper names by id (`enum bpf_func_id` in `linux/bpf.h`), without the
/// `bpf_` prefix.
const HELPER_NAMES: &[&str] = &[
    "unspec",
    "map_lookup_elem",
    "map_update_elem",
    "map_delete_elem",
    "probe_read",
    "ktime_get_ns",
    "trace_printk",
    "get_prandom_u32",
    "get_smp_processor_id",
    "skb_store_bytes",
    "l3_csum_replace",
    "l4_csum_replace",
    "tail_call",
    "clone_redirect",
    "get_current_pid_tgid",
    "get_current_uid_gid",
    "get_current_comm",
    "get_cgroup_classid",
    "skb_vlan_push",
    "skb_vlan_pop",
    "skb_get_tunnel_key",
    "skb_set_tunnel_key",
    "perf_event_read",
    "redirect",
    "get_route_realm",
    "perf_event_output",
    "skb_load_bytes",
    "get_stackid",
    "csum_diff",
    "skb_get_tunnel_opt",
    "skb_set_tunnel_opt",
    "skb_change_proto",
    "skb_change_type",
    "skb_under_cgroup",
    "get_hash_recalc",
    "get_current_task",
    "probe_write_user",
    "current_task_under_cgroup",
    "skb_change_tail",
    "skb_pull_data",
    "csum_update",
    "set_hash_invalid",
    "get_numa_node_id",
    "skb_change_head",
    "xdp_adjust_head",
    "probe_read_str",
    "get_socket_cookie",
    "get_socket_uid",
    "set_hash",
    "setsockopt",
    "skb_adjust_room",
    "redirect_map",
    "sk_redirect_map",
    "sock_map_update",
    "xdp_adjust_meta",
    "perf_event_read_value",
    "perf_prog_read_value",
    "getsockopt",
    "override_return",
    "sock_ops_cb_flags_set",
    "msg_redirect_map",
    "msg_apply_bytes",
    "msg_cork_bytes",
    "msg_pull_data",
    "bind",
    "xdp_adjust_tail",
    "skb_get_xfrm_state",
    "get_stack",
    "skb_load_bytes_relative",
    "fib_lookup",
    "sock_hash_update",
    "msg_redirect_hash",
    "sk_redirect_hash",
    "lwt_push_encap",
    "lwt_seg6_store_bytes",
    "lwt_seg6_adjust_srh",
    "lwt_seg6_action",
    "rc_repeat",
    "rc_keydown",
    "skb_cgroup_id",
    "get_current_cgroup_id",
    "get_local_storage",
    "sk_select_reuseport",
    "skb_ancestor_cgroup_id",
    "sk_lookup_tcp",
    "sk_lookup_udp",
    "sk_release",
    "map_push_elem",
    "map_pop_elem",
    "map_peek_elem",
    "msg_push_data",
    "msg_pop_data",
    "rc_pointer_rel",
    "spin_lock",
    "spin_unlock",
    "sk_fullsock",
    "tcp_sock",
    "skb_ecn_set_ce",
    "get_listener_sock",
    "skc_lookup_tcp",
    "tcp_check_syncookie",
    "sysctl_get_name",
    "sysctl_get_current_value",
    "sysctl_get_new_value",
    "sysctl_set_new_value",
    "strtol",
    "strtoul",
    "sk_storage_get",
    "sk_storage_delete",
    "send_signal",
    "tcp_gen_syncookie",
    "skb_output",
    "probe_read_user",
    "probe_read_kernel",
    "probe_read_user_str",
    "probe_read_kernel_str",
    "tcp_send_ack",
    "send_signal_thread",
    "jiffies64",
    "read_branch_records",
    "get_ns_current_pid_tgid",
    "xdp_output",
    "get_netns_cookie",
    "get_current_ancestor_cgroup_id",
    "sk_assign",
    "ktime_get_boot_ns",
    "seq_printf",
    "seq_write",
    "sk_cgroup_id",
    "sk_ancestor_cgroup_id",
    "ringbuf_output",
    "ringbuf_reserve",
    "ringbuf_submit",
    "ringbuf_discard",
    "ringbuf_query",
    "csum_level",
    "skc_to_tcp6_sock",
    "skc_to_tcp_sock",
    "skc_to_tcp_timewait_sock",
    "skc_to_tcp_request_sock",
    "skc_to_udp6_sock",
    "get_task_stack",
    "load_hdr_opt",
    "store_hdr_opt",
    "reserve_hdr_opt",
    "inode_storage_get",
    "inode_storage_delete",
    "d_path",
    "copy_from_user",
    "snprintf_btf",
    "seq_printf_btf",
    "skb_cgroup_classid",
    "redirect_neigh",
    "per_cpu_ptr",
    "this_cpu_ptr",
    "redirect_peer",
    "task_storage_get",
    "task_storage_delete",
    "get_current_task_btf",
    "bprm_opts_set",
    "ktime_get_coarse_ns",
    "ima_inode_hash",
    "sock_from_file",
    "check_mtu",
    "for_each_map_elem",
    "snprintf",
    "sys_bpf",
    "btf_find_by_name_kind",
    "sys_close",
    "timer_init",
    "timer_set_callback",
    "timer_start",
    "timer_cancel",
    "get_func_ip",
    "get_attach_cookie",
    "task_pt_regs",
    "get_branch_snapshot",
    "trace_vprintk",
    "skc_to_unix_sock",
    "kallsyms_lookup_name",
    "find_vma",
    "loop",
    "strncmp",
    "get_func_arg",
    "get_func_ret",
    "get_func_arg_cnt",
    "get_retval",
    "set_retval",
    "xdp_get_buff_len",
    "xdp_load_bytes",
    "xdp_store_bytes",
    "copy_from_user_task",
    "skb_set_tstamp",
    "ima_file_hash",
    "kptr_xchg",
    "map_lookup_percpu_elem",
    "skc_to_mptcp_sock",
    "dynptr_from_mem",
    "ringbuf_reserve_dynptr",
    "ringbuf_submit_dynptr",
    "ringbuf_discard_dynptr",
    "dynptr_read",
    "dynptr_write",
    "dynptr_data",
    "tcp_raw_gen_syncookie_ipv4",
    "tcp_raw_gen_syncookie_ipv6",
    "tcp_raw_check_syncookie_ipv4",
    "tcp_raw_check_syncookie_ipv6",
    "ktime_get_tai_ns",
    "user_ringbuf_drain",
];

/// Disassembles typed instructions, one line per instruction, each ending
/// in `\n`; an instruction the kernel would refuse prints raw.
pub fn disassemble(insns: &[Insn]) -> String {
    disassemble_code(&encode_all(insns))
}

/// Disassembles code bytes (little-endian slots). A trailing partial slot
/// is shown raw, padded with zero bytes.
pub fn disassemble_code(code: &[u8]) -> String {
    render(&slots_of(code), &|_| None)
}

fn slots_of(code: &[u8]) -> Vec<RawInsn> {
    code.chunks(RawInsn::SIZE)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            RawInsn::from_bytes(b)
        })
        .collect()
}

/// Renders `slots`; `note(slot)` may append an annotation to a line.
fn render(slots: &[RawInsn], note: &dyn Fn(usize) -> Option<String>) -> String {
    let mut out = String::new();
    let mut slot = 0;
    while slot < slots.len() {
        let decoded = decode(&slots[slot..]);
        let (text, width) = match decoded.and_then(|insn| Some((text(&insn, slot)?, insn.slots())))
        {
            Some(line) => line,
            None => (raw(slots[slot]), 1),
        };
        let _ = write!(out, "{slot:>4}: {text}");
        if let Some(n) = note(slot) {
            let _ = write!(out, " {n}");
        }
        out.push('\n');
        slot += width;
    }
    out
}

fn raw(slot: RawInsn) -> String {
    let mut s = String::from(".insn 0x");
    for b in slot.to_bytes() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `(r6 + 80)` / `(r10 - 8)`.
fn addr(reg: Register, off: i16) -> String {
    let reg = reg.number();
    let off = i32::from(off);
    if off < 0 {
        format!("(r{reg} - {})", -off)
    } else {
        format!("(r{reg} + {off})")
    }
}

/// Jump target slot `<n>` for a relative offset (from the next slot).
fn target(slot: usize, off: i32) -> String {
    format!("{off:+} <{}>", slot as i64 + 1 + i64::from(off))
}

/// The text of a typed instruction at `slot`; `None` for the typed forms
/// the kernel refuses (they print raw, so nothing is hidden).
fn text(insn: &Insn, slot: usize) -> Option<String> {
    Some(match *insn {
        Insn::Alu {
            class,
            op,
            dst,
            src,
        } => alu(class, op, dst, src)?,
        Insn::SignedDiv { class, dst, src } => binary(class, dst, "s/", src),
        Insn::SignedMod { class, dst, src } => binary(class, dst, "s%", src),
        Insn::MovSx {
            class,
            dst,
            src,
            from,
        } => {
            let r = alu_reg_prefix(class);
            let bits = from.bits();
            if bits == 64 || (class == AluClass::Alu32 && bits == 32) {
                return None;
            }
            format!("{r}{} = (s{bits}){r}{}", dst.number(), src.number())
        }
        Insn::AddrSpaceCast { dst, src, imm } => format!(
            "r{} = addr_space_cast(r{}, {}, {})",
            dst.number(),
            src.number(),
            (imm as u32) >> 16,
            imm & 0xffff
        ),
        Insn::Endian { order, dst, width } => {
            let bits = width.bits();
            let r = if bits == 64 { 'r' } else { 'w' };
            let name = match order {
                ByteOrder::ToLe => "le",
                ByteOrder::ToBe => "be",
            };
            let d = dst.number();
            format!("{r}{d} = {name}{bits} {r}{d}")
        }
        Insn::ByteSwap { dst, width } => {
            let d = dst.number();
            format!("r{d} = bswap{} r{d}", width.bits())
        }
        Insn::Load {
            size,
            dst,
            src,
            off,
        } => format!(
            "r{} = *(u{} *){}",
            dst.number(),
            size.bits(),
            addr(src, off)
        ),
        Insn::LoadSx {
            size,
            dst,
            src,
            off,
        } => {
            if size == Size::DW {
                return None;
            }
            format!(
                "r{} = *(s{} *){}",
                dst.number(),
                size.bits(),
                addr(src, off)
            )
        }
        Insn::Store {
            size,
            dst,
            off,
            src,
        } => format!(
            "*(u{} *){} = r{}",
            size.bits(),
            addr(dst, off),
            src.number()
        ),
        Insn::StoreImm {
            size,
            dst,
            off,
            imm,
        } => format!("*(u{} *){} = {imm}", size.bits(), addr(dst, off)),
        Insn::Atomic {
            size,
            op,
            dst,
            src,
            off,
        } => atomic(size, op, dst, src, off)?,
        Insn::LoadAbs { size, imm } if size != Size::DW => {
            format!("r0 = *(u{} *)skb[{imm}]", size.bits())
        }
        Insn::LoadInd { size, src, imm } if size != Size::DW => {
            format!("r0 = *(u{} *)skb[r{} + {imm}]", size.bits(), src.number())
        }
        Insn::LoadAbs { .. } | Insn::LoadInd { .. } => return None,
        Insn::LdImm64 {
            dst,
            kind,
            imm,
            next_imm,
        } => {
            let d = dst.number();
            // Kinds whose second half must be zero print raw otherwise.
            let one_half = |name: &str| (next_imm == 0).then(|| format!("r{d} = {name}[{imm}]"));
            match kind {
                Imm64Kind::Value => {
                    let v = u64::from(next_imm as u32) << 32 | u64::from(imm as u32);
                    format!("r{d} = {v:#x} ll")
                }
                Imm64Kind::MapFd => one_half("map_fd")?,
                Imm64Kind::MapValue => format!("r{d} = map_value[{imm}] + {next_imm}"),
                Imm64Kind::BtfId => one_half("btf_id")?,
                Imm64Kind::Func => one_half("func")?,
                Imm64Kind::MapIdx => one_half("map_idx")?,
                Imm64Kind::MapIdxValue => format!("r{d} = map_idx_value[{imm}] + {next_imm}"),
            }
        }
        Insn::Jump {
            class,
            cond,
            dst,
            src,
            off,
        } => {
            let r = match class {
                JmpClass::Jmp => 'r',
                JmpClass::Jmp32 => 'w',
            };
            let cmp = match cond {
                JmpCond::Jeq => "==",
                JmpCond::Jgt => ">",
                JmpCond::Jge => ">=",
                JmpCond::Jset => "&",
                JmpCond::Jne => "!=",
                JmpCond::Jsgt => "s>",
                JmpCond::Jsge => "s>=",
                JmpCond::Jlt => "<",
                JmpCond::Jle => "<=",
                JmpCond::Jslt => "s<",
                JmpCond::Jsle => "s<=",
            };
            let rhs = match src {
                Operand::Reg(s) => format!("{r}{}", s.number()),
                Operand::Imm(k) => k.to_string(),
            };
            format!(
                "if {r}{} {cmp} {rhs} goto {}",
                dst.number(),
                target(slot, off.into())
            )
        }
        Insn::Ja { off } => format!("goto {}", target(slot, off.into())),
        Insn::GotoLong { imm } => format!("gotol {}", target(slot, imm)),
        Insn::MayGoto { off } => format!("may_goto {}", target(slot, off.into())),
        Insn::Call(CallTarget::Helper(id)) => {
            match usize::try_from(id).ok().and_then(|i| HELPER_NAMES.get(i)) {
                Some(name) => format!("call bpf_{name}#{id}"),
                None => format!("call #{id}"),
            }
        }
        Insn::Call(CallTarget::Local(off)) => format!("call {}", target(slot, off)),
        Insn::Call(CallTarget::Kfunc(id)) => format!("call kfunc#{id}"),
        Insn::Exit => "exit".into(),
    })
}

fn alu_reg_prefix(class: AluClass) -> char {
    match class {
        AluClass::Alu32 => 'w',
        AluClass::Alu64 => 'r',
    }
}

/// `dst sym= src`.
fn binary(class: AluClass, dst: Register, sym: &str, src: Operand) -> String {
    let r = alu_reg_prefix(class);
    let src = match src {
        Operand::Reg(s) => format!("{r}{}", s.number()),
        Operand::Imm(k) => k.to_string(),
    };
    format!("{r}{} {sym}= {src}", dst.number())
}

fn alu(class: AluClass, op: AluOp, dst: Register, src: Operand) -> Option<String> {
    let sym = match op {
        AluOp::Neg => {
            // The kernel's only negation: source K, immediate 0.
            let r = alu_reg_prefix(class);
            let d = dst.number();
            return (src == Operand::Imm(0)).then(|| format!("{r}{d} = -{r}{d}"));
        }
        AluOp::Mov => "",
        AluOp::Add => "+",
        AluOp::Sub => "-",
        AluOp::Mul => "*",
        AluOp::Div => "/",
        AluOp::Or => "|",
        AluOp::And => "&",
        AluOp::Lsh => "<<",
        AluOp::Rsh => ">>",
        AluOp::Mod => "%",
        AluOp::Xor => "^",
        AluOp::Arsh => "s>>",
    };
    Some(binary(class, dst, sym, src))
}

fn atomic(size: Size, op: AtomicOp, dst: Register, src: Register, off: i16) -> Option<String> {
    let bits = size.bits();
    let (d, s) = (dst.number(), src.number());
    let at = addr(dst, off);
    // Read-modify-write atomics exist for 32 and 64 bits only.
    let rmw = bits >= 32;
    let w = if bits == 64 { 'r' } else { 'w' };
    let (sym, name, fetch) = match op {
        AtomicOp::LoadAcquire => {
            return Some(format!(
                "r{d} = load_acquire((u{bits} *){})",
                addr(src, off)
            ))
        }
        AtomicOp::StoreRelease => return Some(format!("store_release((u{bits} *){at}, r{s})")),
        AtomicOp::Xchg => {
            return rmw.then(|| format!("{w}{s} = xchg((u{bits} *){at}, {w}{s})"));
        }
        AtomicOp::Cmpxchg => {
            return rmw.then(|| format!("{w}0 = cmpxchg((u{bits} *){at}, {w}0, {w}{s})"));
        }
        AtomicOp::Add => ("+", "add", false),
        AtomicOp::Or => ("|", "or", false),
        AtomicOp::And => ("&", "and", false),
        AtomicOp::Xor => ("^", "xor", false),
        AtomicOp::FetchAdd => ("+", "add", true),
        AtomicOp::FetchOr => ("|", "or", true),
        AtomicOp::FetchAnd => ("&", "and", true),
        AtomicOp::FetchXor => ("^", "xor", true),
    };
    if !rmw {
        return None;
    }
    Some(if fetch {
        format!("{w}{s} = atomic_fetch_{name}((u{bits} *){at}, {w}{s})")
    } else {
        format!("lock *(u{bits} *){at} {sym}= {w}{s}")
    })
}

/// A function symbol of a program section, as read back from an object.
struct FuncSym {
    name: String,
    global: bool,
    start: u64,
    size: u64,
}

/// Reads an ELF object and prints its license, then each executable section
/// with its functions (by symbol) and their instructions. Slots that carry
/// a relocation are annotated with its target, e.g. `r2 = func[64] <cb>`.
pub fn disassemble_object(bytes: &[u8]) -> Result<String, DisasmError> {
    check_header(bytes)?;
    let read_err = |e: object::Error| DisasmError::Read(e.to_string());
    let file = object::File::parse(bytes).map_err(read_err)?;
    let mut out = String::new();

    if let Some(license) = file.section_by_name(crate::elf::LICENSE_SECTION) {
        let data = license.data().map_err(read_err)?;
        let text = data.split(|&b| b == 0).next().unwrap_or_default();
        let _ = writeln!(out, "license \"{}\"", String::from_utf8_lossy(text));
    }

    for section in file.sections() {
        if section.kind() != object::SectionKind::Text || section.size() == 0 {
            continue;
        }
        let name = section.name().map_err(read_err)?;
        let data = section.data().map_err(read_err)?;
        let mut funcs: Vec<FuncSym> = file
            .symbols()
            .filter(|s| s.section_index() == Some(section.index()))
            .filter(|s| s.kind() == object::SymbolKind::Text)
            .map(|s| FuncSym {
                name: s.name().unwrap_or("?").to_owned(),
                global: s.is_global(),
                start: s.address(),
                size: s.size(),
            })
            .collect();
        funcs.sort_by(|a, b| (a.start, &a.name).cmp(&(b.start, &b.name)));

        // Relocation targets by byte offset in this section.
        let mut relocs = std::collections::BTreeMap::new();
        for (offset, rel) in section.relocations() {
            if let RelocationTarget::Symbol(idx) = rel.target() {
                relocs.insert(offset, idx);
            }
        }

        let _ = writeln!(
            out,
            "\nsection {name} ({} bytes, relocations: {})",
            data.len(),
            relocs.len()
        );
        // Cover the whole section: uncovered byte ranges print as their own
        // unnamed blocks so nothing is hidden.
        let mut blocks = Vec::new();
        let mut pos = 0u64;
        for f in &funcs {
            if f.start > pos {
                blocks.push((None, pos, f.start - pos));
            }
            blocks.push((Some(f), f.start, f.size));
            pos = pos.max(f.start.saturating_add(f.size));
        }
        if pos < data.len() as u64 {
            blocks.push((None, pos, data.len() as u64 - pos));
        }
        for (func, start, size) in blocks {
            let end = start.checked_add(size).filter(|&e| e <= data.len() as u64);
            let Some(end) = end else {
                return Err(DisasmError::Read(format!(
                    "symbol at {start:#x} size {size} overruns section {name}"
                )));
            };
            match func {
                Some(f) => {
                    let bind = if f.global { "global" } else { "local" };
                    let _ = writeln!(out, "{} ({bind}, offset {start}, {size} bytes):", f.name);
                }
                None => {
                    let _ = writeln!(out, "<no symbol> (offset {start}, {size} bytes):");
                }
            }
            let code = &data[start as usize..end as usize];
            let slots = slots_of(code);
            let note = |slot: usize| {
                let at = start + (slot * RawInsn::SIZE) as u64;
                let sym_idx = relocs.get(&at)?;
                let sym = file.symbol_by_index(*sym_idx).ok()?;
                Some(reloc_note(&file, &sym, slots[slot].imm))
            };
            out.push_str(&render(&slots, &note));
        }
    }
    Ok(out)
}

/// `<name>` of the function a relocation points at: a named symbol, or for
/// a section symbol (clang's and lagic's form) the function at
/// `section + imm`, else `<section+imm>`.
fn reloc_note(file: &object::File<'_>, sym: &object::Symbol<'_, '_>, imm: i32) -> String {
    if sym.kind() != object::SymbolKind::Section {
        return format!("<{}>", sym.name().unwrap_or("?"));
    }
    let Some(sec_idx) = sym.section_index() else {
        return "<?>".into();
    };
    let addr = sym.address().wrapping_add(imm as i64 as u64);
    let func = file.symbols().find(|s| {
        s.section_index() == Some(sec_idx)
            && s.kind() == object::SymbolKind::Text
            && s.address() == addr
    });
    match func {
        Some(f) => format!("<{}>", f.name().unwrap_or("?")),
        None => {
            let sec = file
                .section_by_index(sec_idx)
                .ok()
                .and_then(|s| s.name().ok().map(str::to_owned))
                .unwrap_or_else(|| "?".into());
            format!("<{sec}+{imm}>")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: String) -> String {
        text.trim_start()
            .strip_prefix("0: ")
            .unwrap()
            .trim_end()
            .to_owned()
    }

    fn one(insn: Insn) -> String {
        line(disassemble(&[insn]))
    }

    /// The text of one raw slot.
    fn one_raw(slot: RawInsn) -> String {
        line(disassemble_code(&slot.to_bytes()))
    }

    fn raw_insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    #[test]
    fn alu64_and_alu32_ops() {
        let cases = [
            (AluOp::Add, "+="),
            (AluOp::Sub, "-="),
            (AluOp::Mul, "*="),
            (AluOp::Div, "/="),
            (AluOp::Or, "|="),
            (AluOp::And, "&="),
            (AluOp::Lsh, "<<="),
            (AluOp::Rsh, ">>="),
            (AluOp::Mod, "%="),
            (AluOp::Xor, "^="),
            (AluOp::Arsh, "s>>="),
        ];
        for (op, sym) in cases {
            assert_eq!(one(Insn::alu64_imm(op, R1, -7)), format!("r1 {sym} -7"));
            assert_eq!(one(Insn::alu64_reg(op, R2, R3)), format!("r2 {sym} r3"));
            assert_eq!(one(Insn::alu32_imm(op, R4, 9)), format!("w4 {sym} 9"));
            assert_eq!(
                one_raw(raw_insn(BPF_ALU | op.code() | BPF_X, 5, 6, 0, 0)),
                format!("w5 {sym} w6")
            );
        }
        assert_eq!(one(Insn::mov64_imm(R0, 2)), "r0 = 2");
        assert_eq!(one(Insn::mov64_reg(R6, R1)), "r6 = r1");
        assert_eq!(one(Insn::alu32_imm(AluOp::Mov, R1, -1)), "w1 = -1");
        assert_eq!(one(Insn::alu64_imm(AluOp::Neg, R3, 0)), "r3 = -r3");
        assert_eq!(one(Insn::alu32_imm(AluOp::Neg, R3, 0)), "w3 = -w3");
    }

    #[test]
    fn alu_signed_and_sign_extending_forms() {
        assert_eq!(
            one_raw(raw_insn(BPF_ALU64 | BPF_DIV, 1, 0, 1, 3)),
            "r1 s/= 3"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_ALU | BPF_MOD | BPF_X, 1, 2, 1, 0)),
            "w1 s%= w2"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 2, 8, 0)),
            "r1 = (s8)r2"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 2, 32, 0)),
            "r1 = (s32)r2"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_ALU | BPF_MOV | BPF_X, 1, 2, 16, 0)),
            "w1 = (s16)w2"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 2, 1, 1)),
            "r1 = addr_space_cast(r2, 0, 1)"
        );
        // Invalid offsets are not silently dropped.
        assert!(one_raw(raw_insn(BPF_ALU | BPF_MOV | BPF_X, 1, 2, 32, 0)).starts_with(".insn"));
        assert!(one_raw(raw_insn(BPF_ALU64 | BPF_DIV, 1, 0, 2, 3)).starts_with(".insn"));
    }

    #[test]
    fn byte_swaps() {
        assert_eq!(one(Insn::be(R1, SwapWidth::B16)), "w1 = be16 w1");
        assert_eq!(one(Insn::be(R1, SwapWidth::B32)), "w1 = be32 w1");
        assert_eq!(one(Insn::be(R1, SwapWidth::B64)), "r1 = be64 r1");
        assert_eq!(
            one_raw(raw_insn(BPF_ALU | BPF_END | BPF_TO_LE, 2, 0, 0, 16)),
            "w2 = le16 w2"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_ALU64 | BPF_END, 2, 0, 0, 32)),
            "r2 = bswap32 r2"
        );
        assert!(one_raw(raw_insn(BPF_ALU | BPF_END | BPF_TO_BE, 1, 0, 0, 12)).starts_with(".insn"));
    }

    #[test]
    fn loads_and_stores() {
        assert_eq!(
            one(Insn::load(Size::W, R2, R6, 80)),
            "r2 = *(u32 *)(r6 + 80)"
        );
        assert_eq!(one(Insn::load(Size::B, R2, R6, 0)), "r2 = *(u8 *)(r6 + 0)");
        assert_eq!(
            one(Insn::load(Size::H, R2, R6, -2)),
            "r2 = *(u16 *)(r6 - 2)"
        );
        assert_eq!(
            one(Insn::load(Size::DW, R2, R10, -32768)),
            "r2 = *(u64 *)(r10 - 32768)"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_LDX | BPF_MEMSX | BPF_H, 3, 4, 2, 0)),
            "r3 = *(s16 *)(r4 + 2)"
        );
        assert_eq!(
            one(Insn::store_reg(Size::DW, R10, -8, R1)),
            "*(u64 *)(r10 - 8) = r1"
        );
        assert_eq!(
            one(Insn::store_reg(Size::B, R1, 3, R2)),
            "*(u8 *)(r1 + 3) = r2"
        );
        assert_eq!(
            one(Insn::store_imm(Size::W, R10, -4, -1)),
            "*(u32 *)(r10 - 4) = -1"
        );
        assert_eq!(
            one(Insn::store_imm(Size::H, R10, -2, 7)),
            "*(u16 *)(r10 - 2) = 7"
        );
    }

    #[test]
    fn atomics() {
        let a = |size: u8, imm: i32| one_raw(raw_insn(BPF_STX | BPF_ATOMIC | size, 1, 2, 8, imm));
        assert_eq!(a(BPF_DW, 0x00), "lock *(u64 *)(r1 + 8) += r2");
        assert_eq!(a(BPF_W, 0x40), "lock *(u32 *)(r1 + 8) |= w2");
        assert_eq!(a(BPF_DW, 0x50), "lock *(u64 *)(r1 + 8) &= r2");
        assert_eq!(a(BPF_DW, 0xa0), "lock *(u64 *)(r1 + 8) ^= r2");
        assert_eq!(
            a(BPF_DW, 0x01),
            "r2 = atomic_fetch_add((u64 *)(r1 + 8), r2)"
        );
        assert_eq!(a(BPF_W, 0xa1), "w2 = atomic_fetch_xor((u32 *)(r1 + 8), w2)");
        assert_eq!(a(BPF_DW, 0xe1), "r2 = xchg((u64 *)(r1 + 8), r2)");
        assert_eq!(a(BPF_DW, 0xf1), "r0 = cmpxchg((u64 *)(r1 + 8), r0, r2)");
        assert_eq!(a(BPF_B, 0x100), "r1 = load_acquire((u8 *)(r2 + 8))");
        assert_eq!(a(BPF_DW, 0x110), "store_release((u64 *)(r1 + 8), r2)");
        assert!(a(BPF_B, 0x00).starts_with(".insn"), "no 8-bit RMW atomics");
        assert!(a(BPF_DW, 0x33).starts_with(".insn"));
    }

    #[test]
    fn ld_imm64_forms() {
        let pair = Insn::ld_imm64(R1, 0x1234_5678_9abc_def0);
        assert_eq!(disassemble(&[pair]), "   0: r1 = 0x123456789abcdef0 ll\n");
        assert_eq!(disassemble(&[Insn::ld_func(R2, 1)]), "   0: r2 = func[1]\n");
        let map = |kind, next_imm| Insn::LdImm64 {
            dst: R1,
            kind,
            imm: 5,
            next_imm,
        };
        assert_eq!(
            disassemble(&[map(Imm64Kind::MapFd, 0)]),
            "   0: r1 = map_fd[5]\n"
        );
        assert_eq!(
            disassemble(&[map(Imm64Kind::MapValue, 16)]),
            "   0: r1 = map_value[5] + 16\n"
        );
        // A map fd with a second immediate is not hidden behind `map_fd[5]`.
        assert!(disassemble(&[map(Imm64Kind::MapFd, 16)]).starts_with("   0: .insn"));
        // The next instruction is numbered after both slots.
        let prog = [pair, Insn::exit()];
        assert_eq!(
            disassemble(&prog),
            "   0: r1 = 0x123456789abcdef0 ll\n   2: exit\n"
        );
        // A truncated pair is shown raw, not dropped or merged.
        let bytes = encode_all(&[pair]);
        assert_eq!(
            disassemble_code(&bytes[..8]),
            "   0: .insn 0x18010000f0debc9a\n"
        );
    }

    #[test]
    fn legacy_packet_loads() {
        assert_eq!(
            one_raw(raw_insn(BPF_LD | 0x20 | BPF_H, 0, 0, 0, 12)),
            "r0 = *(u16 *)skb[12]"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_LD | 0x40 | BPF_B, 0, 7, 0, 2)),
            "r0 = *(u8 *)skb[r7 + 2]"
        );
    }

    #[test]
    fn jumps() {
        let cases = [
            (JmpCond::Jeq, "=="),
            (JmpCond::Jgt, ">"),
            (JmpCond::Jge, ">="),
            (JmpCond::Jset, "&"),
            (JmpCond::Jne, "!="),
            (JmpCond::Jsgt, "s>"),
            (JmpCond::Jsge, "s>="),
            (JmpCond::Jlt, "<"),
            (JmpCond::Jle, "<="),
            (JmpCond::Jslt, "s<"),
            (JmpCond::Jsle, "s<="),
        ];
        for (op, sym) in cases {
            let prog = [Insn::mov64_imm(R0, 0), Insn::jmp_reg(op, R3, R2, 5)];
            assert_eq!(
                disassemble(&prog),
                format!("   0: r0 = 0\n   1: if r3 {sym} r2 goto +5 <7>\n")
            );
            assert_eq!(
                one(Insn::jmp_imm(op, R1, -1, -1)),
                format!("if r1 {sym} -1 goto -1 <0>")
            );
            assert_eq!(
                one_raw(raw_insn(BPF_JMP32 | op.op().code() | BPF_X, 4, 5, 2, 0)),
                format!("if w4 {sym} w5 goto +2 <3>")
            );
        }
        assert_eq!(one(Insn::ja(3)), "goto +3 <4>");
        assert_eq!(
            one_raw(raw_insn(BPF_JMP32 | BPF_JA, 0, 0, 0, 70000)),
            "gotol +70000 <70001>"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_JMP | 0xe0, 0, 0, 4, 0)),
            "may_goto +4 <5>"
        );
    }

    #[test]
    fn calls_and_exit() {
        assert_eq!(
            one(Insn::call_helper(helper::BPF_FUNC_LOOP)),
            "call bpf_loop#181"
        );
        assert_eq!(
            one(Insn::call_helper(helper::BPF_FUNC_SKB_PULL_DATA)),
            "call bpf_skb_pull_data#39"
        );
        assert_eq!(
            one(Insn::call_helper(helper::BPF_FUNC_SKB_LOAD_BYTES)),
            "call bpf_skb_load_bytes#26"
        );
        assert_eq!(one(Insn::call_helper(100_000)), "call #100000");
        assert_eq!(
            one_raw(raw_insn(BPF_JMP | BPF_CALL, 0, 1, 0, 4)),
            "call +4 <5>"
        );
        assert_eq!(
            one_raw(raw_insn(BPF_JMP | BPF_CALL, 0, 2, 0, 77)),
            "call kfunc#77"
        );
        assert_eq!(one(Insn::exit()), "exit");
    }

    #[test]
    fn unknown_encodings_render_raw() {
        for insn in [
            raw_insn(0xff, 1, 2, 3, 4),
            raw_insn(BPF_JMP32 | BPF_CALL, 0, 0, 0, 1),
            raw_insn(BPF_JMP32 | BPF_EXIT, 0, 0, 0, 0),
            raw_insn(BPF_ALU64 | 0xe0, 1, 0, 0, 0),
            raw_insn(BPF_JMP | 0xf0, 1, 0, 0, 0),
            raw_insn(BPF_ST | 0x20 | BPF_W, 1, 0, 0, 0),
        ] {
            let text = one_raw(insn);
            let hex: String = insn.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(text, format!(".insn 0x{hex}"));
        }
        assert_eq!(
            one_raw(raw_insn(0xff, 1, 2, 3, 4)),
            ".insn 0xff21030004000000"
        );
    }

    #[test]
    fn reserved_fields_and_refused_forms_render_raw() {
        for slot in [
            raw_insn(BPF_ALU64 | BPF_ADD, 1, 2, 0, 5), // K form with a source register
            raw_insn(BPF_ALU64 | BPF_ADD | BPF_X, 1, 2, 0, 5), // X form with an immediate
            raw_insn(BPF_ALU64 | BPF_MOV, 11, 0, 0, 0), // no r11
            raw_insn(BPF_ALU64 | BPF_NEG, 3, 0, 0, 5), // negation ignores no immediate
            raw_insn(BPF_JMP | BPF_CALL | BPF_X, 0, 0, 0, 1),
            raw_insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 1),
            raw_insn(BPF_LDX | BPF_MEMSX | BPF_DW, 1, 2, 0, 0),
        ] {
            let hex: String = slot.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(one_raw(slot), format!(".insn 0x{hex}"), "{slot:?}");
        }
    }

    #[test]
    fn object_read_errors_are_typed() {
        assert_eq!(disassemble_object(b"not an elf"), Err(DisasmError::NotElf));
        let module = crate::Module {
            entry: crate::Function {
                name: "entry".into(),
                insns: vec![Insn::mov64_imm(R0, 0), Insn::exit()],
            },
            callbacks: vec![],
            license: "GPL".into(),
            maps: Vec::new(),
            rodata: Vec::new(),
        };
        let object = module.write_elf().unwrap();
        assert!(disassemble_object(&object).is_ok());
        let patched = |at: usize, bytes: &[u8]| {
            let mut o = object.clone();
            o[at..at + bytes.len()].copy_from_slice(bytes);
            disassemble_object(&o)
        };
        // EM_X86_64, ET_EXEC, 32-bit, big-endian versions of the same object.
        assert_eq!(
            patched(18, &62u16.to_le_bytes()),
            Err(DisasmError::NotBpf { machine: 62 })
        );
        assert_eq!(
            patched(16, &2u16.to_le_bytes()),
            Err(DisasmError::NotRelocatable { elf_type: 2 })
        );
        assert_eq!(patched(4, &[1]), Err(DisasmError::NotElf64 { class: 1 }));
        assert_eq!(
            patched(5, &[2]),
            Err(DisasmError::NotLittleEndian { data: 2 })
        );
        assert!(matches!(
            disassemble_object(&object[..200]),
            Err(DisasmError::Read(_))
        ));
    }

    /// A real executable of the host (this test binary) is refused, not
    /// printed as eBPF.
    #[test]
    fn a_host_executable_is_not_disassembled() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(&exe[..4], b"\x7fELF", "the test binary is ELF");
        let machine = u16::from_le_bytes([exe[18], exe[19]]);
        assert_ne!(machine, 247);
        assert_eq!(
            disassemble_object(&exe),
            Err(DisasmError::NotBpf { machine })
        );
    }
}
