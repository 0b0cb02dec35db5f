//! `lagic status [--json]`: what lagic has attached where.

use emit_bpf::decision::Reason;
use lagic_loader::attach::{self, Attachment};
use lagic_loader::decisions::{Counters, DiodeMaps, FlowTable};

use super::shared;
use crate::cli::StatusArgs;
use crate::failure::{Failure, Outcome};

pub fn run(args: StatusArgs) -> Result<Outcome, Failure> {
    let list = attach::attachments().map_err(|e| shared::attach_failure(e, "?"))?;
    // Verdict counters of each attached lagic diode (docs/watch.md).
    // A stream diode's flow table too: how full it is (docs/stream.md, "The
    // flow table"); a full one refuses new flows.
    let (counters, tables): (Vec<Option<Counters>>, Vec<Option<FlowTable>>) = list
        .iter()
        .map(|a| {
            let maps = (!a.foreign && a.program_id != 0)
                .then(|| DiodeMaps::for_program_id(a.program_id).ok())
                .flatten();
            let counters = maps.as_ref().and_then(|m| m.counters().ok());
            let table = maps.as_ref().and_then(|m| m.flow_table().ok().flatten());
            (counters, table)
        })
        .unzip();
    if args.json {
        let items: Vec<serde_json::Value> = list
            .iter()
            .zip(counters.iter().zip(&tables))
            .map(|(a, (c, t))| {
                let mut item = shared::attachment_json(a);
                item["counters"] = serde_json::to_value(c).unwrap_or_default();
                if let Some(t) = t {
                    item["flow_table"] = serde_json::to_value(t).unwrap_or_default();
                }
                item
            })
            .collect();
        crate::io::print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into())
        ))?;
        return Ok(Outcome::Success);
    }
    if list.is_empty() {
        crate::io::print_out("no lagic diode is attached\n")?;
        return Ok(Outcome::Success);
    }
    let mut text = format!(
        "{:<15} {:<9} {:<16} {:>8} {:<7} {:<15} {:<18} since\n",
        "INTERFACE", "DIRECTION", "DIODE", "PROGRAM", "MODE", "STATE", "NETNS"
    );
    for a in &list {
        text.push_str(&format!(
            "{:<15} {:<9} {:<16} {:>8} {:<7} {:<15} {:<18} {}\n",
            a.iface,
            a.direction.as_str(),
            diode_label(a),
            a.program_id,
            a.mode.as_str(),
            state_label(a),
            a.netns_label(),
            shared::since_text(a.since)
        ));
    }
    for ((a, c), t) in list.iter().zip(&counters).zip(&tables) {
        let Some(c) = c else { continue };
        text.push_str(&format!(
            "\n{} {} ({}): pass {}, drop {}",
            a.iface,
            a.direction.as_str(),
            a.diode,
            c.pass,
            c.drops()
        ));
        for reason in Reason::ALL.iter().filter(|r| **r != Reason::Pass) {
            let n = c.get(*reason);
            if n > 0 {
                text.push_str(&format!(", {} {n}", reason.as_str()));
            }
        }
        text.push_str(&format!(", lost events {}", c.lost_events));
        if let Some(t) = t {
            text.push_str(&format!(", flows {} of {}", t.flows, t.capacity));
        }
        text.push('\n');
    }
    crate::io::print_out(&text)?;
    Ok(Outcome::Success)
}

/// The diode's name, or `foreign:NAME` for a program that is not a lagic diode.
fn diode_label(a: &Attachment) -> String {
    if a.foreign {
        format!("foreign:{}", a.diode)
    } else {
        a.diode.clone()
    }
}

/// The health, with `legacy` for pins of an older lagic (detach removes them).
fn state_label(a: &Attachment) -> String {
    if a.legacy {
        format!("{}/legacy", a.health.as_str())
    } else {
        a.health.as_str().to_owned()
    }
}
