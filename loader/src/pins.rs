//! lagic's own files on bpffs: the pin directories, the lock, and the metadata record.
//!
//! ```text
//! /sys/fs/bpf/lagi/<iface>/<direction>/link   TCX mode: the bpf_link (holding it keeps the diode on)
//! /sys/fs/bpf/lagi/<iface>/<direction>/meta   an ARRAY map with one text record: diode name,
//!                                             source, mode, ifindex, since, program id (clsact)
//! ```
//!
//! Invariants:
//! - Every mutation of the pins holds [`PinLock`], an exclusive `flock` on [`PIN_ROOT`].
//! - The `meta` record is versioned text; a record this version cannot read is treated as
//!   absent (the attachment is then judged from the kernel alone).
//! - The kernel is the authority on what runs; the record only adds what the kernel does not
//!   keep (the source, the attach time, the clsact program id).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::attach::{os_error, AttachError, Direction, Mode};
use crate::sys;

/// Where lagic pins its attachments (on bpffs).
pub const PIN_ROOT: &str = "/sys/fs/bpf/lagi";
/// The bpffs mount point mounted when missing.
pub(crate) const BPFFS: &str = "/sys/fs/bpf";
/// `BPF_FS_MAGIC` from `include/uapi/linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Size of the metadata record in the `meta` map.
const META_SIZE: u32 = 1024;

/// The pin directory of an interface and direction.
pub fn pin_dir(iface: &str, direction: Direction) -> PathBuf {
    Path::new(PIN_ROOT).join(iface).join(direction.as_str())
}

/// Loads `object` into the kernel (the verifier runs) and unloads it again, attaching
/// What the pin directory holds.
pub(crate) struct Pins {
    pub(crate) link: Option<OwnedFd>,
    pub(crate) meta: Option<Meta>,
}

pub(crate) fn read_pins(iface: &str, direction: Direction) -> Result<Option<Pins>, AttachError> {
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

/// Removes the pins in `dir`, then `dir`, then its interface directory if empty.
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
    if let Some(parent) = dir.parent() {
        // Fails harmlessly while the other direction is still pinned.
        let _ = fs::remove_dir(parent);
    }
    Ok(())
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

/// Mounts bpffs at /sys/fs/bpf when it is not there, and creates [`PIN_ROOT`].
pub(crate) fn ensure_bpffs() -> Result<(), AttachError> {
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
pub(crate) struct PinLock {
    _dir: fs::File,
}

impl PinLock {
    pub(crate) fn acquire() -> Result<PinLock, AttachError> {
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
pub(crate) struct Meta {
    pub(crate) diode: String,
    pub(crate) source: Option<String>,
    pub(crate) mode: Mode,
    pub(crate) ifindex: u32,
    pub(crate) since: SystemTime,
    pub(crate) program_id: u32,
}

impl Meta {
    /// `key=value` lines; values never contain newlines (they are escaped away).
    pub(crate) fn encode(&self) -> Vec<u8> {
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

    pub(crate) fn decode(bytes: &[u8]) -> Option<Meta> {
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
pub(crate) fn write_meta(dir: &Path, meta: &Meta) -> Result<(), AttachError> {
    let path = dir.join("meta");
    let fd = match obj_get_optional(&path)? {
        Some(fd) => fd,
        None => {
            let fd = sys::map_create_array("lagic_meta", META_SIZE, 1)
                .map_err(|e| os_error("creating the metadata map", e))?;
            sys::obj_pin(fd.as_fd(), &path)
                .map_err(|e| os_error(format!("pinning {}", path.display()), e))?;
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

/// Opens the pinned object at `path`; `None` when there is none.
pub(crate) fn obj_get_optional(path: &Path) -> Result<Option<OwnedFd>, AttachError> {
    match sys::obj_get(path) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(os_error(format!("opening pin {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
