//! `lagic attach DIODE --iface IF [--direction ...] [--mode ...]`: put a diode on the wire.

use lagic_loader::attach::{self, AttachError, AttachOptions, Direction, Mode, ModeChoice};

use crate::cli::{AttachArgs, DirectionArg, ModeArg};
use crate::failure::{Failure, Outcome};

pub fn run(args: AttachArgs) -> Result<Outcome, Failure> {
    let object = super::run::diode_object(&args.diode)?;
    let options = AttachOptions {
        mode: match args.mode {
            ModeArg::Auto => ModeChoice::Auto,
            ModeArg::Tcx => ModeChoice::Only(Mode::Tcx),
            ModeArg::Clsact => ModeChoice::Only(Mode::Clsact),
        },
        source: Some(source_name(&args.diode)),
        allow_foreign_object: args.allow_foreign_object,
    };
    let direction = direction(args.direction);
    let report = attach::attach(&object, &args.iface, direction, &options)
        .map_err(|e| failure(e, &args.iface))?;
    let a = &report.attachment;
    match report.replaced_program_id {
        Some(old) => println!(
            "replaced program {old} with {} (program {}) on {} {} ({}), atomically",
            a.diode, a.program_id, a.iface, a.direction, a.mode
        ),
        None => println!(
            "attached {} (program {}) to {} {} ({}); pinned at {}",
            a.diode,
            a.program_id,
            a.iface,
            a.direction,
            a.mode,
            a.pin_dir.display()
        ),
    }
    if let Some(name) = &a.netns_name {
        println!("  (the interface is in network namespace {name})");
    }
    Ok(Outcome::Success)
}

pub(crate) fn direction(arg: DirectionArg) -> Direction {
    match arg {
        DirectionArg::Ingress => Direction::Ingress,
        DirectionArg::Egress => Direction::Egress,
    }
}

/// The absolute path of the diode when it can be had, for status.
fn source_name(path: &std::path::Path) -> String {
    if crate::io::is_dash(path) {
        return "<stdin>".to_owned();
    }
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Renders an attach error with what to do. Nothing attached is a failed check (1); every
/// other error is bad input or the environment (2).
pub(crate) fn failure(e: AttachError, iface: &str) -> Failure {
    match &e {
        AttachError::NothingAttached { .. } => Failure::failed(e.to_string()),
        AttachError::LockBusy { .. } => Failure::bad_input(e.to_string())
            .with_hint("`cat /proc/locks` and `ps` show the holder"),
        AttachError::NotPermitted { .. } => {
            Failure::bad_input(e.to_string()).with_hint("run it again with sudo")
        }
        AttachError::NoSuchInterface(_) => Failure::bad_input(e.to_string())
            .with_hint(format!("check the name with `ip link show {iface}`")),
        AttachError::Rejected { .. } => Failure::bad_input(e.to_string()).with_hint(
            "the kernel verifier refused the program; `lagic disasm` shows its instructions, \
             and a bug report with the spec and this log helps",
        ),
        AttachError::Load(lagic_loader::LoadError::Foreign) => Failure::bad_input(e.to_string())
            .with_hint(
                "pass --allow-foreign-object to attach an object from another toolchain that you \
                 trust",
            ),
        AttachError::Load(
            lagic_loader::LoadError::Malformed(_) | lagic_loader::LoadError::LoaderPanicked(_),
        ) => {
            Failure::bad_input(e.to_string()).with_hint("recompile the diode with `lagic compile`")
        }
        _ => Failure::bad_input(e.to_string()),
    }
}
