//! `lagic attach DIODE --iface IF [--direction ...] [--mode ...]`: put a diode on the wire.

use lagic_loader::attach::{self, AttachOptions, Mode, ModeChoice};

use super::shared;
use crate::cli::{AttachArgs, ModeArg};
use crate::failure::{Failure, Outcome};

pub fn run(args: AttachArgs) -> Result<Outcome, Failure> {
    let object = shared::diode_object(&args.diode, !args.no_validate)?;
    let options = AttachOptions {
        mode: match args.mode {
            ModeArg::Auto => ModeChoice::Auto,
            ModeArg::Tcx => ModeChoice::Only(Mode::Tcx),
            ModeArg::Clsact => ModeChoice::Only(Mode::Clsact),
        },
        source: Some(source_name(&args.diode)),
        allow_foreign_object: args.allow_foreign_object,
    };
    let direction = shared::direction(args.direction);
    let report = attach::attach(&object, &args.iface, direction, &options)
        .map_err(|e| shared::attach_failure(e, &args.iface))?;
    let a = &report.attachment;
    // Not `println!`: it panics on a reader that went away (`lagic attach ... | head -0`),
    // after the diode is already in place.
    let mut text = match report.replaced_program_id {
        Some(old) => format!(
            "replaced program {old} with {} (program {}) on {} {} ({}), atomically\n",
            a.diode, a.program_id, a.iface, a.direction, a.mode
        ),
        None => format!(
            "attached {} (program {}) to {} {} ({}); pinned at {}\n",
            a.diode,
            a.program_id,
            a.iface,
            a.direction,
            a.mode,
            a.pin_dir.display()
        ),
    };
    if let Some(name) = &a.netns_name {
        text.push_str(&format!(
            "  (the interface is in network namespace {name})\n"
        ));
    }
    crate::io::print_out(&text).map_err(|f| {
        f.after(&format!(
            "{} (program {}) is attached to {} {}",
            a.diode, a.program_id, a.iface, a.direction
        ))
    })?;
    Ok(Outcome::Success)
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
