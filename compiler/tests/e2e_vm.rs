//! End to end with the enclave inside a QEMU VM: `lagic lab up --vm` boots a Debian kernel
//! and an initramfs whose /init is a static `lagic-enclave`, behind a bridge and tap in the
//! lab's namespace, with the hateless diode on the host-side veth.
//!
//! The test prepares everything itself, the way the docs tell a user to: `vm/install-deps`
//! (qemu-system-x86 and cpio by package name where missing, a kernel package unpacked into
//! the cache, never installed), a static release build of lagic-enclave (its own target
//! directory, `<target>/vm-static`, so it never waits on the outer cargo's lock), a
//! generated model, and `vm/build-initramfs` into `<target>/vm-e2e/`. It needs root; without
//! it it skips loudly, or fails when `CI` is set. It runs in the default test run: on this
//! 2-core machine it took 64-89 s from nothing (no qemu, no kernel, no static build), and
//! 64 s with packages and kernel cached (25 s of it the static build), 40 s with
//! everything cached, much of it the wait of the blocked checks (docs/lab.md, "Tests").
//!
//! "Blocked" is defined in `common` ([`common::run_pairs`]): the pass controls of the same
//! shape complete first, within [`DEADLINE`], in some time `T`; each blocked request is
//! then still incomplete after twice `T` plus a margin, and what arrived must stop before
//! the word. A loaded machine makes the VM slower, and the blocked checks wait longer with it.
//! What the VM sent is learned afterwards: with the diode detached, the same requests get
//! whole answers (the model's sampling is seeded, so the same request gets the same text).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::{
    assert_stopped_before, find_ignoring_case, generate, passes, response_body, run_pairs,
    workspace, Pair,
};

const LAGIC: &str = env!("CARGO_BIN_EXE_lagic");
const NAME: &str = "e2evm";
const SUBNET: &str = "172.30.120.0/24";
const ENCLAVE: &str = "172.30.120.11:8080";
/// The deadline of every request that must pass, the blocked checks' controls included:
/// generous, because software emulation on a loaded 2-core machine is slow (a control once
/// took over 30 s while other builds ran). Blocked requests get twice their controls' time.
const DEADLINE: Duration = Duration::from_secs(120);
/// Tokens the short requests ask for.
const TOKENS: usize = 12;

/// The target directory lagic was built in (`<target>/debug/lagic` or `.../release/lagic`).
fn target_root() -> PathBuf {
    Path::new(LAGIC)
        .parent()
        .and_then(Path::parent)
        .expect("lagic sits in <target>/<profile>/")
        .to_path_buf()
}

fn run(command: &mut Command, what: &str) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn lagic(args: &[&str]) -> Output {
    Command::new(LAGIC)
        .args(args)
        .output()
        .expect("running lagic")
}

fn lagic_ok(args: &[&str]) -> Output {
    run(
        Command::new(LAGIC).args(args),
        &format!("lagic {}", args.join(" ")),
    )
}

/// What the VM boots, prepared from nothing (or the warm cache).
struct Prepared {
    kernel: PathBuf,
    initrd: PathBuf,
}

fn prepare() -> Prepared {
    let vm = workspace().join("vm");
    let t = Instant::now();
    let out = run(
        &mut Command::new(vm.join("install-deps")),
        "vm/install-deps (qemu, cpio, kernel)",
    );
    let kernel_dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let cache = kernel_dir
        .parent()
        .expect("the kernel sits in the cache")
        .to_path_buf();
    eprintln!(
        "e2e_vm: install-deps {:.1} s (kernel {})",
        t.elapsed().as_secs_f64(),
        kernel_dir.display()
    );

    let t = Instant::now();
    let static_dir = target_root().join("vm-static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(
        Command::new(cargo)
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "lagic-enclave",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", &static_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
        "static build of lagic-enclave",
    );
    let enclave = static_dir.join("x86_64-unknown-linux-gnu/release/lagic-enclave");
    eprintln!(
        "e2e_vm: static lagic-enclave {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let work = target_root().join("vm-e2e");
    let model = work.join("model");
    run(
        Command::new(&enclave)
            .args(["make-model", "--seed", "1", "--out"])
            .arg(&model),
        "lagic-enclave make-model",
    );
    let initrd = work.join("initramfs.img");
    run(
        Command::new(vm.join("build-initramfs"))
            .arg("--kernel")
            .arg(&kernel_dir)
            .arg("--enclave")
            .arg(&enclave)
            .arg("--model")
            .arg(model.join("model.bin"))
            .arg("--tokenizer")
            .arg(model.join("tokenizer.bin"))
            .arg("-o")
            .arg(&initrd),
        "vm/build-initramfs",
    );
    eprintln!(
        "e2e_vm: model and initramfs {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_initramfs_holds_only_the_enclave(&initrd);
    Prepared {
        kernel: cache.join("vmlinux"),
        initrd,
    }
}

/// The initramfs has /init, the modules, the model and the mount points: no shell, nothing else.
fn assert_initramfs_holds_only_the_enclave(initrd: &Path) {
    let out = run(
        Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -dc '{}' | cpio -t --quiet", initrd.display())),
        "listing the initramfs",
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut entries: Vec<&str> = listing.lines().collect();
    entries.sort();
    let modules: Vec<&str> = entries
        .iter()
        .copied()
        .filter(|e| e.starts_with("lib/modules/lagic/"))
        .collect();
    let others: Vec<&str> = entries
        .iter()
        .copied()
        .filter(|e| !e.starts_with("lib/modules/lagic/"))
        .collect();
    assert_eq!(
        others,
        [
            "dev",
            "dev/console",
            "init",
            "lib",
            "lib/modules",
            "lib/modules/lagic",
            "model.bin",
            "proc",
            "sys",
            "tokenizer.bin"
        ],
        "unexpected initramfs contents: {entries:?}"
    );
    assert!(
        modules.iter().all(|m| m.ends_with(".ko")),
        "modules: {modules:?}"
    );
    assert!(
        modules
            .last()
            .is_some_and(|m| m.ends_with("-virtio_net.ko")),
        "virtio_net loads last, after its dependencies: {modules:?}"
    );
}

/// A running VM lab; dropping it runs `lagic lab down`, also on panic.
struct Lab;

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = lagic(&["lab", "down", "--name", NAME]);
    }
}

fn enclave() -> std::net::SocketAddr {
    ENCLAVE.parse().unwrap()
}

/// VmRSS of a process in kB.
fn rss_kb(pid: u64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn e2e_vm_hateless_passes_a_story_and_blocks_hate() {
    if !common::require_root("network namespaces, tap, BPF, package installs") {
        return;
    }
    let started = Instant::now();
    let prepared = prepare();
    let diode_dir = tempfile::tempdir().expect("temp dir");
    let diode = diode_dir.path().join("hateless.o");
    let spec = workspace().join("examples/hateless.json");
    lagic_ok(&[
        "compile",
        spec.to_str().unwrap(),
        "-o",
        diode.to_str().unwrap(),
    ]);

    // A lab of this name left by a killed run must not fail this one.
    let _ = lagic(&["lab", "down", "--name", NAME]);
    let boot = Instant::now();
    let lab = Lab;
    let up = lagic_ok(&[
        "lab",
        "up",
        "--vm",
        "--kernel",
        prepared.kernel.to_str().unwrap(),
        "--initrd",
        prepared.initrd.to_str().unwrap(),
        "--diode",
        diode.to_str().unwrap(),
        "--name",
        NAME,
        "--subnet",
        SUBNET,
    ]);
    let boot_secs = boot.elapsed().as_secs_f64();
    let progress = String::from_utf8_lossy(&up.stderr);
    assert!(
        progress.contains("bridge lgb-e2evm joins lge-e2evm and tap lgt-e2evm"),
        "{progress}"
    );

    let status = lagic_ok(&["lab", "status", "--name", NAME, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let lab_status = &status[0];
    assert_eq!(lab_status["up"], true, "{status}");
    let vm = &lab_status["vm"];
    let accel = vm["accel"].as_str().unwrap_or("?").to_owned();
    assert!(accel == "tcg" || accel == "kvm", "{status}");
    let qemu_pid = vm["qemu_pid"].as_u64().expect("a qemu pid");
    let cmdline = std::fs::read(format!("/proc/{qemu_pid}/cmdline")).unwrap_or_default();
    assert!(
        cmdline.starts_with(b"/")
            && String::from_utf8_lossy(&cmdline).contains("qemu-system-x86_64"),
        "pid {qemu_pid} is QEMU"
    );
    assert_eq!(lab_status["diode"]["diode"], "hateless", "{status}");

    // The story passes, through the diode, from the VM.
    let text = passes(
        &generate(enclave(), "Once upon a time", TOKENS, DEADLINE),
        "the story",
    );
    assert!(text.starts_with("Once upon a time"), "{text}");
    assert!(
        text.len() > "Once upon a time".len(),
        "the model added words: {text}"
    );

    // Blocked requests, each with its control, all at once. The last is larger than one
    // segment (MSS 1448): clean, it arrives whole; with `hate` in its last bytes it never
    // completes.
    let clean = "Once upon a time there was a little frog. ".repeat(34);
    let pairs = [
        Pair::new("I hate bananas", "I like bananas", "I hate bananas", TOKENS),
        Pair::new("I HaTe bananas", "I LiKe bananas", "I HaTe bananas", TOKENS),
        Pair::new(
            "hate at the end of a multi-segment response",
            &format!("{clean}and then tame"),
            &format!("{clean}and then hate"),
            1,
        ),
    ];
    let results = run_pairs(enclave(), &pairs, DEADLINE);
    for (p, r) in pairs.iter().zip(&results) {
        assert!(
            r.control_text.starts_with(&p.control),
            "{}: the control begins with its prompt: {}",
            p.what,
            r.control_text
        );
    }
    assert!(
        response_body(&results[2].control_text).len() > 1448,
        "the multi-segment control's body is larger than one segment"
    );

    // The block is the diode's doing: without it the same requests get through from the
    // VM, and their bodies are what the VM sent while the diode was attached.
    let host_if = format!("lgh-{NAME}");
    lagic_ok(&["detach", "--iface", &host_if]);
    for (p, r) in pairs.iter().zip(&results) {
        let text = passes(
            &generate(enclave(), &p.blocked, p.max_tokens, DEADLINE),
            &format!("{} without the diode", p.what),
        );
        assert!(text.starts_with(&p.blocked), "{}: {text}", p.what);
        let sent = response_body(&text);
        let at = find_ignoring_case(&sent, b"hate").expect("the word is in the body");
        let arrived = assert_stopped_before(&r.blocked_received, &sent, at, &p.what);
        eprintln!(
            "e2e_vm: {}: {} of {} body bytes arrived through the diode (the word at {at})",
            p.what,
            arrived.body,
            sent.len()
        );
    }

    // Measurements for the docs.
    let rss = rss_kb(qemu_pid).unwrap_or(0);
    let console =
        std::fs::read_to_string(format!("/run/lagic/lab/{NAME}/console.log")).unwrap_or_default();
    let guest = console
        .lines()
        .find(|l| l.contains(" up at "))
        .unwrap_or("(no init line on the console)")
        .to_owned();
    eprintln!(
        "e2e_vm: lab up --vm {boot_secs:.1} s ({accel}); QEMU RSS {} MiB; guest: {guest}",
        rss / 1024
    );

    drop(lab);
    assert!(
        !Path::new(&format!("/run/netns/lagic-{NAME}")).exists(),
        "namespace removed"
    );
    assert!(
        !Path::new(&format!("/sys/class/net/{host_if}")).exists(),
        "veth removed"
    );
    assert!(
        !Path::new(&format!("/proc/{qemu_pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{qemu_pid}/cmdline")).is_ok_and(|c| c.is_empty()),
        "QEMU is gone"
    );
    assert!(
        !Path::new(&format!("/run/lagic/lab/{NAME}")).exists(),
        "state removed"
    );
    eprintln!(
        "e2e_vm: whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
