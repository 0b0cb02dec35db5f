//! Network-namespace plumbing for tests that build their own links: running
//! `ip`/`tc` commands, entering a namespace on a thread, formatting a MAC.
//!
//! `setns` moves only the calling thread, so code that must run inside a
//! namespace runs on a thread of its own; a socket made there stays in that
//! namespace whichever thread uses it later.

use std::os::fd::AsRawFd;
use std::process::Command;

/// Runs a command, panicking with its output when it fails; returns its
/// standard output and error, in that order.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{program} {} failed:\n{text}",
        args.join(" ")
    );
    text
}

/// A MAC address as `ip link` writes it (`02:00:00:00:00:01`).
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// Runs `f` on a new thread that has entered the named network namespace
/// `ns` (`/run/netns/NS`, as `ip netns add` makes it).
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// [`spawn_in_netns`], waiting for the result (a panic in `f` is resumed
/// here).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    match spawn_in_netns(ns, f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
