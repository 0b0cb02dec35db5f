//! `lagic detach --iface IF [--direction ...]`: take a diode off the wire.

use lagic_loader::attach::{self, Health};

use super::shared;
use crate::cli::DetachArgs;
use crate::failure::{Failure, Outcome};

pub fn run(args: DetachArgs) -> Result<Outcome, Failure> {
    let direction = shared::direction(args.direction);
    let gone = attach::detach(&args.iface, direction)
        .map_err(|e| shared::attach_failure(e, &args.iface))?;
    match gone.health {
        Health::Active => println!(
            "detached {} (program {}) from {} {} ({}); traffic now flows unfiltered",
            gone.diode, gone.program_id, gone.iface, gone.direction, gone.mode
        ),
        other => println!(
            "removed the pins of {} on {} {} ({}: nothing was filtering)",
            gone.diode,
            gone.iface,
            gone.direction,
            other.as_str()
        ),
    }
    Ok(Outcome::Success)
}
