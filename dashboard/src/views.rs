//! What the page receives: JSON views of the diode, its counters, its
//! drops and the lab. Bytes from the packet (excerpts) are escaped here, so
//! the page only ever shows printable text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emit_bpf::decision::{Atom, Reason};
use lagic_loader::attach::{Attachment, Health};
use lagic_loader::decisions::{Counters, Decision};
use serde::Serialize;

/// The diode on the watched interface, or its absence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiodeView {
    /// The interface watched.
    pub iface: String,
    /// Its direction.
    pub direction: &'static str,
    /// Whether a lagic diode is attached there and filtering.
    pub active: bool,
    /// The diode's name (the program name), when attached.
    pub diode: Option<String>,
    /// The kernel's program id (0 when none).
    pub program_id: u32,
    /// `tcx` or `clsact`.
    pub mode: Option<&'static str>,
    /// `active`, `interface-gone` or `stale`.
    pub health: Option<&'static str>,
    /// When it was attached, Unix milliseconds.
    pub since_ms: Option<u64>,
    /// Where its object came from.
    pub source: Option<String>,
    /// Why the diode could not be read, when it could not.
    pub problem: Option<String>,
}

impl DiodeView {
    /// The view of `attachment` (none attached when `None`).
    pub fn of(
        iface: &str,
        direction: &'static str,
        attachment: Option<&Attachment>,
        problem: Option<String>,
    ) -> DiodeView {
        let a = attachment;
        DiodeView {
            iface: iface.to_owned(),
            direction,
            active: a.is_some_and(|a| a.health == Health::Active && !a.foreign),
            diode: a.map(|a| {
                if a.foreign {
                    format!("foreign:{}", a.diode)
                } else {
                    a.diode.clone()
                }
            }),
            program_id: a.map_or(0, |a| a.program_id),
            mode: a.map(|a| a.mode.as_str()),
            health: a.map(|a| a.health.as_str()),
            since_ms: a.and_then(|a| millis(a.since)),
            source: a.and_then(|a| a.source.clone()),
            problem,
        }
    }
}

/// Verdict counts by reason, in the order of [`Reason::ALL`] (`lost_events` last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountersView {
    /// The program they belong to.
    pub program_id: u32,
    /// Packets passed.
    pub pass: u64,
    /// Packets dropped, whatever the reason.
    pub drop: u64,
    /// `(reason, count)` for every reason but pass.
    pub reasons: Vec<(&'static str, u64)>,
    /// Drop events lost to a full ring buffer.
    pub lost_events: u64,
}

impl CountersView {
    /// The view of `c`.
    pub fn of(program_id: u32, c: &Counters) -> CountersView {
        CountersView {
            program_id,
            pass: c.pass,
            drop: c.drops(),
            reasons: Reason::ALL
                .iter()
                .filter(|r| **r != Reason::Pass)
                .map(|r| (r.as_str(), c.get(*r)))
                .collect(),
            lost_events: c.lost_events,
        }
    }
}

/// The flow of a drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowView {
    /// Source address.
    pub src_ip: String,
    /// Source port.
    pub src_port: Option<u16>,
    /// Destination address.
    pub dest_ip: String,
    /// Destination port.
    pub dest_port: Option<u16>,
    /// IP protocol.
    pub proto: u8,
}

/// One drop, for the feed and for a blocked prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionView {
    /// Wall-clock time of the drop, Unix milliseconds.
    pub time_ms: u64,
    /// The diode's name.
    pub diode: String,
    /// The interface.
    pub iface: String,
    /// Why it dropped ([`Reason::as_str`]).
    pub reason: &'static str,
    /// The flow, when the frame is IP.
    pub flow: Option<FlowView>,
    /// The part of the predicate that decided: `PATH (CONSTRUCT)` for a scan
    /// named from its spec, the construct, or `atom N`.
    pub decided_by: Option<String>,
    /// Payload offset where the deciding byte's span starts (the byte
    /// itself when `offset_span` is 1; see `Decision::locate`).
    pub offset: Option<u32>,
    /// The span's length: 1 when `offset` is the exact deciding byte.
    pub offset_span: Option<u32>,
    /// Payload offset of the excerpt's first byte.
    pub excerpt_start: u32,
    /// The excerpt, escaped ([`escape`]).
    pub excerpt: String,
    /// The TCP payload's length.
    pub payload_len: u32,
    /// The frame's length.
    pub frame_len: u32,
}

impl DecisionView {
    /// The view of `d`, dropped by `diode` on `iface`, naming atoms from `atoms`.
    pub fn of(d: &Decision, diode: &str, iface: &str, atoms: &[Atom]) -> DecisionView {
        let located = d.locate(atoms);
        DecisionView {
            time_ms: millis(wall_clock(d.time_ns)).unwrap_or(0),
            diode: diode.to_owned(),
            iface: iface.to_owned(),
            reason: d.reason.as_str(),
            flow: d.flow.as_ref().map(|f| FlowView {
                src_ip: f.src_ip.to_string(),
                src_port: f.src_port,
                dest_ip: f.dest_ip.to_string(),
                dest_port: f.dest_port,
                proto: f.proto,
            }),
            decided_by: d.decided_by.map(|atom| match atoms.get(atom as usize) {
                Some(a) => match a.path() {
                    Some(path) => format!("{path} ({a})"),
                    None => a.to_string(),
                },
                None => format!("atom {atom}"),
            }),
            offset: located.map(|l| l.offset),
            offset_span: located.map(|l| l.span),
            excerpt_start: d.excerpt_start,
            excerpt: escape(&d.excerpt),
            payload_len: d.payload_len,
            frame_len: d.frame_len,
        }
    }
}

/// The lab, as `lagic lab status` sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabView {
    /// The lab's name.
    pub name: String,
    /// Whether a lab by that name is recorded.
    pub exists: bool,
    /// Everything in place (namespace, link, enclave, health, diode).
    pub up: bool,
    /// The namespace exists.
    pub netns: bool,
    /// The host-side link exists.
    pub link: bool,
    /// The enclave process runs.
    pub enclave_running: bool,
    /// The enclave answered its health check through the diode.
    pub healthy: bool,
    /// `http://IP:PORT`.
    pub enclave: Option<String>,
    /// The enclave runs in a VM.
    pub vm: bool,
}

impl LabView {
    /// The view of lab `name` from `status` (`None`: no such lab).
    pub fn of(name: &str, status: Option<&lagic_lab::LabStatus>) -> LabView {
        match status {
            Some(s) => LabView {
                name: name.to_owned(),
                exists: true,
                up: s.is_up(),
                netns: s.netns,
                link: s.link,
                enclave_running: s.enclave_running,
                healthy: s.healthy,
                enclave: Some(format!("http://{}:{}", s.state.enclave_ip, s.state.port)),
                vm: s.state.vm.is_some(),
            },
            None => LabView {
                name: name.to_owned(),
                exists: false,
                up: false,
                netns: false,
                link: false,
                enclave_running: false,
                healthy: false,
                enclave: None,
                vm: false,
            },
        }
    }
}

fn millis(t: SystemTime) -> Option<u64> {
    let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis();
    (ms > 0).then(|| u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Wall-clock time of a `CLOCK_MONOTONIC` instant (`bpf_ktime_get_ns`).
fn wall_clock(monotonic_ns: u64) -> SystemTime {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    SystemTime::now() - Duration::from_nanos(now.saturating_sub(monotonic_ns))
}

/// Packet bytes as text: printable ASCII as is, `\` as `\\`, anything else
/// as `\xNN` (the escaping of `lagic watch`, docs/watch.md).
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagic_loader::decisions::Flow;

    #[test]
    fn escape_keeps_printables_and_hexes_the_rest() {
        assert_eq!(escape(b"I hate <b>"), "I hate <b>");
        assert_eq!(escape(b"\\\r\n\x00\xff"), "\\\\\\x0d\\x0a\\x00\\xff");
    }

    #[test]
    fn a_scan_drop_is_named_by_its_path() {
        let spec = predicate_ir::parse(include_str!("../../examples/hateless.json")).unwrap();
        let atoms = emit_bpf::decision::atoms(&predicate_ir::lower(&spec).unwrap());
        let d = Decision {
            time_ns: 0,
            reason: Reason::Predicate,
            decided_by: Some(0),
            offset: Some(64),
            offset_span: 64,
            span_state: Some([0, 0]),
            ifindex: 3,
            ingress_ifindex: 3,
            frame_len: 241,
            payload_start: Some(54),
            payload_len: 175,
            excerpt_start: 64,
            excerpt: b"I hate\r\n".to_vec(),
            head: Vec::new(),
            flow: Some(Flow {
                src_ip: "172.30.0.11".parse().unwrap(),
                src_port: Some(8080),
                dest_ip: "172.30.0.1".parse().unwrap(),
                dest_port: Some(43502),
                proto: 6,
            }),
        };
        let v = DecisionView::of(&d, "hateless", "lgh-main", &atoms);
        assert_eq!(
            v.decided_by.as_deref(),
            Some("$.predicate.arg (scan 0 (dfa over payload[0..n]))")
        );
        // Replayed from the chunk's start: "hate" ends at payload[64 + 5].
        assert_eq!((v.offset, v.offset_span), (Some(69), Some(1)));
        // Without the spec's atoms the chunk stays a span.
        let unnamed = DecisionView::of(&d, "hateless", "lgh-main", &[]);
        assert_eq!((unnamed.offset, unnamed.offset_span), (Some(64), Some(64)));
        assert_eq!(v.excerpt, "I hate\\x0d\\x0a");
        assert_eq!(v.flow.unwrap().dest_port, Some(43502));
        // Unnamed atoms say their number rather than a guess.
        let unnamed = DecisionView::of(&d, "hateless", "lgh-main", &[]);
        assert_eq!(unnamed.decided_by.as_deref(), Some("atom 0"));

        // An http view's drop, named from its spec: the body's atom, the
        // framing with the view's path.
        let (name, atoms) = crate::monitor::name_and_atoms(include_str!(
            "../../examples/stream/http_json_start.json"
        ))
        .unwrap();
        assert_eq!(name, "http_json_start");
        let d = Decision {
            decided_by: Some(4),
            span_state: Some(emit_bpf::decision::NOT_REPLAYABLE),
            offset_span: 1,
            ..d
        };
        let v = DecisionView::of(&d, &name, "lgh-main", &atoms);
        assert_eq!(v.decided_by.as_deref(), Some("body length < 1400"));
        assert_eq!((v.offset, v.offset_span), (Some(64), Some(1)));
        let framing = atoms.len() as u32 - 1;
        let d = Decision {
            decided_by: Some(framing),
            ..d
        };
        let v = DecisionView::of(&d, &name, "lgh-main", &atoms);
        assert_eq!(
            v.decided_by.as_deref(),
            Some("$.view.http_response (HTTP framing)")
        );
    }
}
