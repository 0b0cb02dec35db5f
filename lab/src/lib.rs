//! The enclave lab: an enclave in its own network namespace behind a veth pair, with a
//! diode on the host-side end, so real TCP traffic crosses a real diode.
//!
//! ```text
//!   host (root netns)                         netns lagic-NAME
//!   lgh-NAME  SUBNET.1  <==== veth ====>  lge-NAME  SUBNET.11:8080  enclave
//!     ^ diode on ingress: every packet the enclave sends crosses it
//! ```
//!
//! The enclave is `lagic-enclave`, any program that serves HTTP at the enclave's address
//! (the benchmark's server), or a QEMU virtual machine booting `lagic-enclave` ([`vm`] has
//! the picture); the diode stays where it is. `lagic lab up|down|status` are thin wrappers
//! around [`up`], [`down`] and [`status`]; the end-to-end tests and the benchmark use them
//! too, and all of them talk HTTP through [`http`].
//!
//! Invariants:
//! - Every name (namespace, links, state directory) derives from the lab's [`LabKind`] and
//!   name, so `down` finds everything from those alone, after a crash too, and is
//!   idempotent. The kinds use disjoint prefixes (`lagic-`/`lgh-` for `lagic lab`,
//!   `lagicb-`/`lbh-` for the benchmark), so no lab of one kind can touch another's.
//! - `up` refuses a name whose state, namespace or host link already exists (it never
//!   clobbers), and a subnet already in use on the host.
//! - The state ([`state::LabState`], JSON in `STATE_ROOT/NAME/state.json`) is written
//!   atomically before anything is built, so an interrupted `up` is still cleaned up by
//!   `down`.
//! - `up` either finishes or undoes what it made.
//! - Offloads (TSO/GSO) stay as the kernel sets them on veth: the diode must see the large,
//!   non-linear skbs real traffic makes.

#![deny(missing_docs)]

pub mod http;
pub mod offload;
pub mod state;
pub mod vm;

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lagic_loader::attach::{self, AttachError, AttachOptions, Direction};
use serde::{Deserialize, Serialize};

pub use state::{LabState, VmRecord};

/// Where `lagic lab` records its labs.
pub const STATE_ROOT: &str = "/run/lagic/lab";
/// Where the benchmark records its labs.
pub const BENCH_STATE_ROOT: &str = "/run/lagic/bench";
/// The enclave's TCP port.
pub const ENCLAVE_PORT: u16 = 8080;
/// How long `up` waits for the enclave's /health.
const HEALTH_DEADLINE: Duration = Duration::from_secs(15);
/// How long `up --vm` waits: a VM boots in about 10 s under software emulation on a busy
/// 2-core machine; leave room for a much slower one.
const VM_HEALTH_DEADLINE: Duration = Duration::from_secs(180);

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Bad lab name.
    #[error("lab name `{0}` is not 1-8 of [a-z0-9-]")]
    BadName(String),
    /// Bad subnet.
    #[error(
        "subnet `{0}` is not an IPv4 network A.B.C.D/N with N from 8 to 28 and no host bits set"
    )]
    BadSubnet(String),
    /// Not root.
    #[error("the lab needs root (network namespaces, veth, BPF); run it with sudo")]
    NotRoot,
    /// The lab, or leftovers of it, exist.
    #[error("lab `{name}` is already up or left over ({what}); {remedy}")]
    Exists {
        /// Lab name.
        name: String,
        /// What was found.
        what: String,
        /// How to remove it.
        remedy: String,
    },
    /// Another interface already uses the subnet.
    #[error("subnet {subnet} overlaps {addr} on {iface}; choose another with --subnet")]
    SubnetInUse {
        /// The requested subnet.
        subnet: String,
        /// The address found.
        addr: String,
        /// Its interface.
        iface: String,
    },
    /// lagic-enclave was not found.
    #[error("cannot find lagic-enclave {0}; build it with `cargo build --release -p lagic-enclave` or pass --enclave-bin PATH")]
    NoEnclave(String),
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr or the spawn error.
        detail: String,
    },
    /// The enclave did not come up.
    #[error("the enclave did not answer GET /health at {addr} within {secs} s: {why}\nlast lines of its log ({log}):\n{tail}")]
    EnclaveDown {
        /// Where it should listen.
        addr: SocketAddr,
        /// The deadline.
        secs: u64,
        /// What went wrong.
        why: String,
        /// The log path.
        log: String,
        /// The log's tail.
        tail: String,
    },
    /// The VM cannot be started as asked.
    #[error("{0}")]
    Vm(String),
    /// Attaching the diode failed.
    #[error("attaching the diode failed: {0}")]
    Attach(#[from] AttachError),
    /// The state file is not a lab record.
    #[error("{path} is not a lab record ({detail}); remove the lab with `lagic lab down --name NAME`, which does not need it")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// An IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// Parses `A.B.C.D/N` (8 <= N <= 28, no host bits).
    pub fn parse(text: &str) -> Result<Subnet, LabError> {
        let bad = || LabError::BadSubnet(text.to_owned());
        let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=28).contains(&prefix) || u32::from(network) & !mask(prefix) != 0 {
            return Err(bad());
        }
        Ok(Subnet { network, prefix })
    }

    /// The host-side address (.1).
    pub fn host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The enclave's address (.11).
    pub fn enclave(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 11)
    }

    /// The enclave's HTTP address (.11:8080).
    pub fn enclave_addr(&self) -> SocketAddr {
        SocketAddr::from((self.enclave(), ENCLAVE_PORT))
    }

    fn contains(&self, addr: Ipv4Addr, prefix: u8) -> bool {
        // Two networks overlap when the shorter prefix's mask agrees on both.
        let m = mask(self.prefix.min(prefix));
        u32::from(addr) & m == u32::from(self.network) & m
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// Whose lab it is: each kind has its own name prefixes and state directory, so labs of
/// different kinds never share a namespace, a link or a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabKind {
    /// `lagic lab` (and the end-to-end tests, which drive it).
    Lab,
    /// The benchmark's end-to-end lab.
    Bench,
}

impl LabKind {
    /// `(namespace, host veth, enclave veth, bridge, tap)` prefixes and the state root.
    fn prefixes(self) -> ([&'static str; 5], &'static str) {
        match self {
            LabKind::Lab => (["lagic-", "lgh-", "lge-", "lgb-", "lgt-"], STATE_ROOT),
            LabKind::Bench => (
                ["lagicb-", "lbh-", "lbe-", "lbb-", "lbt-"],
                BENCH_STATE_ROOT,
            ),
        }
    }

    /// What a person can do about names in use; `recorded` says a lab of this kind left
    /// its record there (without one, `up` did not make them: `up` writes the record before
    /// it builds anything).
    fn remedy(self, name: &str, recorded: bool) -> String {
        match self {
            LabKind::Lab if recorded => format!("run `lagic lab down --name {name}` first"),
            LabKind::Lab => format!(
                "`lagic lab up` did not make them (there is no record in {STATE_ROOT}/{name}), so                  they are left alone; choose another --name"
            ),
            LabKind::Bench => format!(
                "the benchmark removes its own leftovers before it starts; if that failed, \
                 `ip netns del lagicb-{name}; ip link del lbh-{name}; rm -r {BENCH_STATE_ROOT}/{name}`"
            ),
        }
    }
}

/// The names a lab derives from its kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabNames {
    /// Whose lab.
    pub kind: LabKind,
    /// Lab name.
    pub name: String,
    /// Network namespace of the enclave.
    pub netns: String,
    /// Host-side veth end (the diode sits on its ingress).
    pub host_if: String,
    /// Enclave-side veth end (inside the namespace).
    pub enclave_if: String,
    /// Bridge inside the namespace joining the veth and the VM's tap (`--vm`).
    pub bridge: String,
    /// The VM's tap inside the namespace (`--vm`).
    pub tap: String,
    /// State directory.
    pub state_dir: PathBuf,
}

impl LabNames {
    /// The names of a `lagic lab` lab, checking the name.
    pub fn new(name: &str) -> Result<LabNames, LabError> {
        LabNames::of(LabKind::Lab, name)
    }

    /// The names of a lab of `kind`, checking the name.
    pub fn of(kind: LabKind, name: &str) -> Result<LabNames, LabError> {
        let ok = (1..=8).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(LabError::BadName(name.to_owned()));
        }
        let ([netns, host, enclave, bridge, tap], root) = kind.prefixes();
        Ok(LabNames {
            kind,
            name: name.to_owned(),
            netns: format!("{netns}{name}"),
            host_if: format!("{host}{name}"),
            enclave_if: format!("{enclave}{name}"),
            bridge: format!("{bridge}{name}"),
            tap: format!("{tap}{name}"),
            state_dir: Path::new(root).join(name),
        })
    }
}

/// The diode `up` attaches.
#[derive(Debug, Clone)]
pub struct Diode {
    /// The object's bytes.
    pub object: Vec<u8>,
    /// Where it came from (recorded and shown by status).
    pub source: String,
}

/// What runs in the namespace.
#[derive(Debug, Clone)]
pub enum Enclave {
    /// `lagic-enclave --listen ENCLAVE:8080 ARGS...`.
    Lagi {
        /// The lagic-enclave binary.
        bin: PathBuf,
        /// Extra arguments.
        args: Vec<String>,
    },
    /// Any program, run as `PROGRAM ARGS...`; it must serve `GET /health` with 200 at
    /// [`Subnet::enclave_addr`].
    Program {
        /// The program.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
    /// lagic-enclave inside a QEMU VM; its arguments travel on the kernel command line.
    Vm {
        /// What the VM boots.
        config: vm::VmConfig,
        /// Extra lagic-enclave arguments.
        args: Vec<String>,
    },
}

/// What `up` was asked for.
#[derive(Debug, Clone)]
pub struct UpRequest {
    /// Whose lab.
    pub kind: LabKind,
    /// Lab name.
    pub name: String,
    /// Subnet.
    pub subnet: Subnet,
    /// The diode to attach to the host-side ingress, or none (the caller attaches its own).
    pub diode: Option<Diode>,
    /// What runs in the namespace.
    pub enclave: Enclave,
}

/// Checks that we run as root.
pub fn require_root() -> Result<(), LabError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotRoot);
    }
    Ok(())
}

/// Builds the lab; on any failure removes what it made and returns the error.
pub fn up(req: &UpRequest, progress: &mut dyn FnMut(&str)) -> Result<LabState, LabError> {
    require_root()?;
    let names = LabNames::of(req.kind, &req.name)?;
    // Refuse before making anything, so a failure here never tears down a running lab or
    // anything else that happens to carry the lab's names.
    if let Some(what) = leftovers(&names) {
        return Err(LabError::Exists {
            name: names.name.clone(),
            what,
            remedy: names.kind.remedy(&names.name, names.state_dir.exists()),
        });
    }
    check_subnet_free(&req.subnet)?;
    // A diode the verifier refuses fails here, before anything is built.
    if let Some(diode) = &req.diode {
        let name = attach::preflight(&diode.object)?;
        progress(&format!("diode {name} passes the kernel verifier"));
    }
    match build(req, &names, progress) {
        Ok(state) => Ok(state),
        Err(e) => {
            progress("failed; removing what was made");
            let _ = down(names.kind, &names.name);
            Err(e)
        }
    }
}

fn build(
    req: &UpRequest,
    names: &LabNames,
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    let subnet = req.subnet;
    // Refuse a VM that cannot start before building anything.
    let vm_plan = match &req.enclave {
        Enclave::Vm { config, args } => {
            let (accel, why) = vm::choose_accel(config.accel)?;
            let cmdline = vm::kernel_cmdline(
                subnet.enclave(),
                subnet.prefix,
                subnet.host(),
                ENCLAVE_PORT,
                args,
            )?;
            Some((config, accel, why, cmdline))
        }
        _ => None,
    };
    let mut state = LabState {
        name: names.name.clone(),
        kind: names.kind,
        subnet: subnet.to_string(),
        netns: names.netns.clone(),
        host_if: names.host_if.clone(),
        enclave_if: names.enclave_if.clone(),
        host_ip: subnet.host(),
        enclave_ip: subnet.enclave(),
        port: ENCLAVE_PORT,
        pid: 0,
        program: match &req.enclave {
            Enclave::Lagi { bin, .. } => bin.clone(),
            Enclave::Program { program, .. } => program.clone(),
            Enclave::Vm { config, .. } => config.qemu.clone(),
        },
        vm: vm_plan.as_ref().map(|(cfg, accel, _, _)| VmRecord {
            accel: accel.as_str().to_owned(),
            memory_mib: cfg.memory_mib,
            kernel: cfg.kernel.clone(),
            initrd: cfg.initrd.clone(),
        }),
        diode: req.diode.as_ref().map(|d| d.source.clone()),
        diode_attached: false,
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    fs::create_dir_all(&names.state_dir).map_err(|source| LabError::Io {
        what: format!("creating {}", names.state_dir.display()),
        source,
    })?;
    state::write(&names.state_dir, &state)?;

    progress(&format!(
        "namespace {}, veth {} ({}/{}) <-> {} ({}{}/{})",
        names.netns,
        names.host_if,
        subnet.host(),
        subnet.prefix,
        names.enclave_if,
        if vm_plan.is_some() {
            "bridged to the VM's eth0 "
        } else {
            ""
        },
        subnet.enclave(),
        subnet.prefix
    ));
    let host_cidr = format!("{}/{}", subnet.host(), subnet.prefix);
    let enclave_cidr = format!("{}/{}", subnet.enclave(), subnet.prefix);
    ip(&["netns", "add", &names.netns])?;
    // The enclave's end is made here and moved into the namespace once its
    // transmit checksum offload is off: a stream diode drops checksums left
    // to be completed after it (offload.rs says why).
    ip(&[
        "link",
        "add",
        &names.host_if,
        "type",
        "veth",
        "peer",
        "name",
        &names.enclave_if,
    ])?;
    offload::disable_tx_checksum(&names.enclave_if).map_err(|e| LabError::Command {
        command: format!("ethtool -K {} tx off (SIOCETHTOOL)", names.enclave_if),
        detail: e.to_string(),
    })?;
    ip(&["link", "set", &names.enclave_if, "netns", &names.netns])?;
    ip(&["addr", "add", &host_cidr, "dev", &names.host_if])?;
    ip(&["link", "set", &names.host_if, "up"])?;
    ip(&["-n", &names.netns, "link", "set", "lo", "up"])?;
    if vm_plan.is_none() {
        ip(&[
            "-n",
            &names.netns,
            "addr",
            "add",
            &enclave_cidr,
            "dev",
            &names.enclave_if,
        ])?;
    }
    ip(&["-n", &names.netns, "link", "set", &names.enclave_if, "up"])?;

    let log_path = names.state_dir.join("enclave.log");
    let console_path = names.state_dir.join("console.log");
    let listen = subnet.enclave_addr().to_string();
    let (mut child, deadline, what) = match (&req.enclave, &vm_plan) {
        (Enclave::Lagi { bin, args }, _) => {
            progress(&format!(
                "starting {} --listen {listen} in {}",
                bin.display(),
                names.netns
            ));
            let mut all = vec!["--listen".to_owned(), listen];
            all.extend(args.iter().cloned());
            let child = spawn_in_netns(names, bin, &all, &log_path)?;
            (child, HEALTH_DEADLINE, "enclave")
        }
        (Enclave::Program { program, args }, _) => {
            progress(&format!(
                "starting {} {} in {}",
                program.display(),
                args.join(" "),
                names.netns
            ));
            let child = spawn_in_netns(names, program, args, &log_path)?;
            (child, HEALTH_DEADLINE, "enclave")
        }
        (Enclave::Vm { .. }, Some((cfg, accel, why, cmdline))) => {
            // The namespace holds no address: the bridge only forwards between the VM's
            // tap and the veth, so the VM's NIC is the only way out.
            progress(&format!(
                "bridge {} joins {} and tap {} (the VM's only NIC)",
                names.bridge, names.enclave_if, names.tap
            ));
            let ns = names.netns.as_str();
            ip(&[
                "-n",
                ns,
                "link",
                "add",
                &names.bridge,
                "type",
                "bridge",
                "forward_delay",
                "0",
            ])?;
            ip(&["-n", ns, "tuntap", "add", "dev", &names.tap, "mode", "tap"])?;
            ip(&[
                "-n",
                ns,
                "link",
                "set",
                &names.enclave_if,
                "master",
                &names.bridge,
            ])?;
            ip(&["-n", ns, "link", "set", &names.tap, "master", &names.bridge])?;
            for dev in [&names.tap, &names.bridge] {
                ip(&["-n", ns, "link", "set", dev, "up"])?;
            }
            progress(&format!(
                "booting {} + {} in {ns} ({}, {why}; {} MiB); console: {}",
                cfg.kernel.display(),
                cfg.initrd.display(),
                accel.as_str(),
                cfg.memory_mib,
                console_path.display()
            ));
            let args = vm::qemu_args(names, cfg, *accel, cmdline, &console_path);
            let child = spawn_in_netns(names, &cfg.qemu, &args, &log_path)?;
            (child, VM_HEALTH_DEADLINE, "VM")
        }
        (Enclave::Vm { .. }, None) => unreachable!("a VM enclave always has a plan"),
    };
    // `ip netns exec` execs the program in place: the child's pid is the enclave's (QEMU's).
    state.pid = child.id();
    state::write(&names.state_dir, &state)?;

    let addr = state.enclave_addr();
    let started = Instant::now();
    let why = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break format!("it exited ({status})");
        }
        match http::get(addr, "/health", Duration::from_millis(500)) {
            Ok(http::Reply::Complete(r)) if r.status == 200 => break String::new(),
            other => {
                if started.elapsed() > deadline {
                    break match other {
                        Ok(http::Reply::Complete(r)) => format!("it answered {}", r.status),
                        Ok(_) => "no complete answer".to_owned(),
                        Err(e) => e.to_string(),
                    };
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !why.is_empty() {
        let mut why = why;
        let console = fs::read_to_string(&console_path).unwrap_or_default();
        if let Some(line) = console
            .lines()
            .find(|l| l.contains("Initramfs unpacking failed"))
        {
            // The kernel could not unpack everything (a large model in too little memory),
            // so there is no /init: the builder puts it last for exactly this case.
            let _ = write!(
                why,
                "; the guest kernel says `{}`: give the VM more memory (--vm-memory, now {} MiB; \
                 about 4 times the model's size)",
                line.trim(),
                state.vm.as_ref().map(|v| v.memory_mib).unwrap_or(0)
            );
        }
        let (log, tail) = if state.vm.is_some() {
            // The guest's own account (init's messages, a kernel panic) is on the console;
            // QEMU's complaints are in its log.
            (
                format!("{} and {}", console_path.display(), log_path.display()),
                format!(
                    "{}\n{}",
                    file_tail(&console_path, 10),
                    file_tail(&log_path, 5)
                ),
            )
        } else {
            (log_path.display().to_string(), file_tail(&log_path, 10))
        };
        return Err(LabError::EnclaveDown {
            addr,
            secs: deadline.as_secs(),
            why,
            log,
            tail,
        });
    }
    progress(&format!(
        "{what} (pid {}) healthy at http://{addr} after {} ms",
        state.pid,
        started.elapsed().as_millis()
    ));
    // The child is reaped by init after the caller exits; dropping `child` does not kill it.
    drop(child);

    if let Some(diode) = &req.diode {
        let report = attach::attach(
            &diode.object,
            &names.host_if,
            Direction::Ingress,
            &AttachOptions {
                source: Some(diode.source.clone()),
                ..Default::default()
            },
        )?;
        let a = report.attachment;
        progress(&format!(
            "diode {} (program {}) on {} ingress ({})",
            a.diode, a.program_id, a.iface, a.mode
        ));
        state.diode_attached = true;
        state::write(&names.state_dir, &state)?;
    }
    Ok(state)
}

/// What `down` removed.
#[derive(Debug, Default)]
pub struct DownReport {
    /// One line per thing removed.
    pub removed: Vec<String>,
}

/// Removes everything a lab of this kind and name may have made. Idempotent.
pub fn down(kind: LabKind, name: &str) -> Result<DownReport, LabError> {
    require_root()?;
    let names = LabNames::of(kind, name)?;
    let mut report = DownReport::default();
    // The record only adds the pid of an enclave that outlived its namespace; an unreadable
    // record must not stop the cleanup, which works from the names alone.
    let state = state::read(&names.state_dir).ok().flatten();

    // 1. Processes: everything in the namespace (QEMU too), and the recorded enclave pid if
    //    it still runs the recorded program or this lab's QEMU (it may have outlived a
    //    namespace deleted by hand).
    let mut pids: Vec<u32> = netns_pids(&names.netns);
    if let Some(st) = state.as_ref().filter(|s| s.pid != 0) {
        if is_lab_process(st.pid, &names, &st.program) && !pids.contains(&st.pid) {
            pids.push(st.pid);
        }
    }
    for &pid in &pids {
        // SAFETY: signalling a pid; the worst case of a race is ESRCH.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|&p| process_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in &pids {
        if process_alive(pid) {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        report.removed.push(format!("process {pid}"));
    }

    // 2. The diode and its pins (whether or not the interface still exists).
    for direction in Direction::ALL {
        match attach::detach(&names.host_if, direction) {
            Ok(a) => report.removed.push(format!(
                "diode {} on {} {}",
                a.diode, names.host_if, direction
            )),
            Err(AttachError::NothingAttached { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }

    // 3. The VM's tap and bridge (they would go with the namespace; say so explicitly),
    //    then links and namespace (deleting either end of the veth removes the pair).
    if netns_exists(&names.netns) {
        for (kind, dev) in [("tap", &names.tap), ("bridge", &names.bridge)] {
            if ip(&["-n", &names.netns, "link", "show", "dev", dev]).is_ok() {
                ip(&["-n", &names.netns, "link", "del", "dev", dev])?;
                report.removed.push(format!("{kind} {dev}"));
            }
        }
    }
    if link_exists(&names.host_if) {
        ip(&["link", "del", &names.host_if])?;
        report
            .removed
            .push(format!("veth {} <-> {}", names.host_if, names.enclave_if));
    }
    if netns_exists(&names.netns) {
        ip(&["netns", "del", &names.netns])?;
        report.removed.push(format!("namespace {}", names.netns));
    }

    // 4. State.
    if names.state_dir.exists() {
        fs::remove_dir_all(&names.state_dir).map_err(|source| LabError::Io {
            what: format!("removing {}", names.state_dir.display()),
            source,
        })?;
        report
            .removed
            .push(format!("state {}", names.state_dir.display()));
    }
    Ok(report)
}

/// A lab as seen now.
#[derive(Debug, Clone)]
pub struct LabStatus {
    /// Recorded state.
    pub state: LabState,
    /// The namespace exists.
    pub netns: bool,
    /// The host-side link exists.
    pub link: bool,
    /// The enclave process runs.
    pub enclave_running: bool,
    /// GET /health answered 200 (through the diode).
    pub healthy: bool,
    /// The diode on the host-side ingress.
    pub diode: Option<attach::Attachment>,
}

impl LabStatus {
    /// Everything is in place.
    pub fn is_up(&self) -> bool {
        self.netns
            && self.link
            && self.enclave_running
            && self.healthy
            && self
                .diode
                .as_ref()
                .is_some_and(|d| d.health == attach::Health::Active)
    }
}

/// Labs of `kind` recorded under its state root (or just `name`).
pub fn status(kind: LabKind, name: Option<&str>) -> Result<Vec<LabStatus>, LabError> {
    let (_, root) = kind.prefixes();
    let mut labs: Vec<String> = match name {
        Some(n) => vec![LabNames::of(kind, n)?.name],
        None => fs::read_dir(root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    };
    labs.sort();
    let mut out = Vec::new();
    for lab in labs {
        let Ok(names) = LabNames::of(kind, &lab) else {
            continue;
        };
        let Some(state) = state::read(&names.state_dir)? else {
            continue;
        };
        let healthy = http::get(state.enclave_addr(), "/health", Duration::from_secs(1))
            .ok()
            .and_then(|r| r.complete().map(|r| r.status == 200))
            .unwrap_or(false);
        out.push(LabStatus {
            netns: netns_exists(&names.netns),
            link: link_exists(&names.host_if),
            enclave_running: state.pid != 0 && is_lab_process(state.pid, &names, &state.program),
            healthy,
            diode: attach::attachment(&names.host_if, Direction::Ingress).unwrap_or(None),
            state,
        });
    }
    Ok(out)
}

/// Finds lagic-enclave: next to the running executable, then on PATH.
pub fn find_enclave() -> Result<PathBuf, LabError> {
    let mut tried = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let candidate = dir.join("lagic-enclave");
            if candidate.is_file() {
                return Ok(candidate);
            }
            tried.push(candidate.display().to_string());
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("lagic-enclave");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        tried.push("PATH".to_owned());
    }
    Err(LabError::NoEnclave(format!(
        "(looked in {})",
        tried.join(", ")
    )))
}

/// What of a lab of these names exists, if anything.
fn leftovers(names: &LabNames) -> Option<String> {
    let mut found = Vec::new();
    if names.state_dir.exists() {
        found.push(format!("state {}", names.state_dir.display()));
    }
    if netns_exists(&names.netns) {
        found.push(format!("namespace {}", names.netns));
    }
    for link in [&names.host_if, &names.enclave_if] {
        if link_exists(link) {
            found.push(format!("link {link}"));
        }
    }
    if found.is_empty() {
        None
    } else {
        Some(found.join(", "))
    }
}

/// Refuses a subnet that overlaps an address already configured in this namespace.
fn check_subnet_free(subnet: &Subnet) -> Result<(), LabError> {
    let out = ip_output(&["-o", "-4", "addr", "show"])?;
    for line in out.lines() {
        // `2: eth0    inet 10.0.0.5/24 brd ... scope global eth0`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pos) = fields.iter().position(|f| *f == "inet") else {
            continue;
        };
        let (Some(iface), Some(cidr)) = (fields.get(1), fields.get(pos + 1)) else {
            continue;
        };
        let Some((addr, prefix)) = cidr.split_once('/') else {
            continue;
        };
        let (Ok(addr), Ok(prefix)) = (addr.parse::<Ipv4Addr>(), prefix.parse::<u8>()) else {
            continue;
        };
        if subnet.contains(addr, prefix) && !addr.is_loopback() {
            return Err(LabError::SubnetInUse {
                subnet: subnet.to_string(),
                addr: cidr.to_string(),
                iface: iface.to_string(),
            });
        }
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    ip_output(args).map(|_| ())
}

fn ip_output(args: &[&str]) -> Result<String, LabError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command {
            command: command.clone(),
            detail: format!("{e} (is iproute2 installed?)"),
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn netns_exists(netns: &str) -> bool {
    Path::new("/run/netns").join(netns).exists()
}

fn link_exists(iface: &str) -> bool {
    Path::new("/sys/class/net").join(iface).exists()
}

fn netns_pids(netns: &str) -> Vec<u32> {
    if !netns_exists(netns) {
        return Vec::new();
    }
    ip_output(&["netns", "pids", netns])
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn process_alive(pid: u32) -> bool {
    // A zombie still has /proc/PID but its state is Z; count it as gone.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// Whether `pid` is a lab's enclave: this lab's QEMU, or a process running the recorded
/// program (its `argv[0]` has the program's file name).
fn is_lab_process(pid: u32, names: &LabNames, program: &Path) -> bool {
    let Some(file_name) = program.file_name() else {
        return false;
    };
    process_alive(pid)
        && (vm::is_lab_qemu(pid, names)
            || fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    c.split(|&b| b == 0).next().is_some_and(|argv0| {
                        Path::new(std::ffi::OsStr::from_bytes(argv0)).file_name() == Some(file_name)
                    })
                })
                .unwrap_or(false))
}

/// Starts `program args` inside the lab's namespace, detached from our session (so it
/// outlives its caller and a terminal's hangup), with stdout and stderr in `log_path`.
fn spawn_in_netns(
    names: &LabNames,
    program: &Path,
    args: &[String],
    log_path: &Path,
) -> Result<Child, LabError> {
    let log = fs::File::create(log_path).map_err(|source| LabError::Io {
        what: format!("creating {}", log_path.display()),
        source,
    })?;
    let log_err = log.try_clone().map_err(|source| LabError::Io {
        what: "duplicating the log file".into(),
        source,
    })?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &names.netns])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    command.spawn().map_err(|e| LabError::Command {
        command: format!("ip netns exec {} {}", names.netns, program.display()),
        detail: e.to_string(),
    })
}

fn file_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    if tail.is_empty() {
        "(empty)".to_owned()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_place_hosts() {
        let s = Subnet::parse("172.30.0.0/24").unwrap();
        assert_eq!(s.host(), Ipv4Addr::new(172, 30, 0, 1));
        assert_eq!(s.enclave(), Ipv4Addr::new(172, 30, 0, 11));
        assert!(Subnet::parse("172.30.0.1/24").is_err());
        assert!(Subnet::parse("172.30.0.0/30").is_err());
        assert!(Subnet::parse("172.30.0.0").is_err());
        assert!(Subnet::parse("nonsense/24").is_err());
        assert!(s.contains(Ipv4Addr::new(172, 30, 0, 200), 32));
        assert!(s.contains(Ipv4Addr::new(172, 16, 0, 1), 12));
        assert!(!s.contains(Ipv4Addr::new(172, 30, 1, 1), 24));
    }

    #[test]
    fn names_derive_and_fit_ifnamsiz() {
        let n = LabNames::new("longname").unwrap();
        assert_eq!(n.netns, "lagic-longname");
        assert!(n.host_if.len() < 16 && n.enclave_if.len() < 16);
        assert!(n.bridge.len() < 16 && n.tap.len() < 16);
        assert_eq!(
            (n.bridge.as_str(), n.tap.as_str()),
            ("lgb-longname", "lgt-longname")
        );
        assert!(LabNames::new("").is_err());
        assert!(LabNames::new("toolongname").is_err());
        assert!(LabNames::new("a/b").is_err());
        assert!(LabNames::new("UP").is_err());
    }

    #[test]
    fn lab_kinds_never_share_a_name() {
        // `lagic lab up --name bench` and the benchmark's lab must not collide, nor any
        // other pair of names of different kinds.
        for a in ["bench", "e2e", "b-e2e", "x"] {
            for b in ["bench", "e2e", "b-e2e", "x"] {
                let lab = LabNames::of(LabKind::Lab, a).unwrap();
                let bench = LabNames::of(LabKind::Bench, b).unwrap();
                assert_ne!(lab.netns, bench.netns);
                for l in [&lab.host_if, &lab.enclave_if, &lab.bridge, &lab.tap] {
                    for r in [&bench.host_if, &bench.enclave_if, &bench.bridge, &bench.tap] {
                        assert_ne!(l, r);
                    }
                }
                assert_ne!(lab.state_dir, bench.state_dir);
            }
        }
        let bench = LabNames::of(LabKind::Bench, "longname").unwrap();
        assert!(bench.host_if.len() < 16 && bench.tap.len() < 16);
        assert_eq!(bench.netns, "lagicb-longname");
    }
}
