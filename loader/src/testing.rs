//! Helpers for tests that need the kernel: skip loudly where BPF is unavailable, fail in CI.
//!
//! Kernel tests call [`require_bpf`] first and return early when it says `false`. Outside CI a
//! machine without BPF prints a `SKIPPED:` line per test; with the environment variable `CI`
//! set, the same situation panics, because CI machines must run every kernel test.

use std::io::Write as _;
use std::sync::OnceLock;

use crate::program::bpf_available;

/// Whether kernel tests can run here. Probes once per process. Prints `SKIPPED: ...` to stderr
/// and returns `false` when BPF is unavailable; panics instead when `CI` is set.
pub fn require_bpf() -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    match PROBE.get_or_init(bpf_available) {
        Ok(()) => true,
        Err(why) => {
            let test = std::thread::current()
                .name()
                .unwrap_or("<unnamed test>")
                .to_owned();
            if std::env::var_os("CI").is_some() {
                panic!(
                    "BPF is unavailable and CI is set, so {test} fails instead of skipping: {why}"
                );
            }
            // Straight to the stderr handle, not `eprintln!`: the test harness captures the
            // macros' output of passing tests, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test} needs BPF (run as root on Linux): {why}"
            );
            false
        }
    }
}
