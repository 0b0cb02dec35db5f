//! lagic's own files on bpffs: where they live, the lock, and the metadata record.
//!
//! ```text
//! /sys/fs/bpf/lagic/                                   0700 root; flock'd by every mutation
//! /sys/fs/bpf/lagic/netns-<ino>/<ifindex>/<direction>/link   TCX: the bpf_link
//! /sys/fs/bpf/lagic/netns-<ino>/<ifindex>/<direction>/meta   one-entry ARRAY map: the record
//! ```
//!
//! `<ino>` is the inode of the network namespace (what `/proc/PID/ns/net` and `lsns` show) and
//! `<ifindex>` the interface's index in it: interface names repeat across namespaces, these do
//! not. The record keeps the name for display.
//!
//! Invariants:
//! - Pins live on the *host's* bpffs: the one mounted in PID 1's mount namespace
//!   ([`host_bpffs`]). A private bpffs (as `ip netns exec` would give, with its own `/sys`) dies
//!   with its mount namespace and takes the TCX link with it, so lagic never mounts or pins
//!   there: it reaches the host's through `/proc/1/root` or refuses.
//! - The pin root is a directory owned by the caller (root) with mode 0700, opened with
//!   `O_NOFOLLOW`; lagic refuses one owned by another user or writable by group or others.
//!   Pin directories are created 0700.
//! - Every mutation holds [`PinLock`], an exclusive `flock` on the pin root, taken with a
//!   deadline: a holder that does not let go is named in the error instead of blocking.
//! - The record is written *before* the kernel is changed (state `pending`) and completed after
//!   (state `active`), so a lagic killed at any point leaves a record of what it may have
//!   created; the kernel, not the record, then says what is in place.
//! - Old pins under `/sys/fs/bpf/lagi/<iface>/<direction>` (before namespaces were told apart)
//!   are read as legacy attachments: status lists them, detach removes them, and attach on
//!   their interface moves them to the new layout before replacing the diode; nothing new is
//!   written there.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::attach::{os_error, AttachError, Direction, Mode};
use crate::sys;

/// The usual bpffs mount point.
pub(crate) const BPFFS: &str = "/sys/fs/bpf";
/// The host's bpffs seen from a process in another mount namespace.
const HOST_BPFFS_VIA_PID1: &str = "/proc/1/root/sys/fs/bpf";
/// lagic's directory on bpffs.
pub const PIN_DIR_NAME: &str = "lagic";
/// Where lagic pinned before namespaces were told apart (read as legacy).
pub const LEGACY_PIN_DIR_NAME: &str = "lagi";
/// `BPF_FS_MAGIC` from `include/uapi/linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Size of the metadata record in the `meta` map.
const META_SIZE: u32 = 1024;
/// How long a mutation waits for another lagic to release the lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A network namespace, by the identity of its nsfs inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetnsId {
    /// The nsfs device.
    pub dev: u64,
    /// The inode (`net:[<ino>]`).
    pub ino: u64,
}

impl NetnsId {
    /// The network namespace of the calling thread.
    pub fn current() -> Result<NetnsId, AttachError> {
        NetnsId::of(Path::new("/proc/thread-self/ns/net"))
            .map_err(|e| os_error("reading this thread's network namespace", e))
    }

    /// The namespace behind an nsfs file (`/proc/PID/ns/net`, `/run/netns/NAME`).
    pub fn of(path: &Path) -> io::Result<NetnsId> {
        let m = fs::metadata(path)?;
        Ok(NetnsId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// The name `ip netns` knows it by, if any (`/run/netns/NAME`).
    pub fn name(&self) -> Option<String> {
        let entries = fs::read_dir("/run/netns").ok()?;
        entries.filter_map(|e| e.ok()).find_map(|e| {
            (NetnsId::of(&e.path()).ok()? == *self)
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
    }

    /// An open nsfs file of this namespace, found under `/run/netns` or `/proc/*/ns/net`;
    /// `None` when no process or bind mount keeps it (then it is gone).
    pub(crate) fn open(&self) -> Option<fs::File> {
        let named = fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path());
        let processes = fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().as_bytes().iter().all(u8::is_ascii_digit))
            .map(|e| e.path().join("ns/net"));
        named.chain(processes).find_map(|path| {
            let file = fs::File::open(&path).ok()?;
            let m = file.metadata().ok()?;
            (m.dev() == self.dev && m.ino() == self.ino).then_some(file)
        })
    }

    /// `net:[<ino>]`, as `/proc/PID/ns/net` reads.
    pub fn display(&self) -> String {
        format!("net:[{}]", self.ino)
    }
}

/// Runs `f` in the network namespace `netns` (on a helper thread when it is not the calling
/// thread's); `None` when the namespace is gone.
pub(crate) fn in_netns<T: Send>(
    netns: NetnsId,
    f: impl FnOnce() -> T + Send,
) -> Result<Option<T>, AttachError> {
    if NetnsId::current()? == netns {
        return Ok(Some(f()));
    }
    let Some(file) = netns.open() else {
        return Ok(None);
    };
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: setns on this helper thread only, with an fd we own.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(os_error(
                        format!("entering network namespace {}", netns.display()),
                        io::Error::last_os_error(),
                    ));
                }
                Ok(Some(f()))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(AttachError::Os {
                    what: "working in another network namespace".into(),
                    source: io::Error::other("the helper thread panicked"),
                })
            })
    })
}

/// Where an attachment's pins live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinKey {
    pub netns: NetnsId,
    pub ifindex: u32,
    pub direction: Direction,
}

/// The host's bpffs and lagic's pin root on it.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    /// The bpffs mount as this process reaches it.
    pub bpffs: PathBuf,
}

impl Store {
    /// The pin root.
    pub fn root(&self) -> PathBuf {
        self.bpffs.join(PIN_DIR_NAME)
    }

    /// The legacy pin root.
    pub fn legacy_root(&self) -> PathBuf {
        self.bpffs.join(LEGACY_PIN_DIR_NAME)
    }

    /// The pin directory of `key`.
    pub fn dir(&self, key: &PinKey) -> PathBuf {
        self.root()
            .join(format!("netns-{}", key.netns.ino))
            .join(key.ifindex.to_string())
            .join(key.direction.as_str())
    }

    /// Every pin directory under the root: (netns inode, ifindex, direction, path).
    pub fn dirs(&self) -> Result<Vec<(u64, u32, Direction, PathBuf)>, AttachError> {
        let mut out = Vec::new();
        for ns in list_dir(&self.root())? {
            let Some(ino) = file_name(&ns)
                .strip_prefix("netns-")
                .and_then(|s| s.parse().ok())
            else {
                continue;
            };
            for ifdir in list_dir(&ns)? {
                let Ok(ifindex) = file_name(&ifdir).parse() else {
                    continue;
                };
                for direction in Direction::ALL {
                    let d = ifdir.join(direction.as_str());
                    if d.is_dir() {
                        out.push((ino, ifindex, direction, d));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Legacy pin directories: (interface name, direction, path).
    pub fn legacy_dirs(&self) -> Result<Vec<(String, Direction, PathBuf)>, AttachError> {
        let mut out = Vec::new();
        for ifdir in list_dir(&self.legacy_root())? {
            for direction in Direction::ALL {
                let d = ifdir.join(direction.as_str());
                if d.is_dir() {
                    out.push((file_name(&ifdir), direction, d));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, AttachError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(os_error(format!("listing {}", dir.display()), e)),
    }
}

fn mount_ns(path: &str) -> io::Result<(u64, u64)> {
    let m = fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// The host's bpffs: `/sys/fs/bpf` when this process shares PID 1's mount namespace (mounted
/// there when missing, if `mount` is set; `None` when missing and not), `/proc/1/root/sys/fs/bpf`
/// when it does not; otherwise an error saying why lagic will not pin here.
pub(crate) fn host_bpffs(mount: bool) -> Result<Option<Store>, AttachError> {
    let own = mount_ns("/proc/self/ns/mnt")
        .map_err(|e| os_error("reading this process's mount namespace", e))?;
    match mount_ns("/proc/1/ns/mnt") {
        Ok(init) if init == own => {
            if !is_bpffs(Path::new(BPFFS)) {
                if !mount {
                    return Ok(None);
                }
                mount_bpffs()?;
            }
            Ok(Some(Store {
                bpffs: PathBuf::from(BPFFS),
            }))
        }
        Ok(_) if is_bpffs(Path::new(HOST_BPFFS_VIA_PID1)) => Ok(Some(Store {
            bpffs: PathBuf::from(HOST_BPFFS_VIA_PID1),
        })),
        Ok(_) => Err(AttachError::NoHostBpffs {
            why: format!(
                "this process runs in a private mount namespace (as under `ip netns exec`) and \
                 {HOST_BPFFS_VIA_PID1} is not a bpffs"
            ),
        }),
        // PID 1 is out of reach (a container, or a restricted /proc): trust a bpffs that is
        // already mounted, but never mount one ourselves, since it could be private.
        Err(_) if is_bpffs(Path::new(BPFFS)) => Ok(Some(Store {
            bpffs: PathBuf::from(BPFFS),
        })),
        Err(e) => Err(AttachError::NoHostBpffs {
            why: format!(
                "no bpffs is mounted at {BPFFS}, and PID 1's mount namespace cannot be read \
                 ({e}) to tell whether mounting one here would outlive this process (it would \
                 not under `ip netns exec`)"
            ),
        }),
    }
}

pub(crate) fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value; `c` is NUL-terminated and both outlive the
    // call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

fn mount_bpffs() -> Result<(), AttachError> {
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
    Ok(())
}

/// Creates `dir` and its missing parents below `base` with mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), AttachError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| os_error(format!("creating {}", dir.display()), e))
}

/// Opens the pin root (creating it 0700), refusing one that another user could tamper with.
fn open_root(root: &Path) -> Result<fs::File, AttachError> {
    create_private_dir(root)?;
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(root)
        .map_err(|e| os_error(format!("opening {}", root.display()), e))?;
    let m = dir
        .metadata()
        .map_err(|e| os_error(format!("reading {}", root.display()), e))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if m.uid() != euid || m.mode() & 0o022 != 0 {
        return Err(AttachError::UnsafePinRoot {
            path: root.to_owned(),
            why: format!(
                "owned by uid {} with mode {:o}; lagic wants its own (uid {euid}) directory that \
                 nobody else can write",
                m.uid(),
                m.mode() & 0o7777
            ),
        });
    }
    if m.mode() & 0o077 != 0 {
        // Ours, but readable by others (an older lagic made it 0755): nobody else may open it,
        // or they could hold its lock.
        dir.set_permissions(fs::Permissions::from_mode(0o700))
            .map_err(|e| os_error(format!("restricting {} to 0700", root.display()), e))?;
    }
    Ok(dir)
}

/// An exclusive `flock` on the pin root, released on drop.
pub(crate) struct PinLock {
    _dir: fs::File,
}

impl PinLock {
    /// Takes the lock, waiting at most `timeout`; on timeout the error names the holders.
    pub(crate) fn acquire(store: &Store, timeout: Duration) -> Result<PinLock, AttachError> {
        let root = store.root();
        let dir = open_root(&root)?;
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(PinLock { _dir: dir });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(os_error(format!("locking {}", root.display()), e));
            }
            if Instant::now() >= deadline {
                let ino = dir.metadata().map(|m| m.ino()).unwrap_or(0);
                return Err(AttachError::LockBusy {
                    path: root,
                    waited: timeout,
                    holders: lock_holders(ino),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Who holds a lock on inode `ino`, from `/proc/locks`: "pid N (comm)" each.
fn lock_holders(ino: u64) -> String {
    let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
    let holders: Vec<String> = locks
        .lines()
        .filter_map(|line| {
            // "1: FLOCK  ADVISORY  WRITE 1234 00:1f:56 0 EOF"
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pid: u32 = fields.get(4)?.parse().ok()?;
            let inode: u64 = fields.get(5)?.rsplit(':').next()?.parse().ok()?;
            (inode == ino).then(|| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                format!("pid {pid} ({})", comm.trim())
            })
        })
        .collect();
    if holders.is_empty() {
        "a process this one cannot see".to_owned()
    } else {
        holders.join(", ")
    }
}

// ---------------------------------------------------------------------------------------------
// Pins of one attachment.

/// What a pin directory holds.
pub(crate) struct Pins {
    pub link: Option<OwnedFd>,
    pub meta: Option<Meta>,
}

pub(crate) fn read_pins(dir: &Path) -> Result<Option<Pins>, AttachError> {
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

/// Removes the pins in `dir`, then `dir`, then its parents up to the pin root while empty.
pub(crate) fn remove_pins(dir: &Path) -> Result<(), AttachError> {
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
    // The interface and namespace directories; fails harmlessly while still in use.
    let mut parent = dir.parent();
    for _ in 0..2 {
        let Some(p) = parent else { break };
        if fs::remove_dir(p).is_err() {
            break;
        }
        parent = p.parent();
    }
    Ok(())
}

pub(crate) fn pin(fd: BorrowedFd<'_>, path: &Path) -> Result<(), AttachError> {
    sys::obj_pin(fd, path).map_err(|e| os_error(format!("pinning {}", path.display()), e))
}

/// Opens the pinned object at `path`; `None` when there is none.
pub(crate) fn obj_get_optional(path: &Path) -> Result<Option<OwnedFd>, AttachError> {
    match sys::obj_get(path) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(os_error(format!("opening pin {}", path.display()), e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata record.

/// Whether the kernel change a record describes was completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordState {
    /// Written before the kernel change; lagic may have died before or after it.
    Pending,
    /// The change was made and pinned.
    Active,
}

/// What lagic records beside the link: what the kernel does not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub version: u32,
    pub state: RecordState,
    pub diode: String,
    pub source: Option<String>,
    pub mode: Mode,
    /// Interface name at attach time (display only; the key is the ifindex).
    pub iface: String,
    pub ifindex: u32,
    pub netns: Option<NetnsId>,
    pub since: SystemTime,
    /// The program attached (or being attached, while pending).
    pub program_id: u32,
    /// While a replacement is pending: the program being replaced.
    pub prev_program_id: u32,
    /// lagic added the clsact qdisc (so detach removes it when nothing else uses it).
    pub qdisc_created: bool,
    /// The object was not written by lagic (attached with the operator's leave).
    pub foreign_object: bool,
}

impl Meta {
    /// `key=value` lines; values never contain newlines (they are replaced).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let clean = |s: &str| s.replace(['\n', '\r', '\0'], " ");
        let since = self
            .since
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut text = format!(
            "lagic-meta=2\nstate={}\ndiode={}\nmode={}\niface={}\nifindex={}\nsince={}\n\
             program_id={}\nprev_program_id={}\nqdisc_created={}\nforeign_object={}\n",
            match self.state {
                RecordState::Pending => "pending",
                RecordState::Active => "active",
            },
            clean(&self.diode),
            self.mode,
            clean(&self.iface),
            self.ifindex,
            since,
            self.program_id,
            self.prev_program_id,
            u8::from(self.qdisc_created),
            u8::from(self.foreign_object),
        );
        if let Some(ns) = self.netns {
            text.push_str(&format!("netns_dev={}\nnetns_ino={}\n", ns.dev, ns.ino));
        }
        if let Some(source) = &self.source {
            text.push_str(&format!("source={}\n", clean(source)));
        }
        let mut bytes = text.into_bytes();
        // Keep the record inside the map value, cutting an over-long source.
        bytes.truncate(META_SIZE as usize - 1);
        bytes.resize(META_SIZE as usize, 0);
        bytes
    }

    /// Reads version 2 records and the version 1 records of legacy pins.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Meta> {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let text = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut kv = std::collections::HashMap::new();
        for line in text.lines() {
            let (key, value) = line.split_once('=')?;
            kv.insert(key, value);
        }
        let version: u32 = kv.get("lagic-meta")?.parse().ok()?;
        if version != 1 && version != 2 {
            return None;
        }
        let num = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
        let netns = match (num("netns_dev"), num("netns_ino")) {
            (Some(dev), Some(ino)) => Some(NetnsId { dev, ino }),
            _ => None,
        };
        Some(Meta {
            version,
            state: match kv.get("state").copied() {
                None | Some("active") => RecordState::Active,
                Some("pending") => RecordState::Pending,
                Some(_) => return None,
            },
            diode: kv.get("diode")?.to_string(),
            source: kv.get("source").map(|s| s.to_string()),
            mode: kv.get("mode")?.parse().ok()?,
            iface: kv.get("iface").map(|s| s.to_string()).unwrap_or_default(),
            ifindex: num("ifindex")? as u32,
            netns,
            since: UNIX_EPOCH + Duration::from_secs(num("since")?),
            program_id: num("program_id")? as u32,
            prev_program_id: num("prev_program_id").unwrap_or(0) as u32,
            qdisc_created: num("qdisc_created") == Some(1),
            foreign_object: num("foreign_object") == Some(1),
        })
    }
}

/// Writes `meta` into the pinned `meta` map in `dir` (created 0700), creating and pinning the
/// map if absent.
pub(crate) fn write_meta(dir: &Path, meta: &Meta) -> Result<(), AttachError> {
    create_private_dir(dir)?;
    let path = dir.join("meta");
    let fd = match obj_get_optional(&path)? {
        Some(fd) => fd,
        None => {
            let fd = sys::map_create_array("lagic_meta", META_SIZE, 1)
                .map_err(|e| os_error("creating the metadata map", e))?;
            pin(fd.as_fd(), &path)?;
            fd
        }
    };
    sys::map_update_elem(fd.as_fd(), 0, &meta.encode())
        .map_err(|e| os_error("writing the metadata map", e))
}

pub(crate) fn read_meta(fd: BorrowedFd<'_>) -> Result<Meta, AttachError> {
    // The kernel writes the map's own value size: check it before reading into our buffer, so
    // that a map of another shape pinned at `meta` cannot overrun it.
    let (map_type, value_size) =
        sys::map_value_size(fd).map_err(|e| os_error("reading the metadata map's info", e))?;
    if map_type != sys::BPF_MAP_TYPE_ARRAY || value_size != META_SIZE {
        return Err(AttachError::Os {
            what: "reading lagic's metadata".into(),
            source: io::Error::other("the pinned map is not a lagic metadata record"),
        });
    }
    let bytes = sys::map_lookup_elem(fd, 0, META_SIZE)
        .map_err(|e| os_error("reading the metadata map", e))?;
    Meta::decode(&bytes).ok_or_else(|| AttachError::Os {
        what: "reading lagic's metadata".into(),
        source: io::Error::other("unrecognized record"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips() {
        let meta = Meta {
            version: 2,
            state: RecordState::Pending,
            diode: "hateless".into(),
            source: Some("/tmp/h\nx.o".into()),
            mode: Mode::Clsact,
            iface: "veth0".into(),
            ifindex: 7,
            netns: Some(NetnsId {
                dev: 4,
                ino: 4026531833,
            }),
            since: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            program_id: 99,
            prev_program_id: 98,
            qdisc_created: true,
            foreign_object: false,
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
        assert!(Meta::decode(b"lagic-meta=3\n").is_none());
    }

    #[test]
    fn legacy_records_read_as_active() {
        let v1 = b"lagic-meta=1\ndiode=d\nmode=tcx\nifindex=3\nsince=5\nprogram_id=9\n";
        let m = Meta::decode(v1).unwrap();
        assert_eq!(m.state, RecordState::Active);
        assert_eq!(m.netns, None);
        assert_eq!((m.ifindex, m.program_id), (3, 9));
    }
}
