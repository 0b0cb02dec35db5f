//! A diode compiled before `bad_syn` (counter slot 16) existed has a counters
//! map of 16 slots, one before `partial_checksum` (slot 17) 17;
//! `DiodeMaps::counters` must read them (the slots they lack as 0) rather than fail on the missing slot, so `lagic status` and the
//! dashboard keep working across the upgrade. Kernel test: skipped without
//! BPF unless CI=true, where it fails.

use emit_bpf::decision::{Reason, COUNTERS_MAP, COUNTER_SLOTS};
use lagic_frames::Frame;
use lagic_loader::decisions::DiodeMaps;
use lagic_loader::LoadedProgram;
use lagic_testkit::require_bpf;

/// `examples/hateless.json` compiled with its counters map `slots` long.
fn hateless_with_counter_slots(slots: u32) -> Vec<u8> {
    let path = format!("{}/../examples/hateless.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("reading the example");
    let spec = predicate_ir::parse(&text).expect("parsing the example");
    let program = predicate_ir::lower(&spec).expect("lowering the example");
    let mut module = emit_bpf::compile(&program).expect("compiling the example");
    let counters = module
        .maps
        .iter_mut()
        .find(|m| m.name == COUNTERS_MAP)
        .expect("a counters map");
    assert_eq!(counters.max_entries, COUNTER_SLOTS);
    counters.max_entries = slots;
    module.write_elf().expect("writing the object")
}

#[test]
fn counters_of_a_diode_with_the_older_sixteen_slots_read_back() {
    if !require_bpf() {
        return;
    }
    assert_eq!(Reason::BadSyn as u32, 16);
    assert_eq!(Reason::PartialChecksum as u32, 17);
    for slots in [16, 17, COUNTER_SLOTS] {
        let prog = LoadedProgram::from_object(&hateless_with_counter_slots(slots))
            .unwrap_or_else(|e| panic!("{slots} slots: {e}"));
        let maps = DiodeMaps::for_program(prog.fd()).unwrap();
        let clean = Frame::ipv4().tcp().payload(b"all is well").build();
        let hateful = Frame::ipv4().tcp().payload(b"I hate it").build();
        assert_eq!(prog.run_out(&clean).unwrap().0, 0);
        assert_eq!(prog.run_out(&hateful).unwrap().0, 2);
        assert_eq!(prog.run_out(&hateful).unwrap().0, 2);
        let c = maps
            .counters()
            .unwrap_or_else(|e| panic!("{slots} slots: {e}"));
        assert_eq!(c.get(Reason::Pass), 1, "{slots} slots: {c:?}");
        assert_eq!(c.get(Reason::Predicate), 2, "{slots} slots: {c:?}");
        assert_eq!(c.bad_syn, 0, "{slots} slots: {c:?}");
        assert_eq!(c.partial_checksum, 0, "{slots} slots: {c:?}");
        assert_eq!(c.drops(), 2, "{slots} slots: {c:?}");
    }
}
