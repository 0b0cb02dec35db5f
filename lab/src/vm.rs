//! The enclave inside a QEMU virtual machine (`lagic lab up --vm`).
//!
//! ```text
//!   host (root netns)                    netns lagic-NAME                          QEMU VM
//!   lgh-NAME .1 <== veth ==> lge-NAME ── bridge lgb-NAME ── tap lgt-NAME ══ virtio-net eth0 .11:8080
//!     ^ diode on ingress                 (no addresses in the namespace)          lagic-enclave = /init
//! ```
//!
//! The VM boots a Debian kernel and an initramfs whose `/init` is `lagic-enclave` itself
//! (`vm/build` makes both; see docs/lab.md). QEMU runs inside the lab's namespace, so its
//! tap can only reach the bridge, and the bridge's only other port is the veth whose host
//! end carries the diode: every frame the VM sends crosses the diode. The VM has exactly one
//! NIC (`-nodefaults`, no user-mode network) and no other device that reaches the host.
//!
//! Invariants:
//! - The tap and bridge names derive from the lab name (`lgt-NAME`, `lgb-NAME`), so `down`
//!   finds them without state, and the QEMU process is recognised by its `ifname=lgt-NAME`.
//! - Acceleration: KVM only when it can run an ordinary guest (see [`kvm_usable`]); software
//!   emulation (TCG) otherwise, which always works.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::{LabError, LabNames};

/// Default guest memory in MiB: the guest uses about 25 MB with the generated model.
pub const DEFAULT_MEMORY_MIB: u32 = 128;
/// The QEMU executable looked up on PATH.
pub const QEMU: &str = "qemu-system-x86_64";

/// How to run the guest's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when usable, else TCG.
    Auto,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's software emulation.
    Tcg,
}

impl Accel {
    /// The name QEMU and the state file use.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// What the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// Kernel image: the PVH-bootable `vmlinux` (or a `vmlinuz`).
    pub kernel: PathBuf,
    /// The initramfs with `lagic-enclave` as `/init`.
    pub initrd: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Acceleration asked for.
    pub accel: Accel,
    /// The QEMU executable.
    pub qemu: PathBuf,
}

/// Where `vm/build` leaves the kernel and initramfs: `$LAGIC_VM_CACHE`, else
/// `$XDG_CACHE_HOME/lagic/vm`, else `~/.cache/lagic/vm` (the scripts use the same rule).
pub fn default_cache_dir() -> PathBuf {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(dir) = nonempty("LAGIC_VM_CACHE") {
        return PathBuf::from(dir);
    }
    let base = nonempty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| nonempty("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    base.join("lagic").join("vm")
}

/// Finds `qemu-system-x86_64` on PATH.
pub fn find_qemu() -> Result<PathBuf, LabError> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(QEMU);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(LabError::Vm(format!(
        "{QEMU} is not on PATH; install it with vm/install-deps (Debian package qemu-system-x86)"
    )))
}

/// Whether KVM can run an ordinary guest here: /dev/kvm opens read-write and the CPU
/// advertises hardware virtualisation (vmx or svm). Some hosts expose a /dev/kvm that only
/// runs specially built guest kernels (e.g. PVM, `kvm_pvm`, on CPUs without vmx/svm
/// flags); a stock Debian kernel hangs there, so it counts as unusable.
pub fn kvm_usable() -> Result<(), String> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !hw {
        return Err("the CPU has no vmx/svm flag (this /dev/kvm cannot run a stock kernel)".into());
    }
    if Path::new("/sys/module/kvm_pvm").exists() {
        return Err("/dev/kvm is PVM (kvm_pvm), which runs only PVM guest kernels".into());
    }
    Ok(())
}

/// Chooses the accelerator: `(accel, why)`. Asking for KVM where it is unusable is an error.
pub fn choose_accel(asked: Accel) -> Result<(Accel, String), LabError> {
    match asked {
        Accel::Tcg => Ok((Accel::Tcg, "asked for".into())),
        Accel::Kvm => kvm_usable()
            .map(|()| (Accel::Kvm, "asked for".into()))
            .map_err(|why| LabError::Vm(format!("--accel kvm: {why}"))),
        Accel::Auto => Ok(match kvm_usable() {
            Ok(()) => (Accel::Kvm, "/dev/kvm is usable".into()),
            Err(why) => (Accel::Tcg, format!("software emulation: {why}")),
        }),
    }
}

/// The guest kernel's command line: serial console, quiet, power off (QEMU exits) on panic,
/// no IPv6 (the diode's world is the IPv4 lab), the address, and extra server arguments.
pub fn kernel_cmdline(
    enclave: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
    port: u16,
    enclave_args: &[String],
) -> Result<String, LabError> {
    let mut line = format!(
        "console=ttyS0 quiet panic=-1 ipv6.disable=1 \
         lagic.ip={enclave}/{prefix} lagic.gw={gateway} lagic.port={port}"
    );
    for arg in enclave_args {
        let plain = !arg.is_empty()
            && arg
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
        if !plain {
            return Err(LabError::Vm(format!(
                "--enclave-arg {arg:?}: in a VM, enclave arguments travel on the kernel command \
                 line and must be non-empty printable ASCII without spaces or quotes"
            )));
        }
        line.push_str(" lagic.arg=");
        line.push_str(arg);
    }
    // x86's COMMAND_LINE_SIZE.
    if line.len() >= 2048 {
        return Err(LabError::Vm(format!(
            "the kernel command line would be {} bytes (at most 2047)",
            line.len()
        )));
    }
    Ok(line)
}

/// A locally administered MAC derived from the lab name (stable across boots).
pub fn mac_for(name: &str) -> String {
    // FNV-1a: any stable spread will do; collisions only matter between labs on one host.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let [a, b, c, _] = h.to_be_bytes();
    format!("52:54:00:{a:02x}:{b:02x}:{c:02x}")
}

/// QEMU's arguments (without the program).
pub fn qemu_args(
    names: &LabNames,
    cfg: &VmConfig,
    accel: Accel,
    cmdline: &str,
    console: &Path,
) -> Vec<String> {
    let (accel_arg, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        _ => ("tcg", "max"),
    };
    let mut args: Vec<String> = [
        "-name",
        &names.netns,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-machine",
        "pc",
        "-accel",
        accel_arg,
        "-cpu",
        cpu,
        "-smp",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        "-m".to_owned(),
        cfg.memory_mib.to_string(),
        "-kernel".to_owned(),
        cfg.kernel.display().to_string(),
        "-initrd".to_owned(),
        cfg.initrd.display().to_string(),
        "-append".to_owned(),
        cmdline.to_owned(),
        "-serial".to_owned(),
        format!("file:{}", console.display()),
        "-netdev".to_owned(),
        format!("tap,id=lab,ifname={},script=no,downscript=no", names.tap),
        "-device".to_owned(),
        format!("virtio-net-pci,netdev=lab,mac={}", mac_for(&names.name)),
        // A guest reboot or panic ends QEMU instead of booting again.
        "-no-reboot".to_owned(),
    ]);
    args
}

/// Whether `pid` is this lab's QEMU (`argv[0]` is QEMU and it uses the lab's tap).
pub fn is_lab_qemu(pid: u32, names: &LabNames) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut parts = cmdline.split(|&b| b == 0);
    let argv0_is_qemu = parts.next().is_some_and(|a| a.ends_with(QEMU.as_bytes()));
    let needle = format!("ifname={},", names.tap);
    argv0_is_qemu && parts.any(|p| p.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_carries_address_and_plain_arguments() {
        let line = kernel_cmdline(
            Ipv4Addr::new(172, 30, 0, 11),
            24,
            Ipv4Addr::new(172, 30, 0, 1),
            8080,
            &["--seed".into(), "7".into()],
        )
        .unwrap();
        assert!(line.starts_with("console=ttyS0 "));
        assert!(line.contains(" lagic.ip=172.30.0.11/24 lagic.gw=172.30.0.1 lagic.port=8080"));
        assert!(line.ends_with(" lagic.arg=--seed lagic.arg=7"));
        for bad in ["a b", "", "x\"y", "caf\u{e9}"] {
            let e = kernel_cmdline(
                Ipv4Addr::LOCALHOST,
                8,
                Ipv4Addr::LOCALHOST,
                1,
                &[bad.into()],
            );
            assert!(matches!(e, Err(LabError::Vm(_))), "{bad:?}");
        }
        let long = vec!["x".repeat(100); 30];
        assert!(kernel_cmdline(Ipv4Addr::LOCALHOST, 8, Ipv4Addr::LOCALHOST, 1, &long).is_err());
    }

    #[test]
    fn qemu_gets_one_tap_nic_and_no_defaults() {
        let names = LabNames::new("t1").unwrap();
        let cfg = VmConfig {
            kernel: "/k".into(),
            initrd: "/i".into(),
            memory_mib: 96,
            accel: Accel::Auto,
            qemu: QEMU.into(),
        };
        let args = qemu_args(&names, &cfg, Accel::Tcg, "quiet", Path::new("/c.log"));
        let joined = args.join(" ");
        assert!(joined.contains("-nodefaults"));
        assert!(joined.contains("-accel tcg -cpu max"));
        assert!(joined.contains("-m 96 -kernel /k -initrd /i -append quiet -serial file:/c.log"));
        assert!(joined.contains("-netdev tap,id=lab,ifname=lgt-t1,script=no,downscript=no"));
        assert_eq!(args.iter().filter(|a| *a == "-netdev").count(), 1);
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("user") || a == "-nic" || a == "-net"),
            "no user-mode or default networking: {joined}"
        );
        let kvm = qemu_args(&names, &cfg, Accel::Kvm, "quiet", Path::new("/c.log")).join(" ");
        assert!(kvm.contains("-accel kvm -cpu host"));
    }

    #[test]
    fn macs_are_stable_local_and_distinct() {
        assert_eq!(mac_for("lagi"), mac_for("lagi"));
        assert_ne!(mac_for("lagi"), mac_for("e2e1"));
        assert!(mac_for("x").starts_with("52:54:00:"));
        assert_eq!(mac_for("x").len(), 17);
    }

    #[test]
    fn tcg_is_always_available() {
        assert_eq!(choose_accel(Accel::Tcg).unwrap().0, Accel::Tcg);
        // Auto never fails: it falls back to TCG with the reason.
        assert!(choose_accel(Accel::Auto).is_ok());
    }
}
