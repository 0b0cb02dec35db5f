//! The BTF builders and the independent test reader agree: what the
//! builders write parses back to the same types, strings and records.

mod btf_reader;

use btf_reader::{read_u32_at, Btf, BtfError, BtfExt};
use emit_bpf::btf::*;

#[test]
fn btf_round_trips() {
    let mut b = BtfBuilder::new();
    let int = b.add_int("int", 4, true);
    let ptr = b.add_ptr(0);
    let proto = b.add_func_proto(int, &[("ctx", ptr)]);
    let func = b.add_func("main", proto, FuncLinkage::Global);
    let bytes = b.to_bytes();
    assert_eq!(&bytes[..4], &[0x9f, 0xeb, 1, 0]);
    let btf = Btf::parse(&bytes).unwrap();
    assert_eq!(btf.types.len(), 4);
    assert_eq!(
        btf.type_by_id(int),
        Some(&BtfType::Int {
            name_off: 1,
            size: 4,
            encoding: BTF_INT_SIGNED,
            bits: 32
        })
    );
    match btf.type_by_id(func).unwrap() {
        BtfType::Func {
            name_off,
            proto: p,
            linkage,
        } => {
            assert_eq!(btf.string(*name_off).unwrap(), "main");
            assert_eq!(*p, proto);
            assert_eq!(*linkage, FuncLinkage::Global);
        }
        other => panic!("unexpected {other:?}"),
    }
    match btf.type_by_id(proto).unwrap() {
        BtfType::FuncProto { ret, params } => {
            assert_eq!(*ret, int);
            assert_eq!(btf.string(params[0].0).unwrap(), "ctx");
            assert_eq!(params[0].1, ptr);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn ext_round_trips_and_omits_empty_line_info() {
    let mut e = BtfExtBuilder::new();
    e.section(5).funcs.push((0, 4));
    let bytes = e.to_bytes();
    // header + rec_size + (sec, n) + one record; line_info absent.
    assert_eq!(bytes.len(), 32 + 4 + 8 + 8);
    assert_eq!(read_u32_at(&bytes, 20).unwrap(), 0, "line_info_len");
    let ext = BtfExt::parse(&bytes).unwrap();
    assert_eq!(ext.sections.len(), 1);
    assert_eq!(ext.sections[0].funcs, vec![(0, 4)]);

    e.section(9).funcs.push((16, 6));
    e.section(5).lines.push(LineInfo {
        insn_byte_off: 0,
        file_name_off: 1,
        line_off: 2,
        line_col: 1 << 10,
    });
    let ext = BtfExt::parse(&e.to_bytes()).unwrap();
    assert_eq!(ext.sections.len(), 2);
    assert_eq!(ext.sections[1].funcs, vec![(16, 6)]);
    assert_eq!(ext.sections[0].lines.len(), 1);
}

#[test]
fn parse_rejects_garbage() {
    assert_eq!(Btf::parse(&[1, 2]), Err(BtfError::Truncated(2)));
    assert!(matches!(
        Btf::parse(&[0, 0, 1, 0, 24, 0, 0, 0]),
        Err(BtfError::BadMagic(0))
    ));
    let mut bytes = BtfBuilder::new().to_bytes();
    bytes[12] = 200; // type_len past the end
    assert!(Btf::parse(&bytes).is_err());
}
