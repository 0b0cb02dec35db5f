//! `lagic watch [--iface I] [--json] [--spec FILE]...`: print the drops of
//! attached diodes as they happen (docs/watch.md has the line and JSON
//! formats). Ends with exit 0 on Ctrl-C (SIGINT) and on a closed stdout.
//!
//! `--tee FILE` also appends each decision as one JSON line to FILE, for
//! `lagic dashboard --decisions FILE`: a ring buffer has one consumer
//! position, so one reader fans the drops out. Each line is one `write`
//! to a file opened for appending (whole lines, even with several watches
//! on one file); when the next line would take FILE past its bound, FILE
//! is emptied first (a follower then starts over at byte 0). A tee that
//! cannot be written ends the watch with exit 2: its reader would
//! otherwise miss drops without knowing.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emit_bpf::decision::{atoms, stream_atoms, Atom};
use lagic_loader::attach::{self, Attachment, Health};
use lagic_loader::decisions::{Decision, DiodeMaps};

use super::shared;
use crate::cli::WatchArgs;
use crate::failure::{Failure, Outcome};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// What a line needs besides the event: where the diode sits and how to
/// name its formula's atoms.
pub(crate) struct Source {
    pub iface: String,
    pub direction: &'static str,
    pub diode: String,
    pub atoms: Vec<Atom>,
}

struct Watched {
    source: Source,
    maps: DiodeMaps,
}

pub fn run(args: WatchArgs) -> Result<Outcome, Failure> {
    let specs = read_specs(&args.spec)?;
    let list = attach::attachments().map_err(|e| shared::attach_failure(e, "?"))?;
    let list: Vec<&Attachment> = list
        .iter()
        .filter(|a| args.iface.as_ref().is_none_or(|i| *i == a.iface))
        .filter(|a| a.health != Health::Stale && a.program_id != 0)
        .collect();
    if list.is_empty() {
        return Err(Failure::bad_input(match &args.iface {
            Some(i) => format!("no lagic diode is attached to {i}"),
            None => "no lagic diode is attached".to_string(),
        })
        .with_hint("attach one with `lagic attach` (see `lagic status`)"));
    }
    let mut watched = Vec::new();
    let mut skipped = Vec::new();
    for a in list {
        let maps = match DiodeMaps::for_program_id(a.program_id) {
            Ok(maps) => maps,
            Err(e) => {
                skipped.push(format!("{} {}: {e}", a.iface, a.direction.as_str()));
                continue;
            }
        };
        let atoms = specs
            .iter()
            .find(|(name, _)| *name == a.diode)
            .map(|(_, atoms)| atoms.clone())
            .or_else(|| source_atoms(a))
            .unwrap_or_default();
        watched.push(Watched {
            source: Source {
                iface: a.iface.clone(),
                direction: a.direction.as_str(),
                diode: a.diode.clone(),
                atoms,
            },
            maps,
        });
    }

    if watched.is_empty() {
        return Err(Failure::bad_input(format!(
            "no attached diode records decisions: {}",
            skipped.join("; ")
        ))
        .with_hint("recompile the diode with this lagic and attach it again"));
    }
    let mut tee = match &args.tee {
        Some(path) => Some(Tee::open(path, args.tee_max_bytes)?),
        None => None,
    };
    for s in &skipped {
        crate::io::print_err(&format!("lagic watch: not watching {s}"));
    }

    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let mut out = std::io::stdout().lock();
    loop {
        for w in &mut watched {
            while let Some(event) = w.maps.next_event() {
                // One instant per event, so the tee and the output name the same time.
                let event = event.map(|d| {
                    let at = wall_clock(d.time_ns);
                    (d, at)
                });
                if let (Some(tee), Ok((d, at))) = (tee.as_mut(), &event) {
                    tee.append(&json_line(&w.source, d, *at))?;
                }
                let line = match event {
                    Ok((d, at)) if args.json => json_line(&w.source, &d, at),
                    Ok((d, at)) => text_line(&w.source, &d, at),
                    Err(e) => format!("{}: undecodable event: {e}", w.source.iface),
                };
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    return Ok(Outcome::Success); // stdout closed: nobody is watching
                }
            }
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Ok(Outcome::Success);
        }
        let mut fds: Vec<libc::pollfd> = watched
            .iter()
            .map(|w| libc::pollfd {
                fd: w.maps.events_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds. A timeout
        // bounds how long a SIGINT or a closed pipe can go unnoticed.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 250) };
        if out.flush().is_err() {
            return Ok(Outcome::Success);
        }
    }
}

/// The `--tee` file.
struct Tee {
    path: PathBuf,
    file: std::fs::File,
    max_bytes: u64,
}

impl Tee {
    fn open(path: &std::path::Path, max_bytes: u64) -> Result<Tee, Failure> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Failure::bad_input(format!("--tee {}: cannot be opened: {e}", path.display()))
                    .with_hint("name a writable file (its directory must exist)")
            })?;
        Ok(Tee {
            path: path.to_owned(),
            file,
            max_bytes,
        })
    }

    /// Appends `line` and its newline in one write, emptying the file first
    /// when it would pass its bound.
    fn append(&mut self, line: &str) -> Result<(), Failure> {
        let failed = |e: std::io::Error| {
            Failure::bad_input(format!(
                "--tee {}: cannot be written: {e}",
                self.path.display()
            ))
        };
        let mut record = Vec::with_capacity(line.len() + 1);
        record.extend_from_slice(line.as_bytes());
        record.push(b'\n');
        let len = self.file.metadata().map_err(failed)?.len();
        if len + record.len() as u64 > self.max_bytes {
            self.file.set_len(0).map_err(failed)?;
        }
        self.file.write_all(&record).map_err(failed)
    }
}

/// `(program name, atoms)` of each `--spec`.
fn read_specs(paths: &[PathBuf]) -> Result<Vec<(String, Vec<Atom>)>, Failure> {
    paths
        .iter()
        .map(|p| {
            let spec = shared::read_spec(p)?;
            let cannot = |e: &dyn std::fmt::Display| {
                Failure::failed(format!("{}: cannot be compiled: {e}", p.display()))
            };
            if spec.mode != predicate_ir::Mode::Packet {
                // A stream diode's events name atoms of its stream formula.
                let stream = shared::lower_stream_spec(p, &spec)?;
                let (module, _) =
                    emit_bpf::compile_stream_mapped_with(&stream, &emit_bpf::Options::default())
                        .map_err(|e| cannot(&e))?;
                return Ok((module.entry.name, stream_atoms(&stream)));
            }
            let program = shared::lower_spec(p, &spec)?;
            let name = emit_bpf::compile(&program)
                .map_err(|e| cannot(&e))?
                .entry
                .name;
            Ok((name, atoms(&program)))
        })
        .collect()
}

/// The atoms of the spec the diode was attached from, when its source
/// names a spec that still compiles to a program of the same name.
fn source_atoms(a: &Attachment) -> Option<Vec<Atom>> {
    let text = std::fs::read_to_string(a.source.as_ref()?).ok()?;
    let spec = predicate_ir::parse(&text).ok()?;
    let (name, atoms) = if spec.mode == predicate_ir::Mode::Packet {
        let program = predicate_ir::lower(&spec).ok()?;
        (
            emit_bpf::compile(&program).ok()?.entry.name,
            atoms(&program),
        )
    } else {
        let stream = predicate_ir::lower_stream(&spec).ok()?;
        let options = emit_bpf::Options::default();
        let name = emit_bpf::compile_stream_mapped_with(&stream, &options)
            .ok()?
            .0
            .entry
            .name;
        (name, stream_atoms(&stream))
    };
    (name == a.diode).then_some(atoms)
}

/// Wall-clock time of a `CLOCK_MONOTONIC` instant.
fn wall_clock(monotonic_ns: u64) -> SystemTime {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now_mono = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let age = Duration::from_nanos(now_mono.saturating_sub(monotonic_ns));
    SystemTime::now() - age
}

/// `2026-12-04T17:01:31.123456Z`.
fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = shared::utc(d.as_secs());
    format!("{}.{:06}Z", secs.trim_end_matches('Z'), d.subsec_micros())
}

/// Payload bytes as text: printable ASCII as is, `\` as `\\`, anything
/// else as `\xNN`.
pub(crate) fn escape(bytes: &[u8]) -> String {
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

fn construct(source: &Source, atom: u32) -> String {
    source
        .atoms
        .get(atom as usize)
        .map_or_else(|| format!("atom {atom}"), |a| a.to_string())
}

/// One JSON object (docs/watch.md, "JSON lines").
pub(crate) fn json_line(source: &Source, d: &Decision, at: SystemTime) -> String {
    let flow = d.flow.as_ref().map(|f| {
        serde_json::json!({
            "src_ip": f.src_ip.to_string(),
            "src_port": f.src_port,
            "dest_ip": f.dest_ip.to_string(),
            "dest_port": f.dest_port,
            "proto": f.proto,
        })
    });
    let decided_by = d.decided_by.map(|atom| {
        serde_json::json!({
            "atom": atom,
            "scan": match source.atoms.get(atom as usize) {
                Some(Atom::Scan { scan, .. }) => Some(*scan),
                _ => None,
            },
            "path": source.atoms.get(atom as usize).and_then(Atom::path),
            "construct": construct(source, atom),
        })
    });
    let located = d.locate(&source.atoms);
    let value = serde_json::json!({
        "timestamp": timestamp(at),
        "iface": source.iface,
        "direction": source.direction,
        "diode": source.diode,
        "verdict": "drop",
        "reason": d.reason.as_str(),
        "flow": flow,
        "decided_by": decided_by,
        "offset": located.map(|l| l.offset),
        "offset_span": located.map(|l| l.span),
        "offset_exact": located.map(|l| l.is_exact()),
        "excerpt_start": d.excerpt_start,
        "excerpt": escape(&d.excerpt),
        "payload_len": d.payload_len,
        "frame_len": d.frame_len,
    });
    value.to_string()
}

/// One line for people.
pub(crate) fn text_line(source: &Source, d: &Decision, at: SystemTime) -> String {
    let mut line = format!(
        "{} {} {} DROP {}",
        timestamp(at),
        source.iface,
        source.direction,
        d.reason.as_str()
    );
    if let Some(f) = &d.flow {
        let port = |p: Option<u16>| p.map_or(String::new(), |p| format!(":{p}"));
        let (s, t) = match (f.src_ip, f.dest_ip) {
            (std::net::IpAddr::V6(s), std::net::IpAddr::V6(t)) => {
                (format!("[{s}]"), format!("[{t}]"))
            }
            (s, t) => (s.to_string(), t.to_string()),
        };
        line.push_str(&format!(
            " {s}{} -> {t}{} proto {}",
            port(f.src_port),
            port(f.dest_port),
            f.proto
        ));
    }
    if let Some(atom) = d.decided_by {
        match source.atoms.get(atom as usize).and_then(Atom::path) {
            Some(path) => line.push_str(&format!(" by {path} ({})", construct(source, atom))),
            None => line.push_str(&format!(" by {}", construct(source, atom))),
        }
    }
    match d.locate(&source.atoms) {
        Some(l) if l.is_exact() => line.push_str(&format!(" at byte {}", l.offset)),
        Some(l) => line.push_str(&format!(" in bytes {}..{}", l.offset, l.offset + l.span)),
        None => {}
    }
    if !d.excerpt.is_empty() {
        line.push_str(&format!(
            " [{}..] \"{}\"",
            d.excerpt_start,
            escape(&d.excerpt).replace('"', "\\\"")
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use emit_bpf::decision::Reason;
    use lagic_loader::decisions::Flow;

    fn fixed() -> (Source, Decision) {
        let spec = predicate_ir::parse(include_str!("../../../examples/hateless.json")).unwrap();
        let program = predicate_ir::lower(&spec).unwrap();
        let source = Source {
            iface: "lagic-h0".into(),
            direction: "ingress",
            diode: "hateless".into(),
            atoms: atoms(&program),
        };
        // The scan stopped in the chunk payload[0..8], which it began in
        // its initial state; "hate" ends at payload[6].
        let d = Decision {
            time_ns: 0,
            reason: Reason::Predicate,
            decided_by: Some(0),
            offset: Some(0),
            offset_span: 8,
            span_state: Some([0, 0]),
            ifindex: 7,
            ingress_ifindex: 7,
            frame_len: 84,
            payload_start: Some(54),
            payload_len: 30,
            excerpt_start: 0,
            excerpt: b"I \"hate\"\\ you\r\n\x00".to_vec(),
            head: Vec::new(),
            flow: Some(Flow {
                src_ip: "10.77.0.2".parse().unwrap(),
                src_port: Some(8080),
                dest_ip: "10.77.0.1".parse().unwrap(),
                dest_port: Some(41000),
                proto: 6,
            }),
        };
        (source, d)
    }

    const AT: u64 = 1_796_000_000; // a fixed instant

    #[test]
    fn json_line_is_golden() {
        let (source, d) = fixed();
        let at = UNIX_EPOCH + Duration::from_micros(AT * 1_000_000 + 250);
        assert_eq!(
            json_line(&source, &d, at),
            r#"{"decided_by":{"atom":0,"construct":"scan 0 (dfa over payload[0..n])","path":"$.predicate.arg","scan":0},"diode":"hateless","direction":"ingress","excerpt":"I \"hate\"\\\\ you\\x0d\\x0a\\x00","excerpt_start":0,"flow":{"dest_ip":"10.77.0.1","dest_port":41000,"proto":6,"src_ip":"10.77.0.2","src_port":8080},"frame_len":84,"iface":"lagic-h0","offset":6,"offset_exact":true,"offset_span":1,"payload_len":30,"reason":"predicate","timestamp":"2026-11-30T00:53:20.000250Z","verdict":"drop"}"#
        );
    }

    #[test]
    fn text_line_is_golden() {
        let (source, d) = fixed();
        let at = UNIX_EPOCH + Duration::from_secs(AT);
        assert_eq!(
            text_line(&source, &d, at),
            r#"2026-11-30T00:53:20.000000Z lagic-h0 ingress DROP predicate 10.77.0.2:8080 -> 10.77.0.1:41000 proto 6 by $.predicate.arg (scan 0 (dfa over payload[0..n])) at byte 6 [0..] "I \"hate\"\\ you\x0d\x0a\x00""#
        );
    }

    #[test]
    fn a_span_that_cannot_be_replayed_stays_a_span() {
        let (source, mut d) = fixed();
        let at = UNIX_EPOCH + Duration::from_secs(AT);
        // Without the excerpt's bytes (excerpts off) the chunk stays.
        let full = d.excerpt.clone();
        d.excerpt.clear();
        let line = text_line(&source, &d, at);
        assert!(
            line.ends_with(" over payload[0..n])) in bytes 0..8"),
            "{line}"
        );
        let json: serde_json::Value = serde_json::from_str(&json_line(&source, &d, at)).unwrap();
        assert_eq!(
            (&json["offset"], &json["offset_span"], &json["offset_exact"]),
            (&0.into(), &8.into(), &false.into())
        );
        // An excerpt that ends before the word does too.
        d.excerpt = full[..5].to_vec();
        assert!(text_line(&source, &d, at).contains(" in bytes 0..8 [0..]"));
        // Without the spec (no atoms) nothing can be replayed.
        d.excerpt = full;
        let unnamed = Source {
            atoms: Vec::new(),
            ..source
        };
        assert!(text_line(&unnamed, &d, at).contains(" by atom 0 in bytes 0..8 [0..]"));
        // A record from an older lagic carries no starting state.
        d.span_state = None;
        assert!(text_line(&unnamed, &d, at).contains(" in bytes 0..8 [0..]"));
    }

    /// An `http_response` view's drops name the body's or the framing's
    /// atom with its path, and the byte.
    #[test]
    fn http_view_drops_name_the_part_and_the_byte() {
        let spec = predicate_ir::parse(include_str!(
            "../../../examples/stream/http_json_start.json"
        ))
        .unwrap();
        let (hateless, mut d) = fixed();
        let source = Source {
            diode: "http_json_start".into(),
            atoms: stream_atoms(&predicate_ir::lower_stream(&spec).unwrap()),
            ..hateless
        };
        let at = UNIX_EPOCH + Duration::from_secs(AT);
        // The body's prefix scan (the stream meaning's second atom, after
        // the header predicate's four), replayed from its window's start.
        d.decided_by = Some(5);
        (d.offset, d.offset_span, d.span_state) = (Some(3), 1, Some([0, 0]));
        (d.excerpt_start, d.excerpt) = (3, b"x[[".to_vec());
        let line = text_line(&source, &d, at);
        assert!(
            line.contains(
                " by $.view.http_response.body (scan 0 (dfa over body[0..1])) at byte 3 "
            ),
            "{line}"
        );
        let json: serde_json::Value = serde_json::from_str(&json_line(&source, &d, at)).unwrap();
        assert_eq!(json["decided_by"]["path"], "$.view.http_response.body");
        assert_eq!(
            (&json["offset"], &json["offset_exact"]),
            (&3.into(), &true.into())
        );
        // The framing, at the byte it failed on.
        d.decided_by = Some(8);
        d.span_state = Some(emit_bpf::decision::NOT_REPLAYABLE);
        let line = text_line(&source, &d, at);
        assert!(
            line.contains(" by $.view.http_response (HTTP framing) at byte 3 "),
            "{line}"
        );
        let json: serde_json::Value = serde_json::from_str(&json_line(&source, &d, at)).unwrap();
        assert_eq!(json["decided_by"]["path"], "$.view.http_response");
        assert_eq!(json["decided_by"]["scan"], serde_json::Value::Null);
        // A scan's span kept as a span (its state where it starts is not
        // recorded): bytes, not a byte.
        d.decided_by = Some(5);
        d.offset_span = 20;
        assert!(text_line(&source, &d, at).contains(" in bytes 3..23 "));
    }

    #[test]
    fn escape_keeps_printables_and_hexes_the_rest() {
        assert_eq!(escape(b"ab c~"), "ab c~");
        assert_eq!(escape(b"\\\x7f\x80\n"), "\\\\\\x7f\\x80\\x0a");
    }

    #[test]
    fn tee_appends_whole_lines_and_empties_the_file_at_its_bound() {
        let path = std::env::temp_dir().join(format!("lagic-tee-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut tee = Tee::open(&path, 10).unwrap();
        tee.append("abcd").unwrap();
        tee.append("efgh").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abcd\nefgh\n");
        // A third line would take it to 15 bytes: emptied first.
        tee.append("ijkl").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "ijkl\n");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn tee_in_a_missing_directory_is_bad_input() {
        let e = Tee::open(std::path::Path::new("/nonexistent-lagic/d.jsonl"), 4096)
            .err()
            .unwrap();
        assert_eq!(e.exit_code(), Outcome::BadInput);
    }
}
