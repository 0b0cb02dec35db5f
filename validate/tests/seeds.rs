//! The validator passes on every seed example.

mod support;

#[test]
fn every_seed_validates() {
    let names = support::seed_names();
    assert_eq!(names.len(), 7, "the seven seed diodes");
    for name in names {
        let c = support::seed(&name);
        let report = lagic_validate::validate(&c.program, &c.object, &c.map)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Every scan was stepped and every length walked.
        if !c.program.scans.is_empty() {
            assert!(report.step_insns > 0, "{name}: {report:?}");
            assert_eq!(
                report.walk_lengths,
                65_536 * c.map.passes.len() as u64,
                "{name}"
            );
        }
        assert!(report.formula_cases > 0, "{name}: {report:?}");
        eprintln!("{name}: {report:?}");
    }
}
