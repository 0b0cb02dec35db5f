//! `lagic status [--json]`: what lagic has attached where.

use std::time::{SystemTime, UNIX_EPOCH};

use lagic_loader::attach::{self, Attachment};

use crate::cli::StatusArgs;
use crate::failure::{Failure, Outcome};

pub fn run(args: StatusArgs) -> Result<Outcome, Failure> {
    let list = attach::attachments().map_err(|e| super::attach::failure(e, "?"))?;
    if args.json {
        let items: Vec<serde_json::Value> = list.iter().map(to_json).collect();
        crate::io::print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into())
        ));
        return Ok(Outcome::Success);
    }
    if list.is_empty() {
        crate::io::print_out("no lagic diode is attached\n");
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
            since_text(a.since)
        ));
    }
    crate::io::print_out(&text);
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

pub(crate) fn to_json(a: &Attachment) -> serde_json::Value {
    let since = a
        .since
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::json!({
        "interface": a.iface,
        "direction": a.direction.as_str(),
        "diode": a.diode,
        "program_id": a.program_id,
        "link_id": a.link_id,
        "mode": a.mode.as_str(),
        "state": a.health.as_str(),
        "ifindex": a.ifindex,
        "since": utc(since),
        "since_unix": since,
        "source": a.source,
        "pin_dir": a.pin_dir.display().to_string(),
        "netns": a.netns_label(),
        "netns_inode": a.netns.map(|n| n.ino),
        "foreign": a.foreign,
        "legacy": a.legacy,
    })
}

/// `2026-11-30T10:50:57Z (12s ago)`.
pub(crate) fn since_text(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if secs == 0 {
        return "unknown".to_owned();
    }
    let ago = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{} ({})", utc(secs), ago_text(ago))
}

fn ago_text(s: u64) -> String {
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Seconds since the Unix epoch as an ISO 8601 UTC timestamp.
pub(crate) fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian), after Howard Hinnant's
    // well-known derivation: shift to an era starting on March 1st, 0000.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
