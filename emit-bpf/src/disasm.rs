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

use std::fmt::Write as _;

use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

use crate::elf::ElfError;
use crate::insn::*;

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

// Encodings lagic does not emit, so they live here rather than in `insn`.
const BPF_ABS: u8 = 0x20;
const BPF_IND: u8 = 0x40;
const BPF_MEMSX: u8 = 0x80;
const BPF_ATOMIC: u8 = 0xc0;
const BPF_FETCH: i32 = 0x01;
const BPF_XCHG: i32 = 0xe0 | BPF_FETCH;
const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;
const BPF_LOAD_ACQ: i32 = 0x100;
const BPF_STORE_REL: i32 = 0x110;
const BPF_JCOND: u8 = 0xe0;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_PSEUDO_MAP_VALUE: u8 = 2;
const BPF_PSEUDO_BTF_ID: u8 = 3;
const BPF_PSEUDO_MAP_IDX: u8 = 5;
const BPF_PSEUDO_MAP_IDX_VALUE: u8 = 6;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;

/// Disassembles `insns`, one line per instruction, each ending in `\n`.
pub fn disassemble(insns: &[Insn]) -> String {
    render(insns, &|_| None)
}

/// Renders `insns`; `note(slot)` may append an annotation to a line.
fn render(insns: &[Insn], note: &dyn Fn(usize) -> Option<String>) -> String {
    let mut out = String::new();
    let mut slot = 0;
    while slot < insns.len() {
        let (text, width) = render_one(insns, slot);
        let _ = write!(out, "{slot:>4}: {text}");
        if let Some(n) = note(slot) {
            let _ = write!(out, " {n}");
        }
        out.push('\n');
        slot += width;
    }
    out
}

fn raw(insn: Insn) -> String {
    let mut s = String::from(".insn 0x");
    for b in insn.to_bytes() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn size_bits(code: u8) -> u32 {
    match code & 0x18 {
        BPF_B => 8,
        BPF_H => 16,
        BPF_W => 32,
        _ => 64,
    }
}

/// `(r6 + 80)` / `(r10 - 8)`.
fn addr(reg: u8, off: i16) -> String {
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

/// Renders the instruction at `slot`; returns its text and slot count.
fn render_one(insns: &[Insn], slot: usize) -> (String, usize) {
    let insn = insns[slot];
    let text = match insn.class() {
        BPF_LD if insn.is_ld_imm64() => {
            return match insns.get(slot + 1) {
                Some(&next) if next.code == 0 => match ld_imm64(insn, next) {
                    Some(t) => (t, 2),
                    None => (raw(insn), 1),
                },
                _ => (raw(insn), 1),
            };
        }
        BPF_LD => ld_legacy(insn),
        BPF_LDX => ldx(insn),
        BPF_ST => st(insn),
        BPF_STX => stx(insn),
        BPF_ALU | BPF_ALU64 => alu(insn),
        _ => jmp(insn, slot),
    };
    (text.unwrap_or_else(|| raw(insn)), 1)
}

fn ld_imm64(insn: Insn, next: Insn) -> Option<String> {
    let d = insn.dst;
    let imm = insn.imm;
    Some(match insn.src {
        0 => {
            let v = u64::from(next.imm as u32) << 32 | u64::from(imm as u32);
            format!("r{d} = {v:#x} ll")
        }
        BPF_PSEUDO_MAP_FD => format!("r{d} = map_fd[{imm}]"),
        BPF_PSEUDO_MAP_VALUE => format!("r{d} = map_value[{imm}] + {}", next.imm),
        BPF_PSEUDO_BTF_ID => format!("r{d} = btf_id[{imm}]"),
        BPF_PSEUDO_FUNC => format!("r{d} = func[{imm}]"),
        BPF_PSEUDO_MAP_IDX => format!("r{d} = map_idx[{imm}]"),
        BPF_PSEUDO_MAP_IDX_VALUE => format!("r{d} = map_idx_value[{imm}] + {}", next.imm),
        _ => return None,
    })
}

/// Legacy packet loads (`LD_ABS`, `LD_IND`); they always load into r0.
fn ld_legacy(insn: Insn) -> Option<String> {
    if insn.code & 0x18 == BPF_DW {
        return None;
    }
    let bits = size_bits(insn.code);
    match insn.code & 0xe0 {
        BPF_ABS => Some(format!("r0 = *(u{bits} *)skb[{}]", insn.imm)),
        BPF_IND => Some(format!(
            "r0 = *(u{bits} *)skb[r{} + {}]",
            insn.src, insn.imm
        )),
        _ => None,
    }
}

fn ldx(insn: Insn) -> Option<String> {
    let bits = size_bits(insn.code);
    let sign = match insn.code & 0xe0 {
        BPF_MEM => 'u',
        BPF_MEMSX if bits < 64 => 's',
        _ => return None,
    };
    Some(format!(
        "r{} = *({sign}{bits} *){}",
        insn.dst,
        addr(insn.src, insn.off)
    ))
}

fn st(insn: Insn) -> Option<String> {
    if insn.code & 0xe0 != BPF_MEM {
        return None;
    }
    Some(format!(
        "*(u{} *){} = {}",
        size_bits(insn.code),
        addr(insn.dst, insn.off),
        insn.imm
    ))
}

fn stx(insn: Insn) -> Option<String> {
    let bits = size_bits(insn.code);
    let (d, s) = (insn.dst, insn.src);
    let at = addr(d, insn.off);
    match insn.code & 0xe0 {
        BPF_MEM => Some(format!("*(u{bits} *){at} = r{s}")),
        BPF_ATOMIC => {
            // Read-modify-write atomics exist for 32 and 64 bits only.
            let rmw = bits >= 32;
            let w = if bits == 64 { 'r' } else { 'w' };
            let op = match insn.imm & !BPF_FETCH {
                0x00 => Some(("+", "add")),
                0x40 => Some(("|", "or")),
                0x50 => Some(("&", "and")),
                0xa0 => Some(("^", "xor")),
                _ => None,
            };
            match (insn.imm, op) {
                (BPF_LOAD_ACQ, _) => Some(format!(
                    "r{d} = load_acquire((u{bits} *){})",
                    addr(s, insn.off)
                )),
                (BPF_STORE_REL, _) => Some(format!("store_release((u{bits} *){at}, r{s})")),
                (BPF_XCHG, _) if rmw => Some(format!("{w}{s} = xchg((u{bits} *){at}, {w}{s})")),
                (BPF_CMPXCHG, _) if rmw => {
                    Some(format!("{w}0 = cmpxchg((u{bits} *){at}, {w}0, {w}{s})"))
                }
                (imm, Some((sym, _))) if rmw && imm & BPF_FETCH == 0 => {
                    Some(format!("lock *(u{bits} *){at} {sym}= {w}{s}"))
                }
                (_, Some((_, name))) if rmw => Some(format!(
                    "{w}{s} = atomic_fetch_{name}((u{bits} *){at}, {w}{s})"
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

fn alu(insn: Insn) -> Option<String> {
    let is64 = insn.class() == BPF_ALU64;
    let r = if is64 { 'r' } else { 'w' };
    let op = insn.code & 0xf0;
    let from_reg = insn.code & BPF_X != 0;
    let (d, s, imm) = (insn.dst, insn.src, insn.imm);
    let src = if from_reg {
        format!("{r}{s}")
    } else {
        imm.to_string()
    };
    let sym = match op {
        BPF_END => {
            if !matches!(imm, 16 | 32 | 64) {
                return None;
            }
            let rd = if imm == 64 { 'r' } else { 'w' };
            return Some(match (is64, from_reg) {
                (false, false) => format!("{rd}{d} = le{imm} {rd}{d}"),
                (false, true) => format!("{rd}{d} = be{imm} {rd}{d}"),
                (true, false) => format!("r{d} = bswap{imm} r{d}"),
                (true, true) => return None,
            });
        }
        BPF_NEG => return (!from_reg).then(|| format!("{r}{d} = -{r}{d}")),
        BPF_MOV => {
            return match (insn.off, from_reg) {
                (0, _) => Some(format!("{r}{d} = {src}")),
                (8 | 16 | 32, true) if is64 || insn.off < 32 => {
                    Some(format!("{r}{d} = (s{}){r}{s}", insn.off))
                }
                (1, true) if is64 => Some(format!(
                    "r{d} = addr_space_cast(r{s}, {}, {})",
                    (imm as u32) >> 16,
                    imm & 0xffff
                )),
                _ => None,
            };
        }
        BPF_DIV | BPF_MOD => {
            let base = if op == BPF_DIV { "/" } else { "%" };
            match insn.off {
                0 => base.to_string(),
                1 => format!("s{base}"),
                _ => return None,
            }
        }
        BPF_ADD => "+".into(),
        BPF_SUB => "-".into(),
        BPF_MUL => "*".into(),
        BPF_OR => "|".into(),
        BPF_AND => "&".into(),
        BPF_LSH => "<<".into(),
        BPF_RSH => ">>".into(),
        BPF_XOR => "^".into(),
        BPF_ARSH => "s>>".into(),
        _ => return None,
    };
    Some(format!("{r}{d} {sym}= {src}"))
}

fn jmp(insn: Insn, slot: usize) -> Option<String> {
    let is32 = insn.class() == BPF_JMP32;
    let r = if is32 { 'w' } else { 'r' };
    let op = insn.code & 0xf0;
    let from_reg = insn.code & BPF_X != 0;
    let (d, s) = (insn.dst, insn.src);
    let cmp = match op {
        BPF_JA if is32 => return Some(format!("gotol {}", target(slot, insn.imm))),
        BPF_JA => return Some(format!("goto {}", target(slot, insn.off.into()))),
        BPF_CALL if is32 => return None,
        BPF_CALL => {
            return match insn.src {
                0 => Some(
                    match usize::try_from(insn.imm)
                        .ok()
                        .and_then(|i| HELPER_NAMES.get(i))
                    {
                        Some(name) => format!("call bpf_{name}#{}", insn.imm),
                        None => format!("call #{}", insn.imm),
                    },
                ),
                BPF_PSEUDO_CALL => Some(format!("call {}", target(slot, insn.imm))),
                BPF_PSEUDO_KFUNC_CALL => Some(format!("call kfunc#{}", insn.imm)),
                _ => None,
            };
        }
        BPF_EXIT if !is32 => return Some("exit".into()),
        BPF_JCOND if !is32 && insn.src == 0 => {
            return Some(format!("may_goto {}", target(slot, insn.off.into())))
        }
        BPF_JEQ => "==",
        BPF_JGT => ">",
        BPF_JGE => ">=",
        BPF_JSET => "&",
        BPF_JNE => "!=",
        BPF_JSGT => "s>",
        BPF_JSGE => "s>=",
        BPF_JLT => "<",
        BPF_JLE => "<=",
        BPF_JSLT => "s<",
        BPF_JSLE => "s<=",
        _ => return None,
    };
    let rhs = if from_reg {
        format!("{r}{s}")
    } else {
        insn.imm.to_string()
    };
    Some(format!(
        "if {r}{d} {cmp} {rhs} goto {}",
        target(slot, insn.off.into())
    ))
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
pub fn disassemble_object(bytes: &[u8]) -> Result<String, ElfError> {
    let read_err = |e: object::Error| ElfError::Read(e.to_string());
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
            pos = pos.max(f.start + f.size);
        }
        if pos < data.len() as u64 {
            blocks.push((None, pos, data.len() as u64 - pos));
        }
        for (func, start, size) in blocks {
            let end = start.checked_add(size).filter(|&e| e <= data.len() as u64);
            let Some(end) = end else {
                return Err(ElfError::Read(format!(
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
            let insns: Vec<Insn> = code
                .chunks(Insn::SIZE)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..c.len()].copy_from_slice(c);
                    Insn::from_bytes(b)
                })
                .collect();
            let note = |slot: usize| {
                let at = start + (slot * Insn::SIZE) as u64;
                let sym_idx = relocs.get(&at)?;
                let sym = file.symbol_by_index(*sym_idx).ok()?;
                Some(reloc_note(&file, &sym, insns[slot]))
            };
            out.push_str(&render(&insns, &note));
        }
    }
    Ok(out)
}

/// `<name>` of the function a relocation points at: a named symbol, or for
/// a section symbol (clang's and lagic's form) the function at
/// `section + imm`, else `<section+imm>`.
fn reloc_note(file: &object::File<'_>, sym: &object::Symbol<'_, '_>, insn: Insn) -> String {
    if sym.kind() != object::SymbolKind::Section {
        return format!("<{}>", sym.name().unwrap_or("?"));
    }
    let Some(sec_idx) = sym.section_index() else {
        return "<?>".into();
    };
    let addr = sym.address().wrapping_add(insn.imm as i64 as u64);
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
            format!("<{sec}+{}>", insn.imm)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(insn: Insn) -> String {
        let text = disassemble(&[insn]);
        text.trim_start()
            .strip_prefix("0: ")
            .unwrap()
            .trim_end()
            .to_owned()
    }

    fn raw_insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
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
            (BPF_ADD, "+="),
            (BPF_SUB, "-="),
            (BPF_MUL, "*="),
            (BPF_DIV, "/="),
            (BPF_OR, "|="),
            (BPF_AND, "&="),
            (BPF_LSH, "<<="),
            (BPF_RSH, ">>="),
            (BPF_MOD, "%="),
            (BPF_XOR, "^="),
            (BPF_ARSH, "s>>="),
        ];
        for (op, sym) in cases {
            assert_eq!(one(Insn::alu64_imm(op, R1, -7)), format!("r1 {sym} -7"));
            assert_eq!(one(Insn::alu64_reg(op, R2, R3)), format!("r2 {sym} r3"));
            assert_eq!(one(Insn::alu32_imm(op, R4, 9)), format!("w4 {sym} 9"));
            assert_eq!(
                one(raw_insn(BPF_ALU | op | BPF_X, 5, 6, 0, 0)),
                format!("w5 {sym} w6")
            );
        }
        assert_eq!(one(Insn::mov64_imm(R0, 2)), "r0 = 2");
        assert_eq!(one(Insn::mov64_reg(R6, R1)), "r6 = r1");
        assert_eq!(one(Insn::alu32_imm(BPF_MOV, R1, -1)), "w1 = -1");
        assert_eq!(one(Insn::alu64_imm(BPF_NEG, R3, 0)), "r3 = -r3");
        assert_eq!(one(Insn::alu32_imm(BPF_NEG, R3, 0)), "w3 = -w3");
    }

    #[test]
    fn alu_signed_and_sign_extending_forms() {
        assert_eq!(one(raw_insn(BPF_ALU64 | BPF_DIV, 1, 0, 1, 3)), "r1 s/= 3");
        assert_eq!(
            one(raw_insn(BPF_ALU | BPF_MOD | BPF_X, 1, 2, 1, 0)),
            "w1 s%= w2"
        );
        assert_eq!(
            one(raw_insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 2, 8, 0)),
            "r1 = (s8)r2"
        );
        assert_eq!(
            one(raw_insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 2, 32, 0)),
            "r1 = (s32)r2"
        );
        assert_eq!(
            one(raw_insn(BPF_ALU | BPF_MOV | BPF_X, 1, 2, 16, 0)),
            "w1 = (s16)w2"
        );
        assert_eq!(
            one(raw_insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 2, 1, 1)),
            "r1 = addr_space_cast(r2, 0, 1)"
        );
        // Invalid offsets are not silently dropped.
        assert!(one(raw_insn(BPF_ALU | BPF_MOV | BPF_X, 1, 2, 32, 0)).starts_with(".insn"));
        assert!(one(raw_insn(BPF_ALU64 | BPF_DIV, 1, 0, 2, 3)).starts_with(".insn"));
    }

    #[test]
    fn byte_swaps() {
        assert_eq!(one(Insn::be(R1, 16)), "w1 = be16 w1");
        assert_eq!(one(Insn::be(R1, 32)), "w1 = be32 w1");
        assert_eq!(one(Insn::be(R1, 64)), "r1 = be64 r1");
        assert_eq!(
            one(raw_insn(BPF_ALU | BPF_END | BPF_TO_LE, 2, 0, 0, 16)),
            "w2 = le16 w2"
        );
        assert_eq!(
            one(raw_insn(BPF_ALU64 | BPF_END, 2, 0, 0, 32)),
            "r2 = bswap32 r2"
        );
        assert!(one(Insn::be(R1, 12)).starts_with(".insn"));
    }

    #[test]
    fn loads_and_stores() {
        assert_eq!(one(Insn::load(BPF_W, R2, R6, 80)), "r2 = *(u32 *)(r6 + 80)");
        assert_eq!(one(Insn::load(BPF_B, R2, R6, 0)), "r2 = *(u8 *)(r6 + 0)");
        assert_eq!(one(Insn::load(BPF_H, R2, R6, -2)), "r2 = *(u16 *)(r6 - 2)");
        assert_eq!(
            one(Insn::load(BPF_DW, R2, R10, -32768)),
            "r2 = *(u64 *)(r10 - 32768)"
        );
        assert_eq!(
            one(raw_insn(BPF_LDX | BPF_MEMSX | BPF_H, 3, 4, 2, 0)),
            "r3 = *(s16 *)(r4 + 2)"
        );
        assert_eq!(
            one(Insn::store_reg(BPF_DW, R10, -8, R1)),
            "*(u64 *)(r10 - 8) = r1"
        );
        assert_eq!(
            one(Insn::store_reg(BPF_B, R1, 3, R2)),
            "*(u8 *)(r1 + 3) = r2"
        );
        assert_eq!(
            one(Insn::store_imm(BPF_W, R10, -4, -1)),
            "*(u32 *)(r10 - 4) = -1"
        );
        assert_eq!(
            one(Insn::store_imm(BPF_H, R10, -2, 7)),
            "*(u16 *)(r10 - 2) = 7"
        );
    }

    #[test]
    fn atomics() {
        let a = |size: u8, imm: i32| one(raw_insn(BPF_STX | BPF_ATOMIC | size, 1, 2, 8, imm));
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
        assert_eq!(disassemble(&pair), "   0: r1 = 0x123456789abcdef0 ll\n");
        assert_eq!(disassemble(&Insn::ld_func(R2, 1)), "   0: r2 = func[1]\n");
        let mut map = Insn::ld_imm64(R1, 5);
        map[0].src = 1;
        assert_eq!(disassemble(&map), "   0: r1 = map_fd[5]\n");
        map[0].src = 2;
        map[1].imm = 16;
        assert_eq!(disassemble(&map), "   0: r1 = map_value[5] + 16\n");
        // The next instruction is numbered after both slots.
        let mut prog = pair.to_vec();
        prog.push(Insn::exit());
        assert_eq!(
            disassemble(&prog),
            "   0: r1 = 0x123456789abcdef0 ll\n   2: exit\n"
        );
        // A truncated pair is shown raw, not dropped or merged.
        assert_eq!(disassemble(&pair[..1]), "   0: .insn 0x18010000f0debc9a\n");
    }

    #[test]
    fn legacy_packet_loads() {
        assert_eq!(
            one(raw_insn(BPF_LD | 0x20 | BPF_H, 0, 0, 0, 12)),
            "r0 = *(u16 *)skb[12]"
        );
        assert_eq!(
            one(raw_insn(BPF_LD | 0x40 | BPF_B, 0, 7, 0, 2)),
            "r0 = *(u8 *)skb[r7 + 2]"
        );
    }

    #[test]
    fn jumps() {
        let cases = [
            (BPF_JEQ, "=="),
            (BPF_JGT, ">"),
            (BPF_JGE, ">="),
            (BPF_JSET, "&"),
            (BPF_JNE, "!="),
            (BPF_JSGT, "s>"),
            (BPF_JSGE, "s>="),
            (BPF_JLT, "<"),
            (BPF_JLE, "<="),
            (BPF_JSLT, "s<"),
            (BPF_JSLE, "s<="),
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
                one(raw_insn(BPF_JMP32 | op | BPF_X, 4, 5, 2, 0)),
                format!("if w4 {sym} w5 goto +2 <3>")
            );
        }
        assert_eq!(one(Insn::ja(3)), "goto +3 <4>");
        assert_eq!(
            one(raw_insn(BPF_JMP32 | BPF_JA, 0, 0, 0, 70000)),
            "gotol +70000 <70001>"
        );
        assert_eq!(one(raw_insn(BPF_JMP | 0xe0, 0, 0, 4, 0)), "may_goto +4 <5>");
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
        assert_eq!(one(raw_insn(BPF_JMP | BPF_CALL, 0, 1, 0, 4)), "call +4 <5>");
        assert_eq!(
            one(raw_insn(BPF_JMP | BPF_CALL, 0, 2, 0, 77)),
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
            let text = one(insn);
            let hex: String = insn.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(text, format!(".insn 0x{hex}"));
        }
        assert_eq!(one(raw_insn(0xff, 1, 2, 3, 4)), ".insn 0xff21030004000000");
    }

    #[test]
    fn object_read_errors_are_typed() {
        assert!(matches!(
            disassemble_object(b"not an elf"),
            Err(ElfError::Read(_))
        ));
    }
}
