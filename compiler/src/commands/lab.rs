//! `lagic lab up|down|status`: the enclave behind a diode, on this machine. The lab itself
//! is the `lagic-lab` crate; this module turns arguments into its requests and its results
//! and errors into output and exit codes.

use std::fmt::Write as _;

use super::shared;
use crate::cli::{AccelArg, LabCommand, LabDownArgs, LabStatusArgs, LabUpArgs};
use crate::failure::{Failure, Outcome};
use lagic_lab::{self as lab, Diode, Enclave, LabError, LabKind, Subnet, UpRequest};

pub fn run(command: LabCommand) -> Result<Outcome, Failure> {
    match command {
        LabCommand::Up(args) => up(args),
        LabCommand::Down(args) => down(args),
        LabCommand::Status(args) => status(args),
    }
}

fn up(args: LabUpArgs) -> Result<Outcome, Failure> {
    let subnet = Subnet::parse(&args.subnet).map_err(failure)?;
    lab::LabNames::new(&args.name).map_err(failure)?;
    lab::require_root().map_err(failure)?;
    let diode = shared::diode_object(&args.diode, !args.no_validate)?;
    let vm = if args.vm {
        Some(vm_config(&args)?)
    } else {
        None
    };
    let enclave_bin = match args.enclave_bin {
        Some(path) if path.is_file() => path,
        Some(path) => {
            return Err(Failure::bad_input(format!(
                "--enclave-bin {}: no such file",
                path.display()
            )))
        }
        None if vm.is_some() => std::path::PathBuf::new(),
        None => lab::find_enclave().map_err(failure)?,
    };
    let enclave_bin = std::fs::canonicalize(&enclave_bin).unwrap_or(enclave_bin);
    let request = UpRequest {
        kind: LabKind::Lab,
        name: args.name,
        subnet,
        diode: Some(Diode {
            object: diode,
            source: std::fs::canonicalize(&args.diode)
                .unwrap_or(args.diode)
                .display()
                .to_string(),
        }),
        enclave: match vm {
            Some(config) => Enclave::Vm {
                config,
                args: args.enclave_args,
            },
            None => Enclave::Lagi {
                bin: enclave_bin,
                args: args.enclave_args,
            },
        },
    };
    // Progress goes to stderr without `eprintln!`, which would panic on a closed stderr
    // half-way through `up` (lab down would then have to clean up after it).
    let state = lab::up(&request, &mut |line| {
        crate::io::print_err(&format!("lab {}: {line}", request.name))
    })
    .map_err(failure)?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "lab {} is up: enclave{} at http://{}:{} behind the diode on {} ingress",
        state.name,
        if state.vm.is_some() { " (in a VM)" } else { "" },
        state.enclave_ip,
        state.port,
        state.host_if
    );
    let _ = writeln!(
        text,
        "  try: curl -s -m 5 -d '{{\"prompt\": \"Once upon a time\"}}' http://{}:{}/api/generate",
        state.enclave_ip, state.port
    );
    let _ = writeln!(text, "  stop: lagic lab down --name {}", state.name);
    crate::io::print_out(&text).map_err(|f| f.after(&format!("lab {} is up", state.name)))?;
    Ok(Outcome::Success)
}

/// The VM's kernel, initramfs and QEMU, checked to exist (defaults from the cache `vm/build`
/// fills).
fn vm_config(args: &LabUpArgs) -> Result<lab::vm::VmConfig, Failure> {
    let cache = lab::vm::default_cache_dir();
    let pick = |given: &Option<std::path::PathBuf>, default: &str, flag: &str| {
        let path = given.clone().unwrap_or_else(|| cache.join(default));
        if path.is_file() {
            Ok(std::fs::canonicalize(&path).unwrap_or(path))
        } else if given.is_some() {
            Err(Failure::bad_input(format!(
                "{flag} {}: no such file",
                path.display()
            )))
        } else {
            Err(Failure::bad_input(format!(
                "no VM {} at {} (the default {flag}); run vm/build first (it installs qemu, \
                 unpacks a kernel and builds the initramfs), or pass {flag} PATH",
                if flag == "--kernel" {
                    "kernel"
                } else {
                    "initramfs"
                },
                path.display()
            )))
        }
    };
    let kernel = pick(&args.kernel, "vmlinux", "--kernel")?;
    let initrd = pick(&args.initrd, "initramfs.img", "--initrd")?;
    let qemu = lab::vm::find_qemu().map_err(failure)?;
    Ok(lab::vm::VmConfig {
        kernel,
        initrd,
        memory_mib: args.vm_memory,
        accel: match args.accel {
            AccelArg::Auto => lab::vm::Accel::Auto,
            AccelArg::Kvm => lab::vm::Accel::Kvm,
            AccelArg::Tcg => lab::vm::Accel::Tcg,
        },
        qemu,
    })
}

fn down(args: LabDownArgs) -> Result<Outcome, Failure> {
    let report = lab::down(LabKind::Lab, &args.name).map_err(failure)?;
    let mut text = String::new();
    if report.removed.is_empty() {
        let _ = writeln!(text, "lab {}: nothing to remove", args.name);
    } else {
        for line in &report.removed {
            let _ = writeln!(text, "lab {}: removed {line}", args.name);
        }
    }
    crate::io::print_out(&text).map_err(|f| f.after(&format!("lab {} is down", args.name)))?;
    Ok(Outcome::Success)
}

fn status(args: LabStatusArgs) -> Result<Outcome, Failure> {
    lab::require_root().map_err(failure)?;
    let labs = lab::status(LabKind::Lab, args.name.as_deref()).map_err(failure)?;
    let all_up = !labs.is_empty() && labs.iter().all(|l| l.is_up());
    if args.json {
        let items: Vec<serde_json::Value> = labs
            .iter()
            .map(|l| {
                serde_json::json!({
                    "name": l.state.name,
                    "up": l.is_up(),
                    "subnet": l.state.subnet,
                    "namespace": {"name": l.state.netns, "exists": l.netns},
                    "host_if": {"name": l.state.host_if, "exists": l.link},
                    "enclave_if": l.state.enclave_if,
                    "vm": l.state.vm.as_ref().map(|vm| serde_json::json!({
                        "accel": vm.accel,
                        "memory_mib": vm.memory_mib,
                        "kernel": vm.kernel,
                        "initrd": vm.initrd,
                        "qemu_pid": l.state.pid,
                    })),
                    "enclave": {
                        "url": format!("http://{}:{}", l.state.enclave_ip, l.state.port),
                        "pid": l.state.pid,
                        "running": l.enclave_running,
                        "healthy": l.healthy,
                        "binary": binary(&l.state),
                    },
                    "diode": l.diode.as_ref().map(shared::attachment_json),
                })
            })
            .collect();
        crate::io::print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into())
        ))?;
    } else if labs.is_empty() {
        crate::io::print_out(&match &args.name {
            Some(name) => format!("lab {name} is not up\n"),
            None => "no lab is up\n".to_owned(),
        })?;
    } else {
        let mut text = String::new();
        for l in &labs {
            let s = &l.state;
            let yes = |b: bool| if b { "ok" } else { "MISSING" };
            let _ = writeln!(
                text,
                "lab {}: {}",
                s.name,
                if l.is_up() { "up" } else { "DEGRADED" }
            );
            let _ = writeln!(text, "  namespace  {} ({})", s.netns, yes(l.netns));
            let _ = writeln!(
                text,
                "  veth       {} {} <-> {} {}{} ({})",
                s.host_if,
                s.host_ip,
                s.enclave_if,
                if s.vm.is_some() {
                    "bridged to the VM's eth0 "
                } else {
                    ""
                },
                s.enclave_ip,
                yes(l.link)
            );
            if let Some(vm) = &s.vm {
                let _ = writeln!(
                    text,
                    "  vm         qemu pid {}, {}, {} MiB, kernel {}, initramfs {}",
                    s.pid,
                    vm.accel,
                    vm.memory_mib,
                    vm.kernel.display(),
                    vm.initrd.display()
                );
            }
            let _ = writeln!(
                text,
                "  enclave    {}pid {} at http://{}:{} (process {}, health {})",
                if s.vm.is_some() {
                    "in the VM, qemu "
                } else {
                    ""
                },
                s.pid,
                s.enclave_ip,
                s.port,
                if l.enclave_running { "running" } else { "GONE" },
                if l.healthy { "200" } else { "no answer" }
            );
            let _ = match &l.diode {
                Some(d) => writeln!(
                    text,
                    "  diode      {} (program {}) on {} ingress, {}, {}, since {}",
                    d.diode,
                    d.program_id,
                    d.iface,
                    d.mode.as_str(),
                    d.health.as_str(),
                    shared::since_text(d.since)
                ),
                None => writeln!(text, "  diode      NONE (traffic flows unfiltered)"),
            };
        }
        crate::io::print_out(&text)?;
    }
    Ok(if all_up {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// What the enclave runs from: its binary, or the VM's initramfs.
fn binary(state: &lab::LabState) -> String {
    match &state.vm {
        Some(vm) => vm.initrd.display().to_string(),
        None => state.program.display().to_string(),
    }
}

fn failure(e: LabError) -> Failure {
    match e {
        LabError::Attach(inner) => shared::attach_failure(inner, "?"),
        LabError::NotRoot => Failure::bad_input(e.to_string()),
        other => Failure::bad_input(other.to_string()),
    }
}
