//! `lagic detach --iface IF [--direction ...] [--netns NS]`: take a diode off the wire.

use lagic_loader::attach::{self, Health, NetnsId};

use super::shared;
use crate::cli::DetachArgs;
use crate::failure::{Failure, Outcome};

pub fn run(args: DetachArgs) -> Result<Outcome, Failure> {
    let direction = shared::direction(args.direction);
    let gone = match &args.netns {
        None => attach::detach(&args.iface, direction),
        Some(ns) => attach::detach_in(netns_inode(ns)?, &args.iface, direction),
    }
    .map_err(|e| shared::attach_failure(e, &args.iface))?;
    let label = gone.netns_label();
    let text = match gone.health {
        Health::Active => format!(
            "detached {} (program {}) from {} {} in netns {label} ({}); traffic now flows unfiltered\n",
            gone.diode, gone.program_id, gone.iface, gone.direction, gone.mode
        ),
        other => format!(
            "removed the pins of {} on {} {} in netns {label} ({}: nothing was filtering)\n",
            gone.diode,
            gone.iface,
            gone.direction,
            other.as_str()
        ),
    };
    crate::io::print_out(&text).map_err(|f| {
        f.after(&format!(
            "{} is detached from {} {}",
            gone.diode, gone.iface, gone.direction
        ))
    })?;
    Ok(Outcome::Success)
}

/// The inode of the namespace `ns` names: `net:[INO]`, a bare inode, or an `ip netns` name.
fn netns_inode(ns: &str) -> Result<u64, Failure> {
    let bare = ns
        .strip_prefix("net:[")
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(ns);
    if let Ok(ino) = bare.parse() {
        return Ok(ino);
    }
    let named = std::path::Path::new("/run/netns").join(ns);
    if ns.contains('/') || !named.exists() {
        return Err(Failure::bad_input(format!(
            "--netns {ns}: not a namespace name under /run/netns, `net:[INODE]` or an inode"
        ))
        .with_hint("`lagic status` shows each diode's namespace; `ip netns` lists names"));
    }
    NetnsId::of(&named).map(|id| id.ino).map_err(|e| {
        Failure::bad_input(format!(
            "--netns {ns}: cannot read {}: {e}",
            named.display()
        ))
    })
}
