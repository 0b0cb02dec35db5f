//! Attaching diodes to network interfaces, replacing them atomically, detaching them, and
//! reporting what is attached where.
//!
//! A diode is attached as a TC classifier on one interface and direction, in one of two
//! modes:
//! - **TCX** (Linux 6.6+): a `bpf_link` of type `BPF_LINK_TYPE_TCX`, placed first among the
//!   interface's TCX programs. No qdisc is involved. Preferred whenever the kernel has it.
//! - **clsact** (the fallback): a `cls_bpf` filter in direct-action mode under the `clsact`
//!   qdisc, at lagic's own priority and handle ([`CLSACT_PRIORITY`], [`CLSACT_HANDLE`]).
//!
//! The attachment is pinned on bpffs so that it outlives the process and a later lagic finds
//! it; [`crate::pins`] owns the pin layout, the lock and the metadata record, and
//! [`crate::sys`] every raw `bpf(2)` command. This module is the policy on top: when to
//! replace, when to attach afresh, what counts as healthy.
//!
//! Invariants:
//! - At most one lagic diode per (interface, direction); attaching where one sits replaces it.
//! - Replacing never leaves a window without a diode. TCX: `BPF_LINK_UPDATE` on the pinned link
//!   swaps the program inside the link; the kernel publishes the new program array with one
//!   RCU pointer store, so each packet runs the old program or the new one. clsact: a
//!   `RTM_NEWTFILTER` without `NLM_F_EXCL` on lagic's existing priority and handle makes
//!   `cls_bpf` swap the program in place (`list_replace_rcu`), again one pointer store. The
//!   new program is loaded (and verified) before anything is touched, so a rejected diode
//!   leaves the old one in place.
//! - The kernel is the authority on what runs: status reads the program id from the link
//!   (TCX) and the program's name from the kernel; `meta` only adds what the kernel does not
//!   keep (the source path, the attach time, the clsact program id).
//! - Every mutation holds an exclusive `flock` on the pin root, so concurrent lagic processes
//!   do not interleave.

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use aya::programs::links::FdLink;
use aya::programs::tc::{NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle};
use aya::programs::{LinkOrder, ProgramError, TcAttachType};

use crate::pins::{
    ensure_bpffs, is_bpffs, read_pins, remove_pins, write_meta, Meta, PinLock, Pins, BPFFS,
};
pub use crate::pins::{pin_dir, PIN_ROOT};
use crate::program::{
    verifier_log_tail, LoadError, LoadedProgram, ObjectOrigin, VERIFIER_LOG_LINES,
};
use crate::sys;

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
    /// Interface name.
    pub iface: String,
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

/// nothing: a preflight check for callers that must not build anything around a diode the
/// kernel will refuse. Returns the program's name.
pub fn preflight(object: &[u8]) -> Result<String, AttachError> {
    let program =
        LoadedProgram::from_object_with(object, ObjectOrigin::LagicOnly).map_err(load_error)?;
    Ok(program.name().to_owned())
}

/// Attaches the diode in the ELF object `object` to `iface` in `direction`, replacing the
/// lagic diode already there (atomically, keeping its mode), and pins the attachment.
pub fn attach(
    object: &[u8],
    iface: &str,
    direction: Direction,
    options: &AttachOptions,
) -> Result<AttachReport, AttachError> {
    check_iface_name(iface)?;
    let ifindex = ifindex(iface)?;
    ensure_bpffs()?;
    let _lock = PinLock::acquire()?;

    // Load (and verify) first: a rejected diode must leave the current one untouched.
    let origin = if options.allow_foreign_object {
        ObjectOrigin::AnyToolchain
    } else {
        ObjectOrigin::LagicOnly
    };
    let mut program = LoadedProgram::from_object_with(object, origin).map_err(load_error)?;
    let program_id = program
        .stats()
        .map_err(|e| os_error("reading the program's id", e))?
        .id;
    let name = program.name().to_owned();
    let dir = pin_dir(iface, direction);
    let existing = read_pins(iface, direction)?;
    let now = SystemTime::now();

    let (mode, link_id, replaced) = match existing {
        Some(Pins {
            link: Some(link), ..
        }) if link_info(link.as_fd())?.ifindex == ifindex => {
            // TCX replace: BPF_LINK_UPDATE on the pinned link, conditional on the program we
            // saw (BPF_F_REPLACE), so a concurrent change is detected rather than overwritten.
            let old = link_info(link.as_fd())?;
            let old_prog = prog_fd_by_id(old.prog_id)?;
            link_update(link.as_fd(), program.fd(), old_prog.as_fd())?;
            (Mode::Tcx, Some(old.id), Some(old.prog_id))
        }
        Some(Pins {
            link: None,
            meta: Some(meta),
        }) if meta.mode == Mode::Clsact
            && meta.ifindex == ifindex
            // The filter holds the only reference to its program: a program that is gone
            // means a filter that is gone (deleted by hand), to be attached afresh below.
            && prog_name_by_id(meta.program_id).is_some() =>
        {
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
            (Mode::Clsact, None, Some(meta.program_id))
        }
        Some(_) => {
            // Pins of a dead attachment (interface gone or recreated, or a crash half-way):
            // clear them and attach afresh.
            remove_pins(&dir)?;
            let classifier = classifier_of(&mut program)?;
            let (mode, link_id) = attach_fresh(classifier, iface, direction, options.mode, &dir)?;
            (mode, link_id, None)
        }
        None => {
            let classifier = classifier_of(&mut program)?;
            let (mode, link_id) = attach_fresh(classifier, iface, direction, options.mode, &dir)?;
            (mode, link_id, None)
        }
    };

    let meta = Meta {
        diode: name.clone(),
        source: options.source.clone(),
        mode,
        ifindex,
        since: now,
        program_id,
    };
    write_meta(&dir, &meta)?;

    Ok(AttachReport {
        attachment: Attachment {
            iface: iface.to_owned(),
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
        },
        replaced_program_id: replaced,
    })
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

/// Creates a new attachment in `dir` (which must not hold one) and pins it.
fn attach_fresh(
    classifier: &mut aya::programs::SchedClassifier,
    iface: &str,
    direction: Direction,
    choice: ModeChoice,
    dir: &Path,
) -> Result<(Mode, Option<u32>), AttachError> {
    fs::create_dir_all(dir).map_err(|e| os_error(format!("creating {}", dir.display()), e))?;
    let tcx_error = match choice {
        ModeChoice::Only(Mode::Clsact) => None,
        ModeChoice::Auto | ModeChoice::Only(Mode::Tcx) => {
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
                    // If pinning fails, dropping the link detaches it again.
                    fd_link.pin(dir.join("link")).map_err(|e| AttachError::Os {
                        what: format!("pinning the link at {}", dir.join("link").display()),
                        source: io::Error::other(e.to_string()),
                    })?;
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

    // clsact: add the qdisc (it may exist already), then the filter, exclusively.
    match aya::programs::tc::qdisc_add_clsact(iface) {
        Ok(()) | Err(TcError::AlreadyAttached) => {}
        // The qdisc is there already (ours from an earlier attach, or someone else's).
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
            let _ = remove_pins(dir);
            if netlink_errno(&e) == Some(libc::EEXIST) {
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
    Ok((Mode::Clsact, None))
}

/// Detaches the lagic diode on `iface` in `direction` and removes its pins. Works when the
/// interface is gone too (then only the pins are left to remove).
pub fn detach(iface: &str, direction: Direction) -> Result<Attachment, AttachError> {
    check_iface_name(iface)?;
    if !is_bpffs(Path::new(BPFFS)) {
        return Err(AttachError::NothingAttached {
            iface: iface.to_owned(),
            direction,
        });
    }
    let _lock = PinLock::acquire()?;
    let dir = pin_dir(iface, direction);
    let pins = read_pins(iface, direction)?.ok_or_else(|| AttachError::NothingAttached {
        iface: iface.to_owned(),
        direction,
    })?;
    let attachment = describe(iface, direction, &pins)?;
    if let Some(link) = &pins.link {
        // Detach explicitly so that the diode is off even if another process holds the link.
        if attachment.health == Health::Active {
            link_detach(link.as_fd())?;
        }
    } else if attachment.mode == Mode::Clsact && attachment.health == Health::Active {
        let nl = SchedClassifierLink::attached(
            iface,
            direction.tc(),
            CLSACT_PRIORITY,
            TcHandle::from(CLSACT_HANDLE),
            None,
        )
        .map_err(|e| os_error(format!("finding interface {iface}"), e))?;
        aya::programs::links::Link::detach(nl)
            .map_err(|e| aya_error("removing the clsact filter", e))?;
    }
    drop(pins);
    remove_pins(&dir)?;
    Ok(attachment)
}

/// Every lagic attachment pinned under [`PIN_ROOT`], sorted by interface and direction.
pub fn attachments() -> Result<Vec<Attachment>, AttachError> {
    let mut out = Vec::new();
    if !is_bpffs(Path::new(BPFFS)) {
        return Ok(out);
    }
    let entries = match fs::read_dir(PIN_ROOT) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(os_error(format!("listing {PIN_ROOT}"), e)),
    };
    let mut ifaces: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    ifaces.sort();
    for iface in ifaces {
        for direction in Direction::ALL {
            if let Some(a) = attachment(&iface, direction)? {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// The lagic attachment on `iface` in `direction`, if any.
pub fn attachment(iface: &str, direction: Direction) -> Result<Option<Attachment>, AttachError> {
    check_iface_name(iface)?;
    if !is_bpffs(Path::new(BPFFS)) {
        return Ok(None);
    }
    match read_pins(iface, direction)? {
        Some(pins) => describe(iface, direction, &pins).map(Some),
        None => Ok(None),
    }
}

fn describe(iface: &str, direction: Direction, pins: &Pins) -> Result<Attachment, AttachError> {
    let meta = pins.meta.as_ref();
    let current_ifindex = ifindex(iface).ok();
    let (mode, program_id, link_id, ifindex, health) = match &pins.link {
        Some(link) => {
            let info = link_info(link.as_fd())?;
            // A TCX link whose device went away is defunct: the kernel reports ifindex 0.
            // A link attached to an interface since deleted (or deleted and recreated under
            // the same name) no longer filters that name's traffic.
            let health = if info.ifindex == 0 || Some(info.ifindex) != current_ifindex {
                Health::InterfaceGone
            } else {
                Health::Active
            };
            let ifindex = meta.map(|m| m.ifindex).unwrap_or(info.ifindex);
            (Mode::Tcx, info.prog_id, Some(info.id), ifindex, health)
        }
        None => match meta {
            Some(m) if m.mode == Mode::Clsact => {
                let health = if current_ifindex != Some(m.ifindex) {
                    Health::InterfaceGone
                } else if prog_name_by_id(m.program_id).is_none() {
                    Health::Stale
                } else {
                    Health::Active
                };
                (Mode::Clsact, m.program_id, None, m.ifindex, health)
            }
            Some(m) => (m.mode, m.program_id, None, m.ifindex, Health::Stale),
            None => (Mode::Tcx, 0, None, 0, Health::Stale),
        },
    };
    let diode = prog_name_by_id(program_id)
        .filter(|n| !n.is_empty())
        .or_else(|| meta.map(|m| m.diode.clone()))
        .unwrap_or_else(|| "?".to_owned());
    Ok(Attachment {
        iface: iface.to_owned(),
        direction,
        mode,
        diode,
        program_id,
        link_id,
        ifindex,
        since: meta.map(|m| m.since).unwrap_or(UNIX_EPOCH),
        source: meta.and_then(|m| m.source.clone()),
        health,
        pin_dir: pin_dir(iface, direction),
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
