//! End to end with the enclave inside a QEMU VM: `lagic lab up --vm` boots a Debian kernel
//! and an initramfs whose /init is a static `lagi-enclave`, behind a bridge and tap in the
//! lab's namespace, with the hateless diode on the host-side veth.
//!
//! The test prepares everything itself, the way the docs tell a user to: `vm/install-deps`
//! (qemu-system-x86 and cpio by package name where missing, a kernel package unpacked into
//! the cache, never installed), a static release build of lagi-enclave (its own target
//! directory, `<target>/vm-static`, so it never waits on the outer cargo's lock), a
//! generated model, and `vm/build-initramfs` into `<target>/vm-e2e/`. It needs root; without
//! it it skips loudly, or fails when `CI` is set. It runs in the default test run: on this
//! 2-core machine it took 64-89 s from nothing (no qemu, no kernel, no static build) and
//! 13-18 s with everything cached (docs/lab.md, "Tests").

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::{generate, workspace, Reply};

const LAGIC: &str = env!("CARGO_BIN_EXE_lagic");
const NAME: &str = "e2evm";
const SUBNET: &str = "172.30.120.0/24";
const ENCLAVE: &str = "172.30.120.11:8080";
/// How long a client waits before calling a request blocked.
const BLOCKED_WAIT: Duration = Duration::from_secs(3);
/// How long a client waits for a response that must arrive (software emulation is slow).
const PASS_WAIT: Duration = Duration::from_secs(60);

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
                "lagi-enclave",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", &static_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
        "static build of lagi-enclave",
    );
    let enclave = static_dir.join("x86_64-unknown-linux-gnu/release/lagi-enclave");
    eprintln!(
        "e2e_vm: static lagi-enclave {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let work = target_root().join("vm-e2e");
    let model = work.join("model");
    run(
        Command::new(&enclave)
            .args(["make-model", "--seed", "1", "--out"])
            .arg(&model),
        "lagi-enclave make-model",
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
        .filter(|e| e.starts_with("lib/modules/lagi/"))
        .collect();
    let others: Vec<&str> = entries
        .iter()
        .copied()
        .filter(|e| !e.starts_with("lib/modules/lagi/"))
        .collect();
    assert_eq!(
        others,
        [
            "dev",
            "dev/console",
            "init",
            "lib",
            "lib/modules",
            "lib/modules/lagi",
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

/// Sends one request for 12 new tokens; returns the whole response if it arrives complete
/// within `wait`.
fn post(prompt: &str, wait: Duration) -> Option<(u16, String)> {
    post_tokens(prompt, 12, wait)
}

/// The status and body of a complete response, or `None` if none arrived in `wait`.
fn post_tokens(prompt: &str, max_tokens: usize, wait: Duration) -> Option<(u16, String)> {
    match generate(ENCLAVE.parse().unwrap(), prompt, max_tokens, wait) {
        Reply::Complete { status, body } => {
            Some((status, String::from_utf8_lossy(&body).into_owned()))
        }
        Reply::Incomplete { .. } => None,
    }
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

    // The pass/block pair, through the diode, from the VM.
    let (code, body) = post("Once upon a time", PASS_WAIT).expect("the story must pass");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    let text = v["response"].as_str().expect("a response");
    assert!(text.starts_with("Once upon a time"), "{text}");
    assert!(
        text.len() > "Once upon a time".len(),
        "the model added words: {text}"
    );
    for hateful in ["I hate bananas", "I HaTe bananas"] {
        assert_eq!(
            post(hateful, BLOCKED_WAIT),
            None,
            "`{hateful}` must be blocked by the diode"
        );
    }

    // A response larger than one segment (MSS 1448): clean, it arrives whole; with `hate`
    // in its last bytes, the later segment is dropped and the response never completes.
    let clean = "Once upon a time there was a little frog. ".repeat(34);
    let (code, body) =
        post_tokens(&clean, 20, PASS_WAIT).expect("a clean multi-segment response must pass");
    assert_eq!(code, 200, "{body}");
    assert!(body.len() > 1448, "{} bytes", body.len());
    assert!(body.contains(clean.trim_end()), "{body}");
    let ending_in_hate = format!("{clean}and then hate");
    assert_eq!(
        post_tokens(&ending_in_hate, 1, BLOCKED_WAIT),
        None,
        "`hate` at the end of a multi-segment response must be blocked"
    );

    // The block is the diode's doing: without it the same request gets through from the VM.
    let host_if = format!("lgh-{NAME}");
    lagic_ok(&["detach", "--iface", &host_if]);
    let (code, body) = post("I hate bananas", PASS_WAIT).expect("passes without the diode");
    assert_eq!(code, 200);
    assert!(body.contains("I hate bananas"), "{body}");

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
