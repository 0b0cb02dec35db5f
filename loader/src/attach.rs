//! Attaching diodes to network interfaces, replacing them atomically, detaching them, and
//! reporting what is attached where, in every network namespace.
//!
//! A diode is attached as a TC classifier on one interface and direction, in one of two
//! modes:
//! - **TCX** (Linux 6.6+): a `bpf_link` of type `BPF_LINK_TYPE_TCX`, placed first among the
//!   interface's TCX programs. No qdisc is involved. Preferred whenever the kernel has it.
//! - **clsact** (the fallback): a `cls_bpf` filter in direct-action mode under the `clsact`
//!   qdisc, at lagic's own priority and handle ([`CLSACT_PRIORITY`], [`CLSACT_HANDLE`]).
//!
//! The attachment is pinned on the host's bpffs so that it outlives the process and a later
//! lagic finds it; `pins` owns the pin layout, the lock and the metadata record,
//! `sys` every raw `bpf(2)` command and `netlink` lagic's own rtnetlink
//! requests. This module is the policy on top.
//!
//! Invariants:
//! - An interface is named by its network namespace and ifindex, not its name alone: the
//!   same name in two namespaces is two interfaces. At most one lagic diode per (namespace,
//!   interface, direction); attaching where one sits replaces it.
//! - Replacing never leaves a window without a diode. TCX: `BPF_LINK_UPDATE` on the pinned link
//!   swaps the program inside the link; the kernel publishes the new program array with one
//!   RCU pointer store, so each packet runs the old program or the new one. clsact: a
//!   `RTM_NEWTFILTER` without `NLM_F_EXCL` on lagic's existing priority and handle makes
//!   `cls_bpf` swap the program in place (`list_replace_rcu`), again one pointer store. The
//!   new program is loaded (and verified) before anything is touched, so a rejected diode
//!   leaves the old one in place.
//! - [`attach`] reports success only after reading the attachment back from the kernel
//!   (`BPF_PROG_QUERY` of the TCX hook, or the clsact filter list) and finding its program
//!   there; otherwise it fails with [`AttachError::NotInPlace`].
//! - The record is written before each kernel change (state pending) and completed after, so
//!   a lagic killed at any step leaves the old diode or the new one, and a record of whatever
//!   it created: status reports it from the kernel's view and detach removes it.
//! - The kernel is the authority on what runs: status reads the program id from the link
//!   (TCX) or finds the filter's program (clsact), and the program's name from the kernel.
//! - A program lagic did not write, or not the one lagic attached, is reported as foreign.
//!
//! Test-only: with `LAGIC_TEST_FAULT=<step>` in the environment, attach aborts the process
//! right after that step (`after-intent`, `after-qdisc`, `after-kernel`, `after-pin`,
//! `after-record`), so tests can kill it at every point. Nothing else reads it.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use aya::programs::links::FdLink;
use aya::programs::tc::{NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle};
use aya::programs::{LinkOrder, ProgramError, TcAttachType};

use crate::elf_check::{self, Provenance};
use crate::netlink;
pub use crate::pins::NetnsId;
use crate::pins::{
    host_bpffs, in_netns, read_pins, remove_pins, write_meta, Meta, PinKey, PinLock, Pins,
    RecordState, Store, BPFFS, LOCK_TIMEOUT,
};
use crate::program::{
    verifier_log_tail, LoadError, LoadedProgram, ObjectOrigin, VERIFIER_LOG_LINES,
};
use crate::sys;

/// Where lagic pins its attachments on the host's bpffs.
pub const PIN_ROOT: &str = "/sys/fs/bpf/lagic";
/// Where an older lagic pinned them (read as legacy).
pub const LEGACY_PIN_ROOT: &str = "/sys/fs/bpf/lagi";
/// The environment variable of the test-only fault injection (see the module docs).
pub const FAULT_ENV: &str = "LAGIC_TEST_FAULT";

/// Aborts the process when the test-only fault injection names `step`.
fn fault_point(step: &str) {
    if std::env::var_os(FAULT_ENV).is_some_and(|v| v == step) {
        std::process::abort();
    }
}

/// The clsact filter priority lagic uses: 1 runs before any other filter.
pub const CLSACT_PRIORITY: u16 = 1;
/// The clsact filter handle lagic uses ("la" in ASCII).
pub const CLSACT_HANDLE: u32 = 0x6c61;

/// Which way packets cross the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Packets arriving on the interface.
    Ingress,
    /// Packets leaving through the interface.
    Egress,
}

impl Direction {
    /// Both directions.
    pub const ALL: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// `ingress` or `egress`, as in pin paths and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    fn tc(self) -> TcAttachType {
        match self {
            Direction::Ingress => TcAttachType::Ingress,
            Direction::Egress => TcAttachType::Egress,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ingress" => Ok(Direction::Ingress),
            "egress" => Ok(Direction::Egress),
            other => Err(format!(
                "unknown direction `{other}` (want ingress or egress)"
            )),
        }
    }
}

/// How a diode is hooked into TC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A TCX `bpf_link` (Linux 6.6+).
    Tcx,
    /// A `cls_bpf` filter under the `clsact` qdisc.
    Clsact,
}

impl Mode {
    /// `tcx` or `clsact`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Tcx => "tcx",
            Mode::Clsact => "clsact",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcx" => Ok(Mode::Tcx),
            "clsact" => Ok(Mode::Clsact),
            other => Err(format!("unknown mode `{other}` (want tcx or clsact)")),
        }
    }
}

/// Which mode a new attachment should use. A replacement always keeps the mode of the
/// attachment it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModeChoice {
    /// TCX where the kernel has it, clsact otherwise.
    #[default]
    Auto,
    /// Exactly this mode.
    Only(Mode),
}

/// Options of [`attach`].
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// The mode for a new attachment.
    pub mode: ModeChoice,
    /// Where the object came from (a path), shown by status.
    pub source: Option<String>,
    /// Accept an object lagic did not write (off by default: see [`crate::elf_check`]).
    pub allow_foreign_object: bool,
}

/// Whether an attachment still filters traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Attached to a live interface.
    Active,
    /// The interface it was attached to is gone (the kernel detached the diode); only pins
    /// are left, which [`detach`] removes.
    InterfaceGone,
    /// Pins without a working attachment (a lagic process died half-way); [`detach`] removes
    /// them.
    Stale,
}

impl Health {
    /// `active`, `interface-gone` or `stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Active => "active",
            Health::InterfaceGone => "interface-gone",
            Health::Stale => "stale",
        }
    }
}

/// One diode attached (or formerly attached) to an interface and direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Interface name (as recorded at attach time).
    pub iface: String,
    /// The network namespace of the interface (`None` for legacy pins, which did not record
    /// it).
    pub netns: Option<NetnsId>,
    /// The name `ip netns` knows the namespace by, if any.
    pub netns_name: Option<String>,
    /// Direction on the interface.
    pub direction: Direction,
    /// TCX or clsact.
    pub mode: Mode,
    /// The diode's name as the kernel keeps it (the program name, at most 15 bytes), or the
    /// recorded name when the program is gone.
    pub diode: String,
    /// The kernel's id of the attached program (0 when unknown).
    pub program_id: u32,
    /// The kernel's id of the TCX link (TCX mode only).
    pub link_id: Option<u32>,
    /// The interface index at attach time.
    pub ifindex: u32,
    /// When the current diode was attached (replacing counts as attaching).
    pub since: SystemTime,
    /// Where the object came from, when given.
    pub source: Option<String>,
    /// Whether it still filters traffic.
    pub health: Health,
    /// The pin directory.
    pub pin_dir: PathBuf,
    /// Pinned by an older lagic under `/sys/fs/bpf/lagi` (no namespace recorded).
    pub legacy: bool,
    /// The program is not one lagic wrote, or not the one lagic attached (replaced by
    /// something else): not a lagic diode.
    pub foreign: bool,
}

impl Attachment {
    /// Where the interface lives, for people: the `ip netns` name, `net:[ino]`, or `?`.
    pub fn netns_label(&self) -> String {
        match (&self.netns_name, self.netns) {
            (Some(name), _) => name.clone(),
            (None, Some(ns)) => ns.display(),
            (None, None) => "?".to_owned(),
        }
    }
}

/// What [`attach`] did.
#[derive(Debug, Clone)]
pub struct AttachReport {
    /// The attachment now in place.
    pub attachment: Attachment,
    /// The program id of the diode that was replaced, if one was.
    pub replaced_program_id: Option<u32>,
}

/// Why attaching, detaching or reading status failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The process lacks the privileges.
    #[error("{what} is not permitted ({source}); this needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)")]
    NotPermitted {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// The interface does not exist.
    #[error("no network interface named `{0}`; list interfaces with `ip link`")]
    NoSuchInterface(String),
    /// The interface name cannot be an interface name.
    #[error("`{0}` is not a valid interface name (1 to 15 bytes, no `/`, whitespace or NUL)")]
    BadInterfaceName(String),
    /// Nothing lagic attached sits on the interface and direction.
    #[error("no lagic diode is attached to {iface} {direction}; `lagic status` lists attachments")]
    NothingAttached {
        /// Interface name.
        iface: String,
        /// Direction.
        direction: Direction,
    },
    /// The kernel verifier rejected the diode.
    #[error("the kernel verifier rejected `{name}` ({errno}); last lines of its log:\n{log_tail}")]
    Rejected {
        /// Program name.
        name: String,
        /// The errno of `BPF_PROG_LOAD`.
        errno: io::Error,
        /// The last lines of the verifier log.
        log_tail: String,
    },
    /// The object could not be loaded for another reason.
    #[error("cannot load the diode: {0}")]
    Load(#[source] LoadError),
    /// The requested mode is unavailable.
    #[error("cannot attach in {mode} mode: {reason}")]
    ModeUnavailable {
        /// The mode.
        mode: Mode,
        /// Why.
        reason: String,
    },
    /// A clsact filter that lagic did not record already sits at lagic's priority and handle.
    #[error("a TC filter already sits at {iface} {direction} priority {CLSACT_PRIORITY} handle {CLSACT_HANDLE:#x} and lagic has no record of it; remove it with `tc filter del dev {iface} {direction} pref {CLSACT_PRIORITY}` and retry")]
    ForeignFilter {
        /// Interface name.
        iface: String,
        /// Direction.
        direction: Direction,
    },
    /// bpffs is not mounted and could not be mounted.
    #[error("bpffs is not mounted at {BPFFS} and mounting it failed ({0}); mount it with `mount -t bpf bpf {BPFFS}`")]
    Bpffs(#[source] io::Error),
    /// The host's bpffs cannot be reached, so a pin would not outlive this process.
    #[error("lagic pins diodes on the host's bpffs, and cannot reach it here: {why}; run lagic in the host's mount namespace, e.g. `nsenter --net=/run/netns/NAME lagic ...` instead of `ip netns exec NAME lagic ...`")]
    NoHostBpffs {
        /// Why.
        why: String,
    },
    /// The pin root is not lagic's own private directory.
    #[error("refusing to use {}: {why}; inspect it, then remove it or fix its owner and mode (0700)", path.display())]
    UnsafePinRoot {
        /// The pin root.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Another process holds the pin lock.
    #[error("{} is locked by {holders}; waited {}s. Another lagic may be attaching or detaching: wait for it, or stop the holder", path.display(), waited.as_secs())]
    LockBusy {
        /// The locked pin root.
        path: PathBuf,
        /// How long lagic waited.
        waited: std::time::Duration,
        /// Who holds it.
        holders: String,
    },
    /// After attaching, the kernel does not show the diode where lagic put it.
    #[error("the diode is not in place after attaching to {iface} {direction} ({mode}): {why}; `lagic status` shows what is attached")]
    NotInPlace {
        /// Interface name.
        iface: String,
        /// Direction.
        direction: Direction,
        /// Mode.
        mode: Mode,
        /// What the kernel showed.
        why: String,
    },
    /// Several lagic diodes match a detach by name.
    #[error("{count} lagic diodes sit on interfaces named {iface} {direction} in other network namespaces; choose one with --netns")]
    Ambiguous {
        /// Interface name.
        iface: String,
        /// Direction.
        direction: Direction,
        /// How many.
        count: usize,
    },
    /// Another step failed.
    #[error("{what} failed: {source}")]
    Os {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Aya failed at a step other than loading.
    #[error("{what} failed: {source}")]
    Aya {
        /// What was being done.
        what: String,
        /// Aya's error.
        #[source]
        source: Box<ProgramError>,
    },
}

pub(crate) fn os_error(what: impl Into<String>, source: io::Error) -> AttachError {
    let what = what.into();
    match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => AttachError::NotPermitted { what, source },
        _ => AttachError::Os { what, source },
    }
}

fn aya_error(what: impl Into<String>, source: ProgramError) -> AttachError {
    let what = what.into();
    let errno = match &source {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    };
    match errno {
        Some(libc::EPERM) | Some(libc::EACCES) => AttachError::NotPermitted {
            what,
            source: io::Error::from_raw_os_error(errno.unwrap_or(libc::EPERM)),
        },
        _ => AttachError::Aya {
            what,
            source: Box::new(source),
        },
    }
}

/// Loads `object` into the kernel (the verifier runs) and unloads it again, attaching
/// nothing: a preflight check for callers that must not build anything around a diode the
/// kernel will refuse. Only objects lagic wrote pass. Returns the program's name.
pub fn preflight(object: &[u8]) -> Result<String, AttachError> {
    let program =
        LoadedProgram::from_object_with(object, ObjectOrigin::LagicOnly).map_err(load_error)?;
    Ok(program.name().to_owned())
}

fn tcx_attach_type(direction: Direction) -> u32 {
    match direction {
        Direction::Ingress => sys::BPF_TCX_INGRESS,
        Direction::Egress => sys::BPF_TCX_EGRESS,
    }
}

/// lagic's filter on the clsact hook (at its priority and handle), if there is one.
fn lagic_filter(
    ifindex: u32,
    direction: Direction,
) -> Result<Option<netlink::Filter>, AttachError> {
    let filters = netlink::filters(ifindex, direction)
        .map_err(|e| os_error("listing the clsact filters", e))?;
    Ok(filters
        .into_iter()
        .find(|f| f.priority == CLSACT_PRIORITY && f.handle == CLSACT_HANDLE))
}

/// Attaches the diode in the ELF object `object` to `iface` (in this thread's network
/// namespace) in `direction`, replacing the lagic diode already there (atomically, keeping its
/// mode), pins the attachment on the host's bpffs, and reads it back from the kernel.
pub fn attach(
    object: &[u8],
    iface: &str,
    direction: Direction,
    options: &AttachOptions,
) -> Result<AttachReport, AttachError> {
    check_iface_name(iface)?;
    let ifindex = ifindex(iface)?;
    let netns = NetnsId::current()?;
    let store = host_bpffs(true)?.ok_or_else(|| AttachError::NoHostBpffs {
        why: "bpffs is not mounted".into(),
    })?;
    let _lock = PinLock::acquire(&store, LOCK_TIMEOUT)?;

    // Load (and verify) first: a rejected diode must leave the current one untouched.
    let origin = if options.allow_foreign_object {
        ObjectOrigin::AnyToolchain
    } else {
        ObjectOrigin::LagicOnly
    };
    let mut program = LoadedProgram::from_object_with(object, origin).map_err(load_error)?;
    let foreign_object = elf_check::check(object) != Ok(Provenance::Lagic);
    let program_id = program
        .stats()
        .map_err(|e| os_error("reading the program's id", e))?
        .id;
    let name = program.name().to_owned();
    let key = PinKey {
        netns,
        ifindex,
        direction,
    };
    let dir = store.dir(&key);
    let now = SystemTime::now();
    let mut meta = Meta {
        version: 2,
        state: RecordState::Pending,
        diode: name.clone(),
        source: options.source.clone(),
        mode: Mode::Tcx,
        iface: iface.to_owned(),
        ifindex,
        netns: Some(netns),
        since: now,
        program_id,
        prev_program_id: 0,
        qdisc_created: false,
        foreign_object,
    };

    adopt_legacy(&store, &dir, iface, ifindex, direction, netns)?;
    let existing = read_pins(&dir)?;
    let (mode, link_id, replaced) = match existing {
        Some(Pins {
            link: Some(link), ..
        }) if link_info(link.as_fd())?.ifindex == ifindex => {
            // TCX replace: BPF_LINK_UPDATE on the pinned link, conditional on the program we
            // saw (BPF_F_REPLACE), so a concurrent change is detected rather than overwritten.
            let old = link_info(link.as_fd())?;
            let old_prog = prog_fd_by_id(old.prog_id)?;
            meta.mode = Mode::Tcx;
            meta.prev_program_id = old.prog_id;
            write_meta(&dir, &meta)?;
            fault_point("after-intent");
            link_update(link.as_fd(), program.fd(), old_prog.as_fd())?;
            fault_point("after-kernel");
            (Mode::Tcx, Some(old.id), Some(old.prog_id))
        }
        Some(Pins {
            link: None,
            meta: Some(old),
        }) if old.mode == Mode::Clsact
            && old.ifindex == ifindex
            && lagic_filter(ifindex, direction)?.is_some() =>
        {
            let current = lagic_filter(ifindex, direction)?
                .and_then(|f| f.program_id)
                .unwrap_or(0);
            meta.mode = Mode::Clsact;
            meta.prev_program_id = current;
            meta.qdisc_created = old.qdisc_created;
            write_meta(&dir, &meta)?;
            fault_point("after-intent");
            // clsact replace: RTM_NEWTFILTER on lagic's priority and handle, without EXCL.
            let nl = SchedClassifierLink::attached(
                iface,
                direction.tc(),
                CLSACT_PRIORITY,
                TcHandle::from(CLSACT_HANDLE),
                None,
            )
            .map_err(|e| os_error(format!("finding interface {iface}"), e))?;
            let classifier = classifier_of(&mut program)?;
            let id = classifier
                .attach_to_link(nl)
                .map_err(|e| aya_error("replacing the diode (tc filter replace)", e))?;
            let link = classifier
                .take_link(id)
                .map_err(|e| aya_error("taking the filter", e))?;
            // Dropping a netlink link removes the filter; the filter must outlive us.
            std::mem::forget(link);
            fault_point("after-kernel");
            (Mode::Clsact, None, Some(current))
        }
        other => {
            // Pins of a dead attachment (interface gone or recreated, a crash before the kernel
            // change, a filter deleted by hand): clear them and attach afresh, remembering a
            // clsact qdisc lagic added to this interface.
            if let Some(Pins {
                meta: Some(old), ..
            }) = &other
            {
                meta.qdisc_created = old.qdisc_created && old.ifindex == ifindex;
            }
            if other.is_some() {
                remove_pins(&dir)?;
            }
            let classifier = classifier_of(&mut program)?;
            let (mode, link_id) =
                attach_fresh(classifier, iface, direction, options.mode, &dir, &mut meta)?;
            (mode, link_id, None)
        }
    };

    meta.state = RecordState::Active;
    write_meta(&dir, &meta)?;
    fault_point("after-record");
    verify(mode, iface, ifindex, direction, program_id)?;

    Ok(AttachReport {
        attachment: Attachment {
            iface: iface.to_owned(),
            netns: Some(netns),
            netns_name: netns.name(),
            direction,
            mode,
            diode: name,
            program_id,
            link_id,
            ifindex,
            since: now,
            source: options.source.clone(),
            health: Health::Active,
            pin_dir: dir,
            legacy: false,
            foreign: foreign_object,
        },
        replaced_program_id: replaced,
    })
}

/// Moves the pins of an older lagic's diode on this interface (under [`LEGACY_PIN_ROOT`], by
/// name) to `dir`, so that attaching replaces that diode in place rather than stacking a
/// second one beside it (TCX) or refusing its filter as foreign (clsact). The kernel objects
/// are pinned at the new place before the old pins go, so they are held throughout.
fn adopt_legacy(
    store: &Store,
    dir: &Path,
    iface: &str,
    ifindex: u32,
    direction: Direction,
    netns: NetnsId,
) -> Result<(), AttachError> {
    let legacy = store.legacy_root().join(iface).join(direction.as_str());
    if dir.is_dir() || !legacy.is_dir() {
        return Ok(());
    }
    let Some(pins) = read_pins(&legacy)? else {
        return Ok(());
    };
    let on_this_interface = match (&pins.link, &pins.meta) {
        (Some(link), _) => link_info(link.as_fd())?.ifindex == ifindex,
        (None, Some(m)) => m.ifindex == ifindex,
        (None, None) => false,
    };
    // Pins of another interface of that name (another namespace, or one since deleted) stay
    // for status and detach.
    if !on_this_interface {
        return Ok(());
    }
    crate::pins::create_private_dir(dir)?;
    if let Some(link) = &pins.link {
        crate::pins::pin(link.as_fd(), &dir.join("link"))?;
    }
    if let Some(m) = &pins.meta {
        write_meta(
            dir,
            &Meta {
                version: 2,
                iface: iface.to_owned(),
                netns: Some(netns),
                ..m.clone()
            },
        )?;
    }
    drop(pins);
    remove_pins(&legacy)
}

/// Reads the attachment back from the kernel: the TCX hook's program list, or lagic's
/// clsact filter, must hold `program_id`.
fn verify(
    mode: Mode,
    iface: &str,
    ifindex: u32,
    direction: Direction,
    program_id: u32,
) -> Result<(), AttachError> {
    let not_in_place = |why: String| AttachError::NotInPlace {
        iface: iface.to_owned(),
        direction,
        mode,
        why,
    };
    match mode {
        Mode::Tcx => {
            let ids = sys::prog_query_tcx(ifindex, tcx_attach_type(direction))
                .map_err(|e| os_error("querying the TCX hook (BPF_PROG_QUERY)", e))?;
            if !ids.contains(&program_id) {
                return Err(not_in_place(format!(
                    "the TCX hook runs programs {ids:?}, not program {program_id}"
                )));
            }
        }
        Mode::Clsact => match lagic_filter(ifindex, direction)? {
            Some(f) if f.program_id == Some(program_id) => {}
            Some(f) => {
                return Err(not_in_place(format!(
                    "lagic's filter runs program {:?}, not program {program_id}",
                    f.program_id
                )))
            }
            None => return Err(not_in_place("lagic's filter is missing".into())),
        },
    }
    Ok(())
}

/// The errno inside a netlink failure of a TC operation.
fn netlink_errno(e: &ProgramError) -> Option<i32> {
    match e {
        ProgramError::TcError(TcError::NetlinkError(n)) => n.raw_os_error(),
        _ => None,
    }
}

fn classifier_of(
    program: &mut LoadedProgram,
) -> Result<&mut aya::programs::SchedClassifier, AttachError> {
    program.classifier_mut().ok_or_else(|| AttachError::Os {
        what: "finding the loaded classifier".into(),
        source: io::Error::other("the program was not loaded from an object"),
    })
}

/// Creates a new attachment in `dir` (which holds none) and pins it, recording the intent
/// in `meta` before each kernel change.
fn attach_fresh(
    classifier: &mut aya::programs::SchedClassifier,
    iface: &str,
    direction: Direction,
    choice: ModeChoice,
    dir: &Path,
    meta: &mut Meta,
) -> Result<(Mode, Option<u32>), AttachError> {
    let tcx_error = match choice {
        ModeChoice::Only(Mode::Clsact) => None,
        ModeChoice::Auto | ModeChoice::Only(Mode::Tcx) => {
            meta.mode = Mode::Tcx;
            write_meta(dir, meta)?;
            fault_point("after-intent");
            match classifier.attach_with_options(
                iface,
                direction.tc(),
                TcAttachOptions::TcxOrder(LinkOrder::first()),
            ) {
                Ok(id) => {
                    let link = classifier
                        .take_link(id)
                        .map_err(|e| aya_error("taking the TCX link", e))?;
                    let fd_link = FdLink::try_from(link).map_err(|e| AttachError::Os {
                        what: "converting the TCX link".into(),
                        source: io::Error::other(e.to_string()),
                    })?;
                    let link_id = fd_link
                        .info()
                        .map_err(|e| AttachError::Os {
                            what: "reading the TCX link's id".into(),
                            source: io::Error::other(e.to_string()),
                        })?
                        .id();
                    // Until pinned, the link lives only in this process: dying here detaches it.
                    fault_point("after-kernel");
                    // If pinning fails, dropping the link detaches it again.
                    fd_link.pin(dir.join("link")).map_err(|e| AttachError::Os {
                        what: format!("pinning the link at {}", dir.join("link").display()),
                        source: io::Error::other(e.to_string()),
                    })?;
                    fault_point("after-pin");
                    return Ok((Mode::Tcx, Some(link_id)));
                }
                Err(e) => {
                    let err = aya_error("attaching with TCX", e);
                    if matches!(err, AttachError::NotPermitted { .. })
                        || choice == ModeChoice::Only(Mode::Tcx)
                    {
                        let _ = remove_pins(dir);
                        return Err(match err {
                            AttachError::NotPermitted { .. } => err,
                            other => AttachError::ModeUnavailable {
                                mode: Mode::Tcx,
                                reason: other.to_string(),
                            },
                        });
                    }
                    Some(err.to_string())
                }
            }
        }
    };

    // clsact: record the intent, add the qdisc (it may exist already), then the filter,
    // exclusively.
    meta.mode = Mode::Clsact;
    write_meta(dir, meta)?;
    fault_point("after-intent");
    match aya::programs::tc::qdisc_add_clsact(iface) {
        Ok(()) => {
            meta.qdisc_created = true;
            write_meta(dir, meta)?;
            fault_point("after-qdisc");
        }
        // The qdisc is there already (ours from an earlier attach, or someone else's).
        Err(TcError::AlreadyAttached) => {}
        Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => {
            let _ = remove_pins(dir);
            return Err(AttachError::ModeUnavailable {
                mode: Mode::Clsact,
                reason: format!(
                    "adding the clsact qdisc failed: {e}{}",
                    tcx_error
                        .map(|t| format!("; TCX failed before: {t}"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    let attached = classifier.attach_with_options(
        iface,
        direction.tc(),
        TcAttachOptions::Netlink(NlOptions {
            priority: CLSACT_PRIORITY,
            handle: TcHandle::from(CLSACT_HANDLE),
            classid: None,
        }),
    );
    let id = match attached {
        Ok(id) => id,
        Err(e) => {
            let foreign = netlink_errno(&e) == Some(libc::EEXIST);
            // The record keeps a qdisc lagic added, so the next detach or attach removes it;
            // without one, nothing of ours is left.
            if !meta.qdisc_created {
                let _ = remove_pins(dir);
            }
            if foreign {
                return Err(AttachError::ForeignFilter {
                    iface: iface.to_owned(),
                    direction,
                });
            }
            return Err(aya_error("attaching the clsact filter", e));
        }
    };
    let link = classifier
        .take_link(id)
        .map_err(|e| aya_error("taking the filter", e))?;
    // Dropping a netlink link removes the filter; the filter must outlive this process.
    std::mem::forget(link);
    fault_point("after-kernel");
    Ok((Mode::Clsact, None))
}

/// Detaches the lagic diode on `iface` (in this thread's network namespace) in `direction`
/// and removes its pins. Works when the interface is gone too (then only the pins are left to
/// remove), and on legacy pins.
pub fn detach(iface: &str, direction: Direction) -> Result<Attachment, AttachError> {
    check_iface_name(iface)?;
    let nothing = || AttachError::NothingAttached {
        iface: iface.to_owned(),
        direction,
    };
    let Some(store) = host_bpffs(false)? else {
        return Err(nothing());
    };
    let _lock = PinLock::acquire(&store, LOCK_TIMEOUT)?;
    let netns = NetnsId::current()?;
    let dir = find_dir(&store, netns, iface, direction)?.ok_or_else(nothing)?;
    detach_dir(&store, &dir)
}

/// Detaches the lagic diode on the interface recorded as `iface` in the network namespace
/// with inode `netns_ino` (as `lagic status` shows it), from any namespace.
pub fn detach_in(
    netns_ino: u64,
    iface: &str,
    direction: Direction,
) -> Result<Attachment, AttachError> {
    check_iface_name(iface)?;
    let nothing = || AttachError::NothingAttached {
        iface: iface.to_owned(),
        direction,
    };
    let Some(store) = host_bpffs(false)? else {
        return Err(nothing());
    };
    let _lock = PinLock::acquire(&store, LOCK_TIMEOUT)?;
    let matches = dirs_named(&store, Some(netns_ino), iface, direction)?;
    match matches.as_slice() {
        [] => Err(nothing()),
        [one] => detach_dir(&store, one),
        many => Err(AttachError::Ambiguous {
            iface: iface.to_owned(),
            direction,
            count: many.len(),
        }),
    }
}

/// The pin directories whose record names `iface` and `direction` (in namespace `netns_ino`
/// when given).
fn dirs_named(
    store: &Store,
    netns_ino: Option<u64>,
    iface: &str,
    direction: Direction,
) -> Result<Vec<PathBuf>, AttachError> {
    let mut out = Vec::new();
    for (ino, _, d, path) in store.dirs()? {
        if d != direction || netns_ino.is_some_and(|n| n != ino) {
            continue;
        }
        if let Some(Pins { meta: Some(m), .. }) = read_pins(&path)? {
            if m.iface == iface {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// The pin directory of the diode on `iface` in `netns`: by ifindex while the interface
/// exists, else by the recorded name; else a legacy directory of that name.
fn find_dir(
    store: &Store,
    netns: NetnsId,
    iface: &str,
    direction: Direction,
) -> Result<Option<PathBuf>, AttachError> {
    if let Ok(ifindex) = ifindex(iface) {
        let dir = store.dir(&PinKey {
            netns,
            ifindex,
            direction,
        });
        if dir.is_dir() {
            return Ok(Some(dir));
        }
    }
    if let Some(dir) = dirs_named(store, Some(netns.ino), iface, direction)?
        .into_iter()
        .next()
    {
        return Ok(Some(dir));
    }
    let legacy = store.legacy_root().join(iface).join(direction.as_str());
    Ok(legacy.is_dir().then_some(legacy))
}

fn detach_dir(store: &Store, dir: &Path) -> Result<Attachment, AttachError> {
    let pins = read_pins(dir)?.ok_or_else(|| AttachError::Os {
        what: format!("reading {}", dir.display()),
        source: io::Error::from_raw_os_error(libc::ENOENT),
    })?;
    let attachment = describe(store, dir, &pins)?;
    let netns = match attachment.netns {
        Some(ns) => ns,
        None => NetnsId::current()?,
    };
    if let Some(link) = &pins.link {
        // Detach explicitly so that the diode is off even if another process holds the link.
        if attachment.health == Health::Active {
            link_detach(link.as_fd())?;
        }
    } else if attachment.mode == Mode::Clsact && attachment.health == Health::Active {
        let (ifindex, direction) = (attachment.ifindex, attachment.direction);
        let deleted = in_netns(netns, move || {
            netlink::delete_filter(ifindex, direction, CLSACT_PRIORITY, CLSACT_HANDLE)
        })?;
        match deleted {
            None | Some(Ok(())) => {}
            Some(Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Some(Err(e)) => return Err(os_error("removing the clsact filter", e)),
        }
    }
    // With the interface gone, its qdisc went too.
    if attachment.health != Health::InterfaceGone
        && pins.meta.as_ref().is_some_and(|m| m.qdisc_created)
    {
        remove_or_hand_over_qdisc(store, netns, &attachment)?;
    }
    drop(pins);
    remove_pins(dir)?;
    Ok(attachment)
}

/// The clsact qdisc lagic added for `gone`: removed when no filter is left on it; otherwise
/// left, and handed to the record of lagic's diode in the other direction, if there is one,
/// so that its detach removes it.
fn remove_or_hand_over_qdisc(
    store: &Store,
    netns: NetnsId,
    gone: &Attachment,
) -> Result<(), AttachError> {
    let other = match gone.direction {
        Direction::Ingress => Direction::Egress,
        Direction::Egress => Direction::Ingress,
    };
    let ifindex = gone.ifindex;
    let in_use = in_netns(netns, move || -> io::Result<bool> {
        Ok(!netlink::filters(ifindex, Direction::Ingress)?.is_empty()
            || !netlink::filters(ifindex, Direction::Egress)?.is_empty())
    })?;
    match in_use {
        // The namespace is gone, and the qdisc with it.
        None => Ok(()),
        Some(Ok(false)) => match in_netns(netns, move || netlink::delete_clsact(ifindex))? {
            None | Some(Ok(())) => Ok(()),
            Some(Err(e))
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EINVAL | libc::ENODEV)
                ) =>
            {
                Ok(())
            }
            Some(Err(e)) => Err(os_error("removing the clsact qdisc lagic added", e)),
        },
        Some(Ok(true)) => {
            let other_dir = store.dir(&PinKey {
                netns,
                ifindex,
                direction: other,
            });
            if let Some(Pins {
                meta: Some(mut m), ..
            }) = read_pins(&other_dir)?
            {
                if m.mode == Mode::Clsact {
                    m.qdisc_created = true;
                    write_meta(&other_dir, &m)?;
                }
            }
            Ok(())
        }
        Some(Err(e)) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        Some(Err(e)) => Err(os_error("listing the clsact filters", e)),
    }
}

/// Every lagic attachment pinned on the host's bpffs, in every network namespace (legacy
/// pins last), sorted by namespace, interface and direction.
pub fn attachments() -> Result<Vec<Attachment>, AttachError> {
    let Some(store) = host_bpffs(false)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (_, _, _, dir) in store.dirs()? {
        if let Some(pins) = read_pins(&dir)? {
            out.push(describe(&store, &dir, &pins)?);
        }
    }
    for (_, _, dir) in store.legacy_dirs()? {
        if let Some(pins) = read_pins(&dir)? {
            out.push(describe(&store, &dir, &pins)?);
        }
    }
    Ok(out)
}

/// The lagic attachment on `iface` (in this thread's network namespace) in `direction`, if
/// any.
pub fn attachment(iface: &str, direction: Direction) -> Result<Option<Attachment>, AttachError> {
    check_iface_name(iface)?;
    let Some(store) = host_bpffs(false)? else {
        return Ok(None);
    };
    let netns = NetnsId::current()?;
    match find_dir(&store, netns, iface, direction)? {
        Some(dir) => match read_pins(&dir)? {
            Some(pins) => describe(&store, &dir, &pins).map(Some),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// Whether interface `ifindex` exists in `netns` (false when the namespace is gone).
fn interface_exists(netns: NetnsId, ifindex: u32) -> Result<bool, AttachError> {
    let exists = in_netns(netns, move || {
        let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
        // SAFETY: `name` holds IF_NAMESIZE bytes, as if_indextoname requires.
        !unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) }.is_null()
    })?;
    Ok(exists.unwrap_or(false))
}

fn describe(store: &Store, dir: &Path, pins: &Pins) -> Result<Attachment, AttachError> {
    let legacy = dir.starts_with(store.legacy_root());
    let meta = pins.meta.as_ref();
    // Legacy pins keep the name in the path and no namespace.
    let iface = if legacy {
        dir.parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        meta.map(|m| m.iface.clone()).unwrap_or_default()
    };
    let direction = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(Direction::Ingress);
    let netns = meta.and_then(|m| m.netns);
    let (mode, program_id, link_id, ifindex, health) = match &pins.link {
        Some(link) => {
            let info = link_info(link.as_fd())?;
            // A TCX link whose device went away is defunct: the kernel reports ifindex 0.
            let recorded = meta.map(|m| m.ifindex).unwrap_or(info.ifindex);
            let moved = if legacy {
                // Legacy pins are keyed by name: the name must still be that interface.
                self::ifindex(&iface).ok() != Some(info.ifindex)
            } else {
                recorded != info.ifindex
            };
            let health = if info.ifindex == 0 || moved {
                Health::InterfaceGone
            } else {
                Health::Active
            };
            (Mode::Tcx, info.prog_id, Some(info.id), recorded, health)
        }
        None => match meta {
            Some(m) if m.mode == Mode::Clsact => {
                // Once lagic is gone, the filter holds the only reference to its program, and
                // program ids are not reused: a live program is a live filter. While a
                // replacement is pending it is either program.
                let alive = [m.program_id, m.prev_program_id]
                    .into_iter()
                    .find(|&id| prog_name_by_id(id).is_some());
                let exists = match netns {
                    Some(ns) => interface_exists(ns, m.ifindex)?,
                    None => self::ifindex(&iface).ok() == Some(m.ifindex),
                };
                let health = match alive {
                    Some(_) => Health::Active,
                    None if !exists => Health::InterfaceGone,
                    None => Health::Stale,
                };
                (
                    Mode::Clsact,
                    alive.unwrap_or(m.program_id),
                    None,
                    m.ifindex,
                    health,
                )
            }
            // A TCX record without its link: lagic died before pinning (so the kernel
            // detached the link) or the pin was removed.
            Some(m) => (m.mode, m.program_id, None, m.ifindex, Health::Stale),
            None => (Mode::Tcx, 0, None, 0, Health::Stale),
        },
    };
    let diode = prog_name_by_id(program_id)
        .filter(|n| !n.is_empty())
        .or_else(|| meta.map(|m| m.diode.clone()))
        .unwrap_or_else(|| "?".to_owned());
    // Not a lagic diode: an object lagic did not write, a program other than the one lagic
    // attached (swapped by something else), or a live attachment without lagic's record.
    let foreign = match meta {
        Some(m) => {
            m.foreign_object
                || (health == Health::Active
                    && program_id != m.program_id
                    && !(m.state == RecordState::Pending && program_id == m.prev_program_id))
        }
        None => health == Health::Active,
    };
    Ok(Attachment {
        iface,
        netns,
        netns_name: netns.and_then(|ns| ns.name()),
        direction,
        mode,
        diode,
        program_id,
        link_id,
        ifindex,
        since: meta.map(|m| m.since).unwrap_or(UNIX_EPOCH),
        source: meta.and_then(|m| m.source.clone()),
        health,
        pin_dir: dir.to_owned(),
        legacy,
        foreign,
    })
}

fn check_iface_name(iface: &str) -> Result<(), AttachError> {
    let ok = !iface.is_empty()
        && iface.len() < libc::IFNAMSIZ
        && iface != "."
        && iface != ".."
        && !iface
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace() || b == b':');
    if ok {
        Ok(())
    } else {
        Err(AttachError::BadInterfaceName(iface.to_owned()))
    }
}

fn ifindex(iface: &str) -> Result<u32, AttachError> {
    let c = CString::new(iface).map_err(|_| AttachError::BadInterfaceName(iface.to_owned()))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        Err(AttachError::NoSuchInterface(iface.to_owned()))
    } else {
        Ok(index)
    }
}

fn load_error(err: LoadError) -> AttachError {
    match err {
        LoadError::Rejected {
            name,
            errno,
            verifier_log,
        } => {
            if matches!(errno.raw_os_error(), Some(libc::EPERM)) {
                return AttachError::NotPermitted {
                    what: format!("loading `{name}` (BPF_PROG_LOAD)"),
                    source: errno,
                };
            }
            AttachError::Rejected {
                name,
                errno,
                log_tail: verifier_log_tail(&verifier_log, VERIFIER_LOG_LINES),
            }
        }
        other => AttachError::Load(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel calls with the context of what they were for.

fn link_info(fd: BorrowedFd<'_>) -> Result<sys::bpf_link_info, AttachError> {
    sys::link_info(fd).map_err(|e| os_error("reading link info", e))
}

/// Swaps the program of `link` from `old` to `new` in one step (`BPF_LINK_UPDATE` with
/// `BPF_F_REPLACE`).
fn link_update(
    link: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    old: BorrowedFd<'_>,
) -> Result<(), AttachError> {
    sys::link_update(link, new, old)
        .map_err(|e| os_error("replacing the diode (BPF_LINK_UPDATE)", e))
}

fn prog_fd_by_id(id: u32) -> Result<OwnedFd, AttachError> {
    sys::prog_get_fd_by_id(id).map_err(|e| os_error(format!("opening program {id}"), e))
}

fn link_detach(fd: BorrowedFd<'_>) -> Result<(), AttachError> {
    match sys::link_detach(fd) {
        Ok(()) => Ok(()),
        // Already defunct (the device went away): nothing to detach.
        Err(e) if e.raw_os_error() == Some(libc::ENOLINK) => Ok(()),
        Err(e) => Err(os_error("detaching the link (BPF_LINK_DETACH)", e)),
    }
}

/// The program name the kernel keeps for program `id`, if the program still exists.
fn prog_name_by_id(id: u32) -> Option<String> {
    if id == 0 {
        return None;
    }
    let fd = sys::prog_get_fd_by_id(id).ok()?;
    let info = sys::prog_info(fd.as_fd()).ok()?;
    let end = info.name.iter().position(|&b| b == 0).unwrap_or(16);
    Some(String::from_utf8_lossy(&info.name[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let log = (0..100).map(|i| format!("line {i}\n")).collect::<String>();
        let tail = verifier_log_tail(&log, 3);
        assert_eq!(tail, "line 97\nline 98\nline 99");
        assert_eq!(verifier_log_tail("", 3), "(the verifier left no log)");
    }

    /// The read-back after attaching fails when the kernel does not run the program where
    /// lagic put it: on a hook with no program (TCX), and with no lagic filter (clsact).
    #[test]
    fn verification_fails_when_the_diode_is_not_in_place() {
        if !crate::testing::require_bpf() {
            return;
        }
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("running ip")
        };
        let _ = ip(&["link", "del", "lagicvf0"]);
        let made = ip(&[
            "link", "add", "lagicvf0", "type", "veth", "peer", "name", "lagicvf1",
        ]);
        assert!(made.status.success(), "{made:?}");
        let index = ifindex("lagicvf0").unwrap();
        for mode in [Mode::Tcx, Mode::Clsact] {
            match verify(mode, "lagicvf0", index, Direction::Ingress, 12345) {
                Err(AttachError::NotInPlace { why, .. }) => assert!(!why.is_empty()),
                other => panic!("{mode}: expected NotInPlace, got {other:?}"),
            }
        }
        let _ = ip(&["link", "del", "lagicvf0"]);
    }

    #[test]
    fn directions_and_modes_parse() {
        assert_eq!("ingress".parse::<Direction>().unwrap(), Direction::Ingress);
        assert_eq!("egress".parse::<Direction>().unwrap(), Direction::Egress);
        assert!("both".parse::<Direction>().is_err());
        assert_eq!("tcx".parse::<Mode>().unwrap(), Mode::Tcx);
        assert_eq!("clsact".parse::<Mode>().unwrap(), Mode::Clsact);
        assert!(check_iface_name("veth0").is_ok());
        assert!(check_iface_name("../x").is_err());
        assert!(check_iface_name("sixteen-bytes-xx").is_err());
        assert!(check_iface_name("").is_err());
    }
}
