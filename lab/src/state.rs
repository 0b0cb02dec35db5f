//! The lab's record: one JSON file, `STATE_DIR/state.json`, written whole or not at all.
//!
//! Invariants:
//! - The file is written to a temporary name in the same directory, flushed to disk and
//!   renamed over the old one, so a reader sees the previous record or the new one, never
//!   a torn mix.
//! - `up` writes it before building anything (pid 0, no diode) and again when the enclave
//!   runs and when the diode is attached; `down` never needs it (every name derives from
//!   the lab's name), it only uses the recorded pid to reach an enclave that outlived its
//!   namespace.

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{LabError, LabKind};

/// The record's file name inside the lab's state directory.
pub const STATE_FILE: &str = "state.json";

/// The VM part of a lab's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    /// The accelerator in use: `kvm` or `tcg`.
    pub accel: String,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// The guest's kernel image.
    pub kernel: PathBuf,
    /// The initramfs holding the enclave.
    pub initrd: PathBuf,
}

/// A lab as recorded in its state file (and what `up` returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// Lab name.
    pub name: String,
    /// Whose lab it is (which name prefixes it uses).
    pub kind: LabKind,
    /// The subnet, `A.B.C.D/N`.
    pub subnet: String,
    /// Network namespace of the enclave.
    pub netns: String,
    /// Host-side veth end (the diode sits on its ingress).
    pub host_if: String,
    /// Enclave-side veth end, inside the namespace.
    pub enclave_if: String,
    /// The host-side address.
    pub host_ip: Ipv4Addr,
    /// The enclave's address.
    pub enclave_ip: Ipv4Addr,
    /// The enclave's TCP port.
    pub port: u16,
    /// The enclave's process id, or QEMU's with a VM (0 until started).
    pub pid: u32,
    /// The enclave program (for a VM: QEMU).
    pub program: PathBuf,
    /// The VM, when the enclave runs in one.
    pub vm: Option<VmRecord>,
    /// Where the diode came from (a path, as given), if `up` was given one.
    pub diode: Option<String>,
    /// `up` attached the diode to the host-side ingress.
    pub diode_attached: bool,
    /// When `up` started, in seconds since the Unix epoch.
    pub created_at: u64,
}

impl LabState {
    /// The enclave's HTTP address.
    pub fn enclave_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.enclave_ip, self.port))
    }
}

/// Writes `state` into `dir` atomically (temporary file, fsync, rename).
pub fn write(dir: &Path, state: &LabState) -> Result<(), LabError> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
    let io = |source| LabError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let mut text = serde_json::to_string_pretty(state).map_err(|e| LabError::State {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    text.push('\n');
    let mut file = fs::File::create(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io)
}

/// Reads the record in `dir`: `None` when there is none.
pub fn read(dir: &Path) -> Result<Option<LabState>, LabError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LabError::Io {
                what: format!("reading {}", path.display()),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| LabError::State {
            path,
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LabState {
        LabState {
            name: "t1".into(),
            kind: LabKind::Lab,
            subnet: "172.30.1.0/24".into(),
            netns: "lagic-t1".into(),
            host_if: "lgh-t1".into(),
            enclave_if: "lge-t1".into(),
            host_ip: Ipv4Addr::new(172, 30, 1, 1),
            enclave_ip: Ipv4Addr::new(172, 30, 1, 11),
            port: 8080,
            pid: 42,
            program: "/usr/bin/qemu-system-x86_64".into(),
            vm: Some(VmRecord {
                accel: "tcg".into(),
                memory_mib: 128,
                kernel: "/k/vmlinux".into(),
                initrd: "/k/initramfs.img".into(),
            }),
            diode: Some("/tmp/a\nb.o".into()),
            diode_attached: true,
            created_at: 7,
        }
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = std::env::temp_dir().join(format!("lagic-lab-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(read(&dir).unwrap(), None);
        let st = sample();
        write(&dir, &st).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(st.clone()));
        // Rewriting replaces the record whole and leaves no temporary file behind.
        let mut st2 = st;
        st2.pid = 43;
        st2.vm = None;
        write(&dir, &st2).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(st2));
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [STATE_FILE]);
        // A record that is not one is an error that names the file, not an empty lab.
        fs::write(dir.join(STATE_FILE), "name=t1\npid=42\n").unwrap();
        let e = read(&dir).unwrap_err();
        assert!(matches!(&e, LabError::State { path, .. } if path.ends_with(STATE_FILE)));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_record_is_plain_json_with_the_documented_fields() {
        let v = serde_json::to_value(sample()).unwrap();
        for key in [
            "name",
            "kind",
            "netns",
            "host_if",
            "enclave_if",
            "host_ip",
            "enclave_ip",
            "pid",
            "diode_attached",
            "created_at",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(v["enclave_ip"], "172.30.1.11");
        assert_eq!(v["kind"], "lab");
    }
}
