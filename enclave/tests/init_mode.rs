//! `lagic-enclave init` (PID 1 of the enclave VM) refuses to run as any other process: it
//! must never mount filesystems or power off the machine it was started on by mistake.
//! Its boot path runs for real in the VM test (`compiler/tests/e2e_vm.rs`).

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lagic-enclave");

fn assert_refuses(out: std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("init mode runs only as PID 1 of the enclave VM"),
        "stderr: {stderr}"
    );
}

#[test]
fn init_subcommand_refuses_outside_pid_1() {
    assert_refuses(Command::new(BIN).arg("init").output().unwrap());
}

#[test]
fn a_binary_named_init_refuses_outside_pid_1() {
    // The initramfs's /init is this binary; started under that name it enters init mode.
    let dir = std::env::temp_dir().join(format!("lagic-init-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let init = dir.join("init");
    let _ = std::fs::remove_file(&init);
    std::os::unix::fs::symlink(Path::new(BIN), &init).unwrap();
    let plain = Command::new(&init).output().unwrap();
    // Any arguments are ignored: the kernel may pass some.
    let with_args = Command::new(&init)
        .arg("--listen")
        .arg("x")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_refuses(plain);
    assert_refuses(with_args);
}
