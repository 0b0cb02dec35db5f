//! Kernel tests of the loader and the BPF_PROG_TEST_RUN runner, on tiny hand-encoded
//! programs (raw loads) and on a hand-written ELF object (the Aya path). Diode verdicts of
//! compiled specs are tested elsewhere; here only the runner itself.

use lagic_loader::packet::Frame;
use lagic_loader::testing::require_bpf;
use lagic_loader::{tcp_frame, IpVersion, LoadError, LoadedProgram, RunError, Verdict};

/// Encodes one eBPF instruction (`struct bpf_insn`, little-endian host).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[0] = code;
    out[1] = (src << 4) | (dst & 0x0F);
    out[2..4].copy_from_slice(&off.to_le_bytes());
    out[4..8].copy_from_slice(&imm.to_le_bytes());
    out
}

fn program(insns: &[[u8; 8]]) -> Vec<u8> {
    insns.concat()
}

// Opcodes, named as in linux/bpf.h (class | op | source).
const MOV64_IMM: u8 = 0x07 | 0xb0; // BPF_ALU64 | BPF_MOV | BPF_K
const MOV64_REG: u8 = 0x07 | 0xb0 | 0x08; // BPF_ALU64 | BPF_MOV | BPF_X
const ADD64_IMM: u8 = 0x07; // BPF_ALU64 | BPF_ADD | BPF_K
const LDXW: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LDXB: u8 = 0x71; // BPF_LDX | BPF_MEM | BPF_B
const JGT_IMM: u8 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JGT_REG: u8 = 0x2d; // BPF_JMP | BPF_JGT | BPF_X
const JNE_IMM: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// struct __sk_buff offsets.
const SKB_LEN: i16 = 0;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;

fn return_const(value: i32) -> Vec<u8> {
    program(&[insn(MOV64_IMM, 0, 0, 0, value), insn(EXIT, 0, 0, 0, 0)])
}

/// Drops frames longer than `limit` bytes (`skb->len`), passes the rest.
fn drop_longer_than(limit: i32) -> Vec<u8> {
    program(&[
        insn(LDXW, 2, 1, SKB_LEN, 0),
        insn(MOV64_IMM, 0, 0, 0, 0),
        insn(JGT_IMM, 2, 0, 1, limit),
        insn(EXIT, 0, 0, 0, 0),
        insn(MOV64_IMM, 0, 0, 0, 2),
        insn(EXIT, 0, 0, 0, 0),
    ])
}

/// Drops a frame whose byte 14 (the first IP byte) is 0x45, by direct packet access.
fn drop_plain_ipv4_header() -> Vec<u8> {
    program(&[
        insn(LDXW, 2, 1, SKB_DATA, 0),
        insn(LDXW, 3, 1, SKB_DATA_END, 0),
        insn(MOV64_IMM, 0, 0, 0, 0),
        insn(MOV64_REG, 4, 2, 0, 0),
        insn(ADD64_IMM, 4, 0, 0, 15),
        insn(JGT_REG, 4, 3, 3, 0), // data + 15 > data_end: pass
        insn(LDXB, 5, 2, 14, 0),
        insn(JNE_IMM, 5, 0, 1, 0x45),
        insn(MOV64_IMM, 0, 0, 0, 2),
        insn(EXIT, 0, 0, 0, 0),
    ])
}

#[test]
fn constant_programs_give_their_verdicts() {
    if !require_bpf() {
        return;
    }
    let frame = tcp_frame(b"hello", IpVersion::V4);
    let drop = LoadedProgram::from_insns("drop_all", &return_const(2)).unwrap();
    let pass = LoadedProgram::from_insns("pass_all", &return_const(0)).unwrap();
    assert_eq!(drop.run(&frame).unwrap().verdict, Verdict::Drop);
    assert_eq!(pass.run(&frame).unwrap().verdict, Verdict::Pass);
    assert_eq!(drop.name(), "drop_all");
}

#[test]
fn other_return_values_are_errors_but_visible_raw() {
    if !require_bpf() {
        return;
    }
    let frame = tcp_frame(b"", IpVersion::V6);
    for value in [1, 3, -1] {
        let prog = LoadedProgram::from_insns("odd_retval", &return_const(value)).unwrap();
        match prog.run(&frame) {
            Err(RunError::UnexpectedRetval { retval }) => assert_eq!(retval, value as u32),
            other => panic!("retval {value}: expected UnexpectedRetval, got {other:?}"),
        }
        assert_eq!(prog.run_raw(&frame).unwrap().retval, value as u32);
    }
}

#[test]
fn skb_len_program_sees_the_frame_length() {
    if !require_bpf() {
        return;
    }
    let prog = LoadedProgram::from_insns("len_gate", &drop_longer_than(100)).unwrap();
    for (payload_len, expected) in [(0, Verdict::Pass), (46, Verdict::Pass), (47, Verdict::Drop)] {
        let frame = tcp_frame(&vec![b'x'; payload_len], IpVersion::V4);
        // 14 + 20 + 20 + 46 = 100 bytes: the last one that passes.
        assert_eq!(
            prog.run(&frame).unwrap().verdict,
            expected,
            "frame of {} bytes",
            frame.len()
        );
    }
}

#[test]
fn direct_packet_access_reads_the_frame_bytes() {
    if !require_bpf() {
        return;
    }
    let prog = LoadedProgram::from_insns("ihl5_gate", &drop_plain_ipv4_header()).unwrap();
    let plain = Frame::ipv4().payload(b"x").build();
    let with_options = Frame::ipv4()
        .ip_options(&[1, 1, 1, 1])
        .payload(b"x")
        .build();
    let v6 = tcp_frame(b"x", IpVersion::V6);
    assert_eq!(prog.run(&plain).unwrap().verdict, Verdict::Drop);
    assert_eq!(prog.run(&with_options).unwrap().verdict, Verdict::Pass);
    assert_eq!(prog.run(&v6).unwrap().verdict, Verdict::Pass);
    // A frame of an IPv6 header alone: the bounds check passes, byte 14 is 0x60.
    assert_eq!(prog.run(&v6[..54]).unwrap().verdict, Verdict::Pass);
    // An ARP frame cut after its Ethernet header: the bounds check fails, so it passes.
    let arp = Frame::arp().build();
    assert_eq!(prog.run(&arp[..14]).unwrap().verdict, Verdict::Pass);
    // The kernel refuses IPv4 frames shorter than a whole IPv4 header.
    match prog.run(&plain[..33]) {
        Err(
            err @ RunError::FrameTooShort {
                len: 33, min: 34, ..
            },
        ) => {
            assert!(err.to_string().contains("IPv4"), "{err}")
        }
        other => panic!("expected FrameTooShort, got {other:?}"),
    }
}

#[test]
fn frame_size_limits_are_clear_errors() {
    if !require_bpf() {
        return;
    }
    let prog = LoadedProgram::from_insns("len_gate", &drop_longer_than(3000)).unwrap();
    let max = lagic_loader::MAX_TEST_RUN_FRAME;
    assert_eq!(prog.run(&vec![0u8; max]).unwrap().verdict, Verdict::Drop);
    assert_eq!(prog.run(&[0u8; 14]).unwrap().verdict, Verdict::Pass);
    match prog.run(&vec![0u8; max + 1]) {
        Err(err @ RunError::FrameTooLarge { len, max: m }) => {
            assert_eq!((len, m), (max + 1, 3712));
            assert!(err.to_string().contains("3712"), "{err}");
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    match prog.run(&[0u8; 13]) {
        Err(RunError::FrameTooShort {
            len: 13, min: 14, ..
        }) => {}
        other => panic!("expected FrameTooShort, got {other:?}"),
    }
}

#[test]
fn verifier_rejection_carries_the_log() {
    if !require_bpf() {
        return;
    }
    // r0 = r3; exit: r3 is never written.
    let bad = program(&[insn(MOV64_REG, 0, 3, 0, 0), insn(EXIT, 0, 0, 0, 0)]);
    match LoadedProgram::from_insns("bad_read", &bad) {
        Err(LoadError::Rejected {
            name,
            errno,
            verifier_log,
        }) => {
            assert_eq!(name, "bad_read");
            assert_eq!(errno.raw_os_error(), Some(libc::EACCES));
            assert!(verifier_log.contains("R3 !read_ok"), "log: {verifier_log}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    match LoadedProgram::from_insns("short", &[0u8; 12]) {
        Err(LoadError::BadInstructionLength { len: 12 }) => {}
        other => panic!("expected BadInstructionLength, got {other:?}"),
    }
}

#[test]
fn stats_report_verified_and_translated_instructions() {
    if !require_bpf() {
        return;
    }
    let prog = LoadedProgram::from_insns("len_gate", &drop_longer_than(100)).unwrap();
    let stats = prog.stats().unwrap();
    // Two paths through six instructions: 1 + 1 + 1 + (1) + (1 + 1) walked = 6 at least.
    assert!(
        (5..=20).contains(&stats.verified_insns),
        "verified {}",
        stats.verified_insns
    );
    assert!(stats.xlated_insns >= 6, "xlated {}", stats.xlated_insns);
    assert!(stats.id > 0);
    assert_eq!(prog.verified_insns().unwrap(), stats.verified_insns);
    eprintln!("len_gate: {stats:?}");
}

#[test]
fn run_repeat_reports_an_average_duration() {
    if !require_bpf() {
        return;
    }
    let prog = LoadedProgram::from_insns("len_gate", &drop_longer_than(100)).unwrap();
    let frame = tcp_frame(&[b'a'; 200], IpVersion::V4);
    let result = prog.run_repeat(&frame, 10_000).unwrap();
    assert_eq!(result.verdict, Verdict::Drop);
    assert!(
        result.duration.as_nanos() < 100_000,
        "average {:?} per run is implausible",
        result.duration
    );
    eprintln!("len_gate, 10000 runs: {:?} per run", result.duration);
}

/// A minimal ELF object the way a TC classifier is shipped: code in section `classifier`, a
/// global function symbol of the code's size, and a `license` section.
fn classifier_object(sections: &[(&str, &str, &[u8])]) -> Vec<u8> {
    use object::write::{Object, Symbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
    };
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    for (section_name, symbol_name, code) in sections {
        let section = obj.add_section(
            Vec::new(),
            section_name.as_bytes().to_vec(),
            SectionKind::Text,
        );
        obj.append_section_data(section, code, 8);
        obj.add_symbol(Symbol {
            name: symbol_name.as_bytes().to_vec(),
            value: 0,
            size: code.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
    }
    let license = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.append_section_data(license, b"GPL\0", 1);
    obj.write().expect("writing the test object")
}

#[test]
fn elf_object_loads_through_aya_and_runs() {
    if !require_bpf() {
        return;
    }
    let elf = classifier_object(&[("classifier", "len_gate", &drop_longer_than(100))]);
    let mut prog = LoadedProgram::from_object(&elf).unwrap();
    assert_eq!(prog.name(), "len_gate");
    let short = tcp_frame(b"ok", IpVersion::V4);
    let long = tcp_frame(&[b'x'; 100], IpVersion::V6);
    assert_eq!(prog.run(&short).unwrap().verdict, Verdict::Pass);
    assert_eq!(prog.run(&long).unwrap().verdict, Verdict::Drop);

    // Our BPF_OBJ_GET_INFO_BY_FD agrees with Aya's reading of the same program.
    let ours = prog.stats().unwrap();
    let classifier = prog.classifier_mut().expect("an Aya-loaded classifier");
    let theirs = classifier.info().unwrap();
    assert_eq!(
        Some(ours.verified_insns),
        theirs.verified_instruction_count()
    );
    assert_eq!(Some(ours.xlated_insns * 8), theirs.size_translated());
    assert_eq!(ours.id, theirs.id());
}

#[test]
fn elf_object_errors_are_typed() {
    if !require_bpf() {
        return;
    }
    match LoadedProgram::from_object(b"definitely not an ELF file") {
        // Refused by the object check before Aya parses it.
        Err(LoadError::Malformed(_)) => {}
        other => panic!("expected Malformed error, got {other:?}"),
    }
    let two = classifier_object(&[
        ("classifier", "one", &return_const(0)),
        ("classifier/two", "two", &return_const(2)),
    ]);
    match LoadedProgram::from_object(&two) {
        Err(LoadError::ManyPrograms { names }) => assert_eq!(names.len(), 2),
        other => panic!("expected ManyPrograms, got {other:?}"),
    }
    let xdp = classifier_object(&[("xdp", "not_tc", &return_const(2))]);
    match LoadedProgram::from_object(&xdp) {
        Err(LoadError::NotClassifier { name, .. }) => assert_eq!(name, "not_tc"),
        other => panic!("expected NotClassifier, got {other:?}"),
    }
    let bad = classifier_object(&[(
        "classifier",
        "bad_read",
        &program(&[insn(MOV64_REG, 0, 3, 0, 0), insn(EXIT, 0, 0, 0, 0)]),
    )]);
    match LoadedProgram::from_object(&bad) {
        Err(LoadError::Rejected { verifier_log, .. }) => {
            assert!(verifier_log.contains("R3 !read_ok"), "log: {verifier_log}")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}
