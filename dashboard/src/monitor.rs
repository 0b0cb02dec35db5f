//! The threads that watch the kernel and push what changed to the pages:
//! the diode on the watched interface (re-read every second, and at once
//! after a replace), its counters (when they change), its drop events (as
//! they arrive: the thread waits on the ring buffer's fd, or, with
//! `--decisions FILE`, reads what `lagic watch --tee` appended to FILE every
//! [`EVENT_WAIT_MS`] and leaves the ring buffer alone), and the lab
//! (every few seconds: its health check is an HTTP request through the
//! diode, which the counters then show).
//!
//! Invariant: after a replace, events and counters are read from the new
//! program's maps; the old program's unread events are dropped with it.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emit_bpf::decision::{atoms, Atom};
use lagic_loader::attach::{self, Attachment};
use lagic_loader::decisions::DiodeMaps;

use crate::follow::{decision_of, LineFollower};
use crate::server::{Push, Shared};
use crate::views::{CountersView, DecisionView, DiodeView, LabView};

/// How often the attachment is re-read when nothing asks for it.
const DIODE_EVERY: Duration = Duration::from_secs(1);
/// How often the counters are read.
const COUNTERS_EVERY: Duration = Duration::from_millis(250);
/// How often the lab's status is read.
const LAB_EVERY: Duration = Duration::from_secs(5);
/// The longest a wait for events lasts, so a stop or refresh is seen soon.
const EVENT_WAIT_MS: i32 = 100;

/// The diode being read.
struct Current {
    program_id: u32,
    name: String,
    maps: Option<DiodeMaps>,
    atoms: Vec<Atom>,
}

/// Starts the diode and lab threads; they end when `shared.stop` is set.
pub(crate) fn start(shared: Arc<Shared>) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    let diode = shared.clone();
    // Drops before the dashboard started are not replayed, as with the ring
    // buffer: the tee file's end is taken here, when the dashboard starts,
    // not whenever the thread first runs (lines appended in between were
    // skipped, or a line cut in half).
    let tee = shared
        .config
        .decisions
        .as_deref()
        .map(LineFollower::from_end);
    threads.push(
        std::thread::Builder::new()
            .name("diode-monitor".into())
            .spawn(move || watch_diode(&diode, tee))
            .expect("spawning the diode monitor"),
    );
    if shared.config.lab.is_some() {
        threads.push(
            std::thread::Builder::new()
                .name("lab-monitor".into())
                .spawn(move || watch_lab(&shared))
                .expect("spawning the lab monitor"),
        );
    }
    threads
}

fn watch_diode(shared: &Shared, mut tee: Option<LineFollower>) {
    let iface = shared.config.iface.clone();
    let direction = shared.config.direction;
    let mut current: Option<Current> = None;
    let mut last_diode = Instant::now() - DIODE_EVERY;
    let mut last_counters = Instant::now() - COUNTERS_EVERY;
    let mut tee_problem_shown = false;
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.refresh.swap(false, Ordering::SeqCst) || last_diode.elapsed() >= DIODE_EVERY {
            last_diode = Instant::now();
            let (found, problem) = match attach::attachment(&iface, direction) {
                Ok(a) => (a, None),
                Err(e) => (None, Some(e.to_string())),
            };
            let view = DiodeView::of(&iface, direction.as_str(), found.as_ref(), problem);
            let program_id = if view.active { view.program_id } else { 0 };
            if current.as_ref().map_or(0, |c| c.program_id) != program_id {
                current = found
                    .as_ref()
                    .filter(|_| program_id != 0)
                    .map(|a| open(shared, a));
                last_counters = Instant::now() - COUNTERS_EVERY;
                if program_id == 0 {
                    shared.update(Push::NoCounters);
                }
            }
            let view = match current.as_ref().and_then(|c| c.maps.is_none().then_some(c)) {
                Some(c) => DiodeView {
                    problem: Some(format!(
                        "program {} has no readable counters or events (compiled by an older lagic?)",
                        c.program_id
                    )),
                    ..view
                },
                None => view,
            };
            shared.update(Push::Diode(view));
        }
        let mut dropped_any = false;
        if let Some(follower) = tee.as_mut() {
            std::thread::sleep(Duration::from_millis(EVENT_WAIT_MS as u64));
            match follower.poll() {
                Ok(lines) => {
                    tee_problem_shown = false;
                    for line in lines {
                        if let Some(d) = decision_of(&line, &iface, direction.as_str()) {
                            dropped_any = true;
                            shared.update(Push::Decision(d));
                        }
                    }
                }
                Err(e) if !tee_problem_shown => {
                    tee_problem_shown = true;
                    eprintln!(
                        "lagic dashboard: cannot read {}: {e} (retrying)",
                        follower.path().display()
                    );
                }
                Err(_) => {}
            }
        }
        let Some(c) = current.as_mut() else {
            if tee.is_none() {
                std::thread::sleep(Duration::from_millis(EVENT_WAIT_MS as u64));
            }
            continue;
        };
        let Some(maps) = c.maps.as_mut() else {
            if tee.is_none() {
                std::thread::sleep(Duration::from_millis(EVENT_WAIT_MS as u64));
            }
            continue;
        };
        if tee.is_none() {
            let mut fd = libc::pollfd {
                fd: maps.events_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the timeout bounds the wait.
            unsafe { libc::poll(&mut fd, 1, EVENT_WAIT_MS) };
            while let Some(event) = maps.next_event() {
                // A record that does not decode is skipped, never guessed at.
                if let Ok(d) = event {
                    dropped_any = true;
                    shared.update(Push::Decision(DecisionView::of(
                        &d, &c.name, &iface, &c.atoms,
                    )));
                }
            }
        }
        if dropped_any || last_counters.elapsed() >= COUNTERS_EVERY {
            last_counters = Instant::now();
            if let Ok(counters) = maps.counters() {
                shared.update(Push::Counters(CountersView::of(c.program_id, &counters)));
            }
        }
    }
}

/// Opens the maps of the attached program and names its atoms: from a spec
/// compiled here, else from the spec it was attached from, if it was one.
fn open(shared: &Shared, a: &Attachment) -> Current {
    let atoms = shared
        .atoms
        .lock()
        .ok()
        .and_then(|known| known.get(&a.diode).cloned())
        .or_else(|| source_atoms(a))
        .unwrap_or_default();
    Current {
        program_id: a.program_id,
        name: a.diode.clone(),
        maps: DiodeMaps::for_program_id(a.program_id).ok(),
        atoms,
    }
}

/// The atoms of the spec the diode was attached from, when its source is a
/// spec that still compiles to a program of the same name.
fn source_atoms(a: &Attachment) -> Option<Vec<Atom>> {
    let text = std::fs::read_to_string(a.source.as_ref()?).ok()?;
    let (name, atoms) = name_and_atoms(&text)?;
    (name == a.diode).then_some(atoms)
}

/// The program name and formula atoms of a spec, when it lowers and emits
/// (a stream spec's atoms as its events number them, `stream_atoms`).
pub(crate) fn name_and_atoms(text: &str) -> Option<(String, Vec<Atom>)> {
    let spec = predicate_ir::parse(text).ok()?;
    if spec.mode != predicate_ir::Mode::Packet {
        let stream = predicate_ir::lower_stream(&spec).ok()?;
        let options = emit_bpf::Options::default();
        let name = emit_bpf::compile_stream_mapped_with(&stream, &options)
            .ok()?
            .0
            .entry
            .name;
        return Some((name, emit_bpf::decision::stream_atoms(&stream)));
    }
    let program = predicate_ir::lower(&spec).ok()?;
    let name = emit_bpf::compile(&program).ok()?.entry.name;
    Some((name, atoms(&program)))
}

fn watch_lab(shared: &Shared) {
    let Some(name) = shared.config.lab.clone() else {
        return;
    };
    let mut last = Instant::now() - LAB_EVERY;
    while !shared.stop.load(Ordering::SeqCst) {
        if last.elapsed() >= LAB_EVERY {
            last = Instant::now();
            let labs = lagic_lab::status(lagic_lab::LabKind::Lab, Some(&name)).unwrap_or_default();
            shared.update(Push::Lab(LabView::of(&name, labs.first())));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
