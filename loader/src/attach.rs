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
//! Pins (bpffs, so that an attachment outlives the process and a later lagic finds it):
//!
//! ```text
//! /sys/fs/bpf/lagi/<iface>/<direction>/link   TCX mode: the bpf_link (holding it keeps the diode on)
//! /sys/fs/bpf/lagi/<iface>/<direction>/meta   an ARRAY map with one text record: diode name,
//!                                             source, mode, ifindex, since, program id (clsact)
//! ```
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
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aya::programs::links::FdLink;
use aya::programs::tc::{NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle};
use aya::programs::{LinkOrder, ProgramError, TcAttachType};

use crate::program::{LoadError, LoadedProgram};
use crate::sys;

/// Where lagic pins its attachments (on bpffs).
pub const PIN_ROOT: &str = "/sys/fs/bpf/lagi";
/// The bpffs mount point mounted when missing.
const BPFFS: &str = "/sys/fs/bpf";
/// `BPF_FS_MAGIC` from `include/uapi/linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// The clsact filter priority lagic uses: 1 runs before any other filter.
pub const CLSACT_PRIORITY: u16 = 1;
/// The clsact filter handle lagic uses ("la" in ASCII).
pub const CLSACT_HANDLE: u32 = 0x6c61;
/// Size of the metadata record in the `meta` map.
const META_SIZE: u32 = 1024;
/// Verifier log lines kept in [`AttachError::Rejected`].
const LOG_TAIL_LINES: usize = 25;

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

fn os_error(what: impl Into<String>, source: io::Error) -> AttachError {
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

/// The pin directory of an interface and direction.
pub fn pin_dir(iface: &str, direction: Direction) -> PathBuf {
    Path::new(PIN_ROOT).join(iface).join(direction.as_str())
}

/// Loads `object` into the kernel (the verifier runs) and unloads it again, attaching
/// nothing: a preflight check for callers that must not build anything around a diode the
/// kernel will refuse. Returns the program's name.
pub fn preflight(object: &[u8]) -> Result<String, AttachError> {
    let program = LoadedProgram::from_object(object).map_err(load_error)?;
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
    let mut program = LoadedProgram::from_object(object).map_err(load_error)?;
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

/// What the pin directory holds.
struct Pins {
    link: Option<OwnedFd>,
    meta: Option<Meta>,
}

fn read_pins(iface: &str, direction: Direction) -> Result<Option<Pins>, AttachError> {
    let dir = pin_dir(iface, direction);
    if !dir.is_dir() {
        return Ok(None);
    }
    let link = obj_get_optional(&dir.join("link"))?;
    let meta = match obj_get_optional(&dir.join("meta"))? {
        Some(fd) => read_meta(fd.as_fd()).ok(),
        None => None,
    };
    Ok(Some(Pins { link, meta }))
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

/// Removes the pins in `dir`, then `dir`, then its interface directory if empty.
fn remove_pins(dir: &Path) -> Result<(), AttachError> {
    for name in ["link", "meta"] {
        match fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(os_error(
                    format!("removing {}", dir.join(name).display()),
                    e,
                ))
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(os_error(format!("removing {}", dir.display()), e)),
    }
    if let Some(parent) = dir.parent() {
        // Fails harmlessly while the other direction is still pinned.
        let _ = fs::remove_dir(parent);
    }
    Ok(())
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
                log_tail: log_tail(&verifier_log, LOG_TAIL_LINES),
            }
        }
        other => AttachError::Load(other),
    }
}

/// The last `lines` non-empty lines of a verifier log.
pub fn log_tail(log: &str, lines: usize) -> String {
    let kept: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = kept.len().saturating_sub(lines);
    let mut tail = kept[start..].join("\n");
    if tail.is_empty() {
        tail = "(the verifier left no log)".to_owned();
    }
    tail
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value; `c` is NUL-terminated and both outlive the
    // call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Mounts bpffs at /sys/fs/bpf when it is not there, and creates [`PIN_ROOT`].
fn ensure_bpffs() -> Result<(), AttachError> {
    if !is_bpffs(Path::new(BPFFS)) {
        fs::create_dir_all(BPFFS).map_err(AttachError::Bpffs)?;
        // SAFETY: all strings are NUL-terminated literals.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                c"/sys/fs/bpf".as_ptr(),
                c"bpf".as_ptr(),
                0,
                c"mode=0700".as_ptr().cast(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EPERM)) {
                return Err(AttachError::NotPermitted {
                    what: "mounting bpffs".into(),
                    source: e,
                });
            }
            return Err(AttachError::Bpffs(e));
        }
    }
    fs::create_dir_all(PIN_ROOT).map_err(|e| os_error(format!("creating {PIN_ROOT}"), e))
}

/// An exclusive `flock` on [`PIN_ROOT`], released on drop.
struct PinLock {
    _dir: fs::File,
}

impl PinLock {
    fn acquire() -> Result<PinLock, AttachError> {
        fs::create_dir_all(PIN_ROOT).map_err(|e| os_error(format!("creating {PIN_ROOT}"), e))?;
        let dir =
            fs::File::open(PIN_ROOT).map_err(|e| os_error(format!("opening {PIN_ROOT}"), e))?;
        // SAFETY: flock on an fd we own.
        let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(os_error(
                format!("locking {PIN_ROOT}"),
                io::Error::last_os_error(),
            ));
        }
        Ok(PinLock { _dir: dir })
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata record.

/// What lagic records beside the link: the kernel keeps neither the source nor the time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    diode: String,
    source: Option<String>,
    mode: Mode,
    ifindex: u32,
    since: SystemTime,
    program_id: u32,
}

impl Meta {
    /// `key=value` lines; values never contain newlines (they are escaped away).
    fn encode(&self) -> Vec<u8> {
        let clean = |s: &str| s.replace(['\n', '\r', '\0'], " ");
        let since = self
            .since
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut text = format!(
            "lagic-meta=1\ndiode={}\nmode={}\nifindex={}\nsince={}\nprogram_id={}\n",
            clean(&self.diode),
            self.mode,
            self.ifindex,
            since,
            self.program_id
        );
        if let Some(source) = &self.source {
            text.push_str(&format!("source={}\n", clean(source)));
        }
        let mut bytes = text.into_bytes();
        // Keep the record inside the map value, cutting an over-long source.
        bytes.truncate(META_SIZE as usize - 1);
        bytes.resize(META_SIZE as usize, 0);
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Meta> {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let text = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut diode = None;
        let mut source = None;
        let mut mode = None;
        let mut ifindex = None;
        let mut since = None;
        let mut program_id = None;
        let mut versioned = false;
        for line in text.lines() {
            let (key, value) = line.split_once('=')?;
            match key {
                "lagic-meta" => versioned = value == "1",
                "diode" => diode = Some(value.to_owned()),
                "source" => source = Some(value.to_owned()),
                "mode" => mode = value.parse().ok(),
                "ifindex" => ifindex = value.parse().ok(),
                "since" => since = value.parse::<u64>().ok(),
                "program_id" => program_id = value.parse().ok(),
                _ => {}
            }
        }
        if !versioned {
            return None;
        }
        Some(Meta {
            diode: diode?,
            source,
            mode: mode?,
            ifindex: ifindex?,
            since: UNIX_EPOCH + Duration::from_secs(since?),
            program_id: program_id?,
        })
    }
}

/// Writes `meta` into the pinned `meta` map in `dir`, creating and pinning the map if absent.
fn write_meta(dir: &Path, meta: &Meta) -> Result<(), AttachError> {
    let path = dir.join("meta");
    let fd = match obj_get_optional(&path)? {
        Some(fd) => fd,
        None => {
            let fd = map_create()?;
            obj_pin(fd.as_fd(), &path)?;
            fd
        }
    };
    map_update(fd.as_fd(), &meta.encode())
}

fn read_meta(fd: BorrowedFd<'_>) -> Result<Meta, AttachError> {
    let bytes = map_lookup(fd)?;
    Meta::decode(&bytes).ok_or_else(|| AttachError::Os {
        what: "reading lagic's metadata".into(),
        source: io::Error::other("unrecognized record"),
    })
}

// ---------------------------------------------------------------------------------------------
// Raw bpf(2) commands Aya does not expose in the form needed here.

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;
/// `BPF_F_REPLACE`: update the link only if it still runs `old_prog_fd`.
const BPF_F_REPLACE: u32 = 1 << 2;
const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// `union bpf_attr` as `BPF_MAP_CREATE` reads it, up to `map_name`.
#[repr(C, align(8))]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    _pad: u32,
}

/// `union bpf_attr` for the map element commands.
#[repr(C, align(8))]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_OBJ_PIN` / `BPF_OBJ_GET`.
#[repr(C, align(8))]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `union bpf_attr` for the `*_GET_FD_BY_ID` commands and `BPF_LINK_DETACH` (first member).
#[repr(C, align(8))]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
    _pad: u32,
}

/// `struct bpf_link_info` up to the TCX member of its union.
#[repr(C, align(8))]
#[derive(Default, Clone, Copy)]
struct LinkInfoRaw {
    type_: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    /// `tcx.ifindex` (and the first word of the other union members).
    ifindex: u32,
    /// `tcx.attach_type`.
    attach_type: u32,
    _rest: [u64; 4],
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C, align(8))]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `bpf(2)`, shared with the rest of the crate (see [`sys::sys_bpf`]).
///
/// # Safety
/// As [`sys::sys_bpf`].
unsafe fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: forwarded to the caller's contract.
    unsafe { sys::sys_bpf(cmd, attr) }
}

fn fd_from(ret: libc::c_long) -> OwnedFd {
    // SAFETY: the command returned a fresh fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

fn map_create() -> Result<OwnedFd, AttachError> {
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"lagic_meta");
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: META_SIZE,
        max_entries: 1,
        map_name: name,
        ..Default::default()
    };
    // SAFETY: the attribute holds no pointers.
    let ret = unsafe { bpf(BPF_MAP_CREATE, &mut attr) }
        .map_err(|e| os_error("creating the metadata map", e))?;
    Ok(fd_from(ret))
}

fn map_update(fd: BorrowedFd<'_>, value: &[u8]) -> Result<(), AttachError> {
    debug_assert_eq!(value.len(), META_SIZE as usize);
    let key = 0u32;
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: value.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: key and value are readable for key_size and value_size bytes during the call.
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }
        .map_err(|e| os_error("writing the metadata map", e))?;
    Ok(())
}

fn map_lookup(fd: BorrowedFd<'_>) -> Result<Vec<u8>, AttachError> {
    let key = 0u32;
    let mut value = vec![0u8; META_SIZE as usize];
    let mut attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `value` is writable for value_size bytes; the map was created with that size
    // (a map of another size is refused by the kernel before it writes).
    unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) }
        .map_err(|e| os_error("reading the metadata map", e))?;
    Ok(value)
}

fn path_cstring(path: &Path) -> Result<CString, AttachError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| AttachError::Os {
        what: format!("using path {}", path.display()),
        source: io::Error::other("contains NUL"),
    })
}

fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> Result<(), AttachError> {
    let c = path_cstring(path)?;
    let mut attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
    };
    // SAFETY: `c` is NUL-terminated and outlives the call.
    unsafe { bpf(BPF_OBJ_PIN, &mut attr) }
        .map_err(|e| os_error(format!("pinning {}", path.display()), e))?;
    Ok(())
}

/// Opens the pinned object at `path`; `None` when there is none.
fn obj_get_optional(path: &Path) -> Result<Option<OwnedFd>, AttachError> {
    let c = path_cstring(path)?;
    let mut attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `c` is NUL-terminated and outlives the call.
    match unsafe { bpf(BPF_OBJ_GET, &mut attr) } {
        Ok(ret) => Ok(Some(fd_from(ret))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(os_error(format!("opening pin {}", path.display()), e)),
    }
}

fn link_info(fd: BorrowedFd<'_>) -> Result<LinkInfoRaw, AttachError> {
    let mut info = LinkInfoRaw::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<LinkInfoRaw>() as u32,
        info: &mut info as *mut LinkInfoRaw as u64,
    };
    // SAFETY: `info` is writable for info_len bytes and holds no pointers the kernel follows.
    unsafe { bpf(sys::BPF_OBJ_GET_INFO_BY_FD, &mut attr) }
        .map_err(|e| os_error("reading link info", e))?;
    Ok(info)
}

/// `union bpf_attr` for `BPF_LINK_UPDATE`.
#[repr(C, align(8))]
#[derive(Default)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

/// Swaps the program of `link` from `old` to `new` in one step (`BPF_LINK_UPDATE` with
/// `BPF_F_REPLACE`).
fn link_update(
    link: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    old: BorrowedFd<'_>,
) -> Result<(), AttachError> {
    let mut attr = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: new.as_raw_fd() as u32,
        flags: BPF_F_REPLACE,
        old_prog_fd: old.as_raw_fd() as u32,
    };
    // SAFETY: the attribute holds no pointers.
    unsafe { bpf(BPF_LINK_UPDATE, &mut attr) }
        .map_err(|e| os_error("replacing the diode (BPF_LINK_UPDATE)", e))?;
    Ok(())
}

fn prog_fd_by_id(id: u32) -> Result<OwnedFd, AttachError> {
    let mut attr = IdAttr {
        id,
        ..Default::default()
    };
    // SAFETY: the attribute holds no pointers.
    let ret = unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }
        .map_err(|e| os_error(format!("opening program {id}"), e))?;
    Ok(fd_from(ret))
}

fn link_detach(fd: BorrowedFd<'_>) -> Result<(), AttachError> {
    let mut attr = IdAttr {
        id: fd.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: the attribute holds no pointers.
    match unsafe { bpf(BPF_LINK_DETACH, &mut attr) } {
        Ok(_) => Ok(()),
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
    let mut attr = IdAttr {
        id,
        ..Default::default()
    };
    // SAFETY: the attribute holds no pointers.
    let fd = fd_from(unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }.ok()?);
    let info = sys::prog_info(fd.as_fd()).ok()?;
    let end = info.name.iter().position(|&b| b == 0).unwrap_or(16);
    Some(String::from_utf8_lossy(&info.name[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn attr_layouts_match_the_kernel_headers() {
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(size_of::<MapCreateAttr>(), 48);
        assert_eq!(offset_of!(MapElemAttr, key), 8);
        assert_eq!(offset_of!(MapElemAttr, flags), 24);
        assert_eq!(offset_of!(ObjAttr, file_flags), 12);
        assert_eq!(offset_of!(LinkInfoRaw, ifindex), 16);
        assert_eq!(offset_of!(LinkInfoRaw, attach_type), 20);
    }

    #[test]
    fn meta_round_trips() {
        let meta = Meta {
            diode: "hateless".into(),
            source: Some("/tmp/h\nx.o".into()),
            mode: Mode::Clsact,
            ifindex: 7,
            since: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            program_id: 99,
        };
        let bytes = meta.encode();
        assert_eq!(bytes.len(), META_SIZE as usize);
        let back = Meta::decode(&bytes).unwrap();
        assert_eq!(back.source.as_deref(), Some("/tmp/h x.o"));
        assert_eq!(
            Meta {
                source: meta.source.clone().map(|s| s.replace('\n', " ")),
                ..meta
            },
            back
        );
        assert!(Meta::decode(b"garbage").is_none());
        assert!(Meta::decode(&[0u8; 16]).is_none());
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let log = (0..100).map(|i| format!("line {i}\n")).collect::<String>();
        let tail = log_tail(&log, 3);
        assert_eq!(tail, "line 97\nline 98\nline 99");
        assert_eq!(log_tail("", 3), "(the verifier left no log)");
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
