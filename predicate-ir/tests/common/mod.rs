//! Proptest configuration shared by predicate-ir's property tests: case
//! counts overridable with `LAGIC_PROPTEST_CASES`, and failing seeds kept in
//! `predicate-ir/tests/proptest-regressions/<property>.txt` (committed, and
//! replayed first on every run), one file per property so that a seed is
//! only ever replayed against the strategy that found it.

use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

/// Environment variable that overrides how many cases each property runs.
pub const CASES_ENV: &str = "LAGIC_PROPTEST_CASES";

/// The case count of a property: `$LAGIC_PROPTEST_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    match std::env::var(CASES_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{CASES_ENV}={text:?} is not a case count")),
        Err(_) => default,
    }
}

/// A runner for `property` with [`cases`]`(default_cases)` cases and a
/// committed regression file.
pub fn runner(property: &str, default_cases: u32) -> TestRunner {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("proptest-regressions")
        .join(format!("{property}.txt"));
    // `Direct` wants a `&'static str`; one small leak per property.
    let path: &'static str = Box::leak(path.to_string_lossy().into_owned().into_boxed_str());
    TestRunner::new(Config {
        cases: cases(default_cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(path))),
        ..Config::default()
    })
}
