//! PID 1 of the enclave VM: `lagic-enclave` as the init of an initramfs that holds nothing
//! else (no shell, no other service).
//!
//! The kernel runs `/init`, which is this binary. [`boot`] mounts `/proc`, `/sys` and
//! `/dev`, points standard output and error at the console, loads the kernel modules
//! the initramfs carries (the virtio network driver and its dependencies) with
//! `finit_module`, brings up `lo` and the NIC with the address from the kernel command
//! line, and returns the argument vector of the server to run. The caller serves; if
//! serving ever ends, [`halt`] powers the VM off, since PID 1 must never exit.
//!
//! Kernel command line (read from `/proc/cmdline`):
//!
//! | parameter | meaning |
//! |---|---|
//! | `lagic.ip=A.B.C.D/N` | the NIC's address and prefix (required) |
//! | `lagic.gw=A.B.C.D` | default gateway (optional; the lab needs none) |
//! | `lagic.if=NAME` | the NIC (default `eth0`) |
//! | `lagic.port=P` | TCP port to serve on (default 8080) |
//! | `lagic.arg=ARG` | one more server argument; repeat in order (no spaces or quotes) |
//!
//! Layout of the initramfs this expects: `/init` (this binary), `/lib/modules/lagic/*.ko`
//! (loaded in file-name order, so the builder numbers them dependencies first), and
//! optionally `/model.bin` with `/tokenizer.bin` (served with the llama2 generator; without
//! them the echo generator serves).
//!
//! Invariants: nothing here runs unless the process is PID 1 (so a mistaken
//! `lagic-enclave init` on a host never mounts anything or powers the host off), and every
//! failure is reported on the console before the VM powers off.

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the initramfs keeps the modules to load, in file-name order.
pub const MODULE_DIR: &str = "/lib/modules/lagic";
/// The checkpoint served when present.
pub const MODEL_PATH: &str = "/model.bin";
/// The tokenizer served with [`MODEL_PATH`].
pub const TOKENIZER_PATH: &str = "/tokenizer.bin";
/// How long to wait for the NIC to appear after its driver loads (software emulation is slow).
const NIC_WAIT: Duration = Duration::from_secs(30);

/// Why the VM's init could not bring the enclave up.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Run as something other than PID 1.
    #[error("init mode runs only as PID 1 of the enclave VM (this is pid {0})")]
    NotPid1(u32),
    /// A kernel command-line parameter is missing or malformed.
    #[error("kernel command line: {0}")]
    Cmdline(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The NIC did not appear.
    #[error("network interface {iface} did not appear within {secs} s (is its driver in the initramfs?)")]
    NoNic {
        /// Interface name.
        iface: String,
        /// How long we waited.
        secs: u64,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(io::Error) -> InitError {
    let what = what.into();
    move |source| InitError::Sys { what, source }
}

/// The network and server settings taken from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    /// The NIC's address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// The NIC's name.
    pub iface: String,
    /// Port to serve on.
    pub port: u16,
    /// Extra server arguments.
    pub args: Vec<String>,
}

impl BootConfig {
    /// Parses the `lagic.*` parameters of a kernel command line; others are ignored.
    pub fn from_cmdline(cmdline: &str) -> Result<BootConfig, InitError> {
        let bad = |msg: String| InitError::Cmdline(msg);
        let mut ip = None;
        let mut gateway = None;
        let mut iface = "eth0".to_owned();
        let mut port = 8080u16;
        let mut args = Vec::new();
        for word in cmdline.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "lagic.ip" => {
                    let (addr, prefix) = value
                        .split_once('/')
                        .ok_or_else(|| bad(format!("lagic.ip={value}: expected A.B.C.D/N")))?;
                    let addr: Ipv4Addr = addr
                        .parse()
                        .map_err(|_| bad(format!("lagic.ip={value}: bad address")))?;
                    let prefix: u8 = prefix
                        .parse()
                        .ok()
                        .filter(|p| (1..=32).contains(p))
                        .ok_or_else(|| bad(format!("lagic.ip={value}: prefix not 1..32")))?;
                    ip = Some((addr, prefix));
                }
                "lagic.gw" => {
                    gateway = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("lagic.gw={value}: bad address")))?,
                    )
                }
                "lagic.if" => {
                    if value.is_empty() || value.len() >= libc::IFNAMSIZ || value.contains('/') {
                        return Err(bad(format!("lagic.if={value}: not an interface name")));
                    }
                    iface = value.to_owned();
                }
                "lagic.port" => {
                    port = value
                        .parse()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| bad(format!("lagic.port={value}: not a port")))?
                }
                "lagic.arg" => args.push(value.to_owned()),
                _ => {}
            }
        }
        let (ip, prefix) = ip.ok_or_else(|| bad("lagic.ip=A.B.C.D/N is missing".to_owned()))?;
        Ok(BootConfig {
            ip,
            prefix,
            gateway,
            iface,
            port,
            args,
        })
    }

    /// The server's argument vector (`argv[0]` included): listen on the NIC's address, serve
    /// the model when the initramfs has one, then the extra arguments (which may override).
    pub fn server_argv(&self, model: Option<(&Path, &Path)>) -> Vec<String> {
        let mut argv = vec![
            "lagic-enclave".to_owned(),
            "--listen".to_owned(),
            format!("{}:{}", self.ip, self.port),
        ];
        if let Some((m, t)) = model {
            argv.push("--model".to_owned());
            argv.push(m.display().to_string());
            argv.push("--tokenizer".to_owned());
            argv.push(t.display().to_string());
        }
        argv.extend(self.args.iter().cloned());
        argv
    }
}

/// The netmask of a prefix length.
fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

impl fmt::Display for BootConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.iface, self.ip, self.prefix)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        Ok(())
    }
}

/// Whether this process was started by the kernel as `/init` (`argv[0]` is `init` or `/init`).
pub fn invoked_as_init(argv0: &str) -> bool {
    Path::new(argv0).file_name().is_some_and(|n| n == "init")
}

/// Brings the VM up and returns the server's argument vector. Refuses unless PID 1.
pub fn boot() -> Result<Vec<String>, InitError> {
    let pid = std::process::id();
    if pid != 1 {
        return Err(InitError::NotPid1(pid));
    }
    mount_filesystems()?;
    // The kernel opens /dev/console for init only when the initramfs has the node; now that
    // devtmpfs is mounted it exists, so point stdio at it either way.
    console_stdio();
    let modules = load_modules(Path::new(MODULE_DIR))?;
    let cmdline = fs::read_to_string("/proc/cmdline").map_err(sys("reading /proc/cmdline"))?;
    let config = BootConfig::from_cmdline(&cmdline)?;
    eprintln!(
        "lagic-enclave init: loaded {} module(s): {}",
        modules.len(),
        modules.join(" ")
    );
    configure_network(&config)?;
    let model = Path::new(MODEL_PATH);
    let tokenizer = Path::new(TOKENIZER_PATH);
    let has_model = model.is_file() && tokenizer.is_file();
    eprintln!(
        "lagic-enclave init: {config} up at {:.2} s after boot; memory: {}; model: {}",
        uptime_secs().unwrap_or(f64::NAN),
        memory_summary(),
        if has_model {
            MODEL_PATH
        } else {
            "none (echo generator)"
        }
    );
    Ok(config.server_argv(has_model.then_some((model, tokenizer))))
}

/// Powers the VM off. PID 1 must never exit (the kernel would panic); outside PID 1 this
/// only exits with status 2, so it can never power off a host.
pub fn halt() -> ! {
    if std::process::id() == 1 {
        eprintln!("lagic-enclave init: powering off");
        // SAFETY: sync and reboot take no pointers; we are PID 1 of the VM.
        unsafe {
            libc::sync();
            libc::reboot(libc::RB_POWER_OFF);
        }
        // reboot only returns on failure; wait for the end rather than exit and panic.
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    std::process::exit(2)
}

fn mount_filesystems() -> Result<(), InitError> {
    for (source, target, fstype, flags) in [
        (
            "proc",
            "/proc",
            "proc",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        ),
        (
            "sysfs",
            "/sys",
            "sysfs",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        ),
        ("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID),
    ] {
        match fs::create_dir(target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(sys(format!("creating {target}"))(e)),
        }
        let c = |s: &str| CString::new(s).expect("no NUL in a constant");
        let (src, tgt, ty) = (c(source), c(target), c(fstype));
        // SAFETY: the strings are NUL-terminated and outlive the call; data is null.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                tgt.as_ptr(),
                ty.as_ptr(),
                flags,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // A kernel that mounts devtmpfs itself leaves /dev busy; that is fine.
            if e.raw_os_error() != Some(libc::EBUSY) {
                return Err(sys(format!("mounting {fstype} on {target}"))(e));
            }
        }
    }
    Ok(())
}

fn console_stdio() {
    if let Ok(console) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    {
        let fd = console.as_raw_fd();
        for target in 0..=2 {
            // SAFETY: both descriptors are valid; dup2 replaces the target atomically.
            unsafe { libc::dup2(fd, target) };
        }
    }
}

/// Loads every `*.ko` in `dir` in file-name order; a module already present is fine.
/// Returns the names loaded.
fn load_modules(dir: &Path) -> Result<Vec<String>, InitError> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ko"))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(sys(format!("listing {}", dir.display()))(e)),
    };
    files.sort();
    let mut loaded = Vec::new();
    for path in files {
        let file = fs::File::open(&path).map_err(sys(format!("opening {}", path.display())))?;
        let params = c"";
        // SAFETY: a valid descriptor and a NUL-terminated (empty) parameter string.
        let rc =
            unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(sys(format!("loading module {}", path.display()))(e));
            }
        }
        loaded.push(
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    Ok(loaded)
}

/// An `AF_INET` datagram socket, the handle the interface ioctls need.
struct IoctlSocket(std::os::fd::OwnedFd);

impl IoctlSocket {
    fn new() -> Result<IoctlSocket, InitError> {
        // SAFETY: plain socket creation.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(sys("creating an AF_INET socket")(io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(IoctlSocket(unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        }))
    }

    fn ioctl<T>(&self, request: libc::c_ulong, arg: &mut T, what: &str) -> Result<(), InitError> {
        // SAFETY: `arg` is the structure this request reads or writes (ifreq or rtentry),
        // valid for the duration of the call.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), request, arg as *mut T) };
        if rc < 0 {
            return Err(sys(what.to_owned())(io::Error::last_os_error()));
        }
        Ok(())
    }
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; sockaddr is the generic view.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn set_up(sock: &IoctlSocket, iface: &str) -> Result<(), InitError> {
    let mut req = ifreq(iface);
    sock.ioctl(
        libc::SIOCGIFFLAGS,
        &mut req,
        &format!("reading the flags of {iface}"),
    )?;
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    sock.ioctl(
        libc::SIOCSIFFLAGS,
        &mut req,
        &format!("bringing {iface} up"),
    )
}

fn configure_network(config: &BootConfig) -> Result<(), InitError> {
    let sock = IoctlSocket::new()?;
    set_up(&sock, "lo")?;

    let sys_path = Path::new("/sys/class/net").join(&config.iface);
    let started = Instant::now();
    while !sys_path.exists() {
        if started.elapsed() > NIC_WAIT {
            return Err(InitError::NoNic {
                iface: config.iface.clone(),
                secs: NIC_WAIT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let iface = config.iface.as_str();
    let mut req = ifreq(iface);
    req.ifr_ifru.ifru_addr = sockaddr_in(config.ip);
    sock.ioctl(
        libc::SIOCSIFADDR,
        &mut req,
        &format!("setting the address of {iface}"),
    )?;
    let mut req = ifreq(iface);
    req.ifr_ifru.ifru_netmask = sockaddr_in(netmask(config.prefix));
    sock.ioctl(
        libc::SIOCSIFNETMASK,
        &mut req,
        &format!("setting the netmask of {iface}"),
    )?;
    set_up(&sock, iface)?;

    if let Some(gw) = config.gateway {
        // SAFETY: rtentry is plain old data; all zeroes is a valid value.
        let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
        route.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
        route.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
        route.rt_gateway = sockaddr_in(gw);
        route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        sock.ioctl(
            libc::SIOCADDRT,
            &mut route,
            &format!("adding the default route via {gw}"),
        )?;
    }
    Ok(())
}

fn uptime_secs() -> Option<f64> {
    fs::read_to_string("/proc/uptime")
        .ok()?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `MemTotal` and `MemAvailable` from /proc/meminfo, as text.
fn memory_summary() -> String {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| rest.trim().trim_end_matches(':').trim().to_owned())
            .unwrap_or_else(|| "?".to_owned())
    };
    format!(
        "MemTotal {}, MemAvailable {}",
        field("MemTotal:"),
        field("MemAvailable:")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_gives_address_gateway_and_arguments() {
        let c = BootConfig::from_cmdline(
            "console=ttyS0 quiet lagic.ip=172.30.0.11/24 lagic.gw=172.30.0.1 \
             lagic.arg=--seed lagic.arg=7 panic=-1\n",
        )
        .unwrap();
        assert_eq!(c.ip, Ipv4Addr::new(172, 30, 0, 11));
        assert_eq!(c.prefix, 24);
        assert_eq!(c.gateway, Some(Ipv4Addr::new(172, 30, 0, 1)));
        assert_eq!(c.iface, "eth0");
        assert_eq!(c.port, 8080);
        assert_eq!(
            c.server_argv(Some((Path::new("/model.bin"), Path::new("/tokenizer.bin")))),
            [
                "lagic-enclave",
                "--listen",
                "172.30.0.11:8080",
                "--model",
                "/model.bin",
                "--tokenizer",
                "/tokenizer.bin",
                "--seed",
                "7"
            ]
        );
        assert_eq!(
            c.server_argv(None),
            [
                "lagic-enclave",
                "--listen",
                "172.30.0.11:8080",
                "--seed",
                "7"
            ]
        );
    }

    #[test]
    fn cmdline_errors_are_named() {
        for (line, needle) in [
            ("quiet", "lagic.ip=A.B.C.D/N is missing"),
            ("lagic.ip=172.30.0.11", "expected A.B.C.D/N"),
            ("lagic.ip=172.30.0.300/24", "bad address"),
            ("lagic.ip=172.30.0.11/33", "prefix"),
            ("lagic.ip=10.0.0.2/8 lagic.gw=x", "lagic.gw=x"),
            ("lagic.ip=10.0.0.2/8 lagic.port=0", "not a port"),
            ("lagic.ip=10.0.0.2/8 lagic.if=a/b", "not an interface"),
            (
                "lagic.ip=10.0.0.2/8 lagic.if=0123456789abcdef",
                "not an interface",
            ),
        ] {
            let e = BootConfig::from_cmdline(line).unwrap_err().to_string();
            assert!(e.contains(needle), "{line}: {e}");
        }
        let c =
            BootConfig::from_cmdline("lagic.ip=10.0.0.2/8 lagic.if=ens3 lagic.port=9000").unwrap();
        assert_eq!((c.iface.as_str(), c.port, c.gateway), ("ens3", 9000, None));
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(netmask(1), Ipv4Addr::new(128, 0, 0, 0));
    }

    #[test]
    fn only_pid_1_boots_and_halt_never_powers_off_a_host() {
        // The test process is never PID 1: boot refuses before touching anything.
        assert!(matches!(boot(), Err(InitError::NotPid1(_))));
        assert!(invoked_as_init("/init"));
        assert!(invoked_as_init("init"));
        assert!(!invoked_as_init("/usr/bin/lagic-enclave"));
        assert!(!invoked_as_init("initramfs"));
    }
}
