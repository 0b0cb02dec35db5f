//! lagic-testkit: gates for tests that need the kernel or a tool: skip loudly where it is
//! unavailable, fail in CI. Test support only (the frame builder the CLI also needs is
//! `lagic-frames`; running frames is `lagic-loader`'s).
//!
//! Kernel tests call [`require_bpf`] first and return early when it says `false`; tests that
//! need an external program call [`require_tool`]. Outside CI a missing prerequisite prints a
//! `SKIPPED:` line per test; with the environment variable `CI` set, the same situation
//! panics, because CI machines must run every test (`scripts/install-test-deps` installs the
//! tools).

pub mod net;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;

use lagic_loader::bpf_available;

/// The running test's name, for skip and failure messages.
fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned()
}

/// Skips (outside CI, saying so on stderr) or fails (with `CI` set) because `missing`.
fn skip_or_fail(missing: &str, why: &str) {
    let test = current_test();
    if std::env::var_os("CI").is_some() {
        panic!("{missing} and CI is set, so {test} fails instead of skipping: {why}");
    }
    // Straight to the stderr handle, not `eprintln!`: the test harness captures the macros'
    // output of passing tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {missing}: {why}");
}

/// Whether kernel tests can run here. Probes once per process. Prints `SKIPPED: ...` to stderr
/// and returns `false` when BPF is unavailable; panics instead when `CI` is set.
pub fn require_bpf() -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    match PROBE.get_or_init(bpf_available) {
        Ok(()) => true,
        Err(why) => {
            skip_or_fail("BPF is unavailable (run as root on Linux)", why);
            false
        }
    }
}

/// The executable `name` found on `PATH`, or `None` after a loud skip (panics instead when
/// `CI` is set). `installed_by` says what installs it, for the message.
pub fn require_tool(name: &str, installed_by: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        skip_or_fail(
            &format!("{name} is not installed"),
            &format!("{installed_by} installs it"),
        );
    }
    found
}
