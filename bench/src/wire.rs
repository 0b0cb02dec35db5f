//! Per packet on the wire: how many TCP segments one sender pushes through
//! the lab's veth into the host per second with each filter, and so what
//! each filter costs per packet (issue 13's block-list target: at least
//! 100x faster per packet than 1,000 `iptables -m string` rules at 1,400
//! bytes).
//!
//! Set-up: the lab of [`crate::e2e`]. A sender ([`blast`], this binary's
//! `blast` mode, started inside the lab's namespace) writes one prepared
//! Ethernet frame again and again on a packet socket of the enclave-side
//! veth: IPv4, TCP ACK+PSH from the enclave address to the host address,
//! port [`DISCARD_PORT`], a payload of clean text no word of the list
//! occurs in. Each frame crosses the veth to the host-side ingress (the
//! diode's hook), IP, and netfilter's INPUT, where a chain of the
//! benchmark's own ([`CHAIN`]) holds the string rules under test, if any,
//! and always ends in one counting DROP: every configuration does the same
//! work past the filter, and the host's TCP never answers.
//!
//! Why the sender's clock measures the filters: a veth hands a frame to the
//! receive backlog of the sending CPU, and the kernel processes that backlog
//! when the send call re-enables softirqs, before it returns. The receive
//! path (tc, IP, netfilter) therefore runs inside the sender's `send`, and
//! packets per second of the send loop are packets per second of the whole
//! path. Should the kernel defer that work (to ksoftirqd) and the backlog
//! overflow, frames are lost, not counted: the final DROP rule's packet
//! counter is compared with what the sender sent, and the difference is
//! reported as lost.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::BenchError;

/// The benchmark's INPUT chain for this part.
pub const CHAIN: &str = "LAGICB-WIRE";
/// The destination port of the sender's segments (RFC 863's discard).
pub const DISCARD_PORT: u16 = 9;
const SOURCE_PORT: u16 = 40_009;

/// One filter of the per-packet comparison.
#[derive(Debug, Clone)]
pub enum WireFilter {
    /// Nothing but the chain's final DROP.
    None,
    /// A lagic object on the host-side ingress.
    Diode {
        /// The row's name.
        name: String,
        /// The object.
        object: std::path::PathBuf,
    },
    /// One `-m string --icase` DROP rule per word before the final DROP.
    Iptables {
        /// The row's name.
        name: String,
        /// `bm` or `kmp`.
        algo: &'static str,
        /// The words.
        words: Vec<Vec<u8>>,
    },
}

impl WireFilter {
    /// The row's name.
    pub fn name(&self) -> &str {
        match self {
            WireFilter::None => "none",
            WireFilter::Diode { name, .. } | WireFilter::Iptables { name, .. } => name,
        }
    }
}

/// One filter's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireRow {
    /// The filter (`none`, `lagic 1,000 words`, `iptables bm 1,000 rules`, ...).
    pub filter: String,
    /// Median packets per second of the send loop.
    pub pps: f64,
    /// Median ns per packet (the whole path: send, veth, filter, IP, DROP),
    /// by the wall clock.
    pub ns_per_packet: f64,
    /// Median ns per packet by the sender thread's CPU clock: without the
    /// time other work on the machine took its CPU, and with the receive
    /// path where the kernel charges softirq work done in a task to the
    /// task (kernels without IRQ time accounting). Absent in older results.
    #[serde(default)]
    pub cpu_ns_per_packet: f64,
    /// Median over rounds of this filter's ns per packet minus no
    /// filter's in the same round: what the filter adds.
    pub added_ns: f64,
    /// Per-round ratio of this row's ns per packet to the first diode's
    /// (the lagic row the comparison is about), median (min-max).
    pub of_diode: crate::measure::Ratio,
    /// Per-round ratio of this row's added ns to the first diode's.
    pub added_of_diode: crate::measure::Ratio,
    /// Frames sent but not counted by the final DROP (lost on the way).
    pub lost: u64,
    /// Frames sent over all rounds.
    pub sent: u64,
}

/// The per-packet part's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireResult {
    /// TCP payload bytes per frame.
    pub payload: usize,
    /// Words in the block list.
    pub words: usize,
    /// Rounds (filters alternated, every other round reversed).
    pub rounds: usize,
    /// One row per filter, in the order measured in the first round.
    pub rows: Vec<WireRow>,
}

impl WireResult {
    /// Its section of BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "### Per packet through the veth ({} TCP payload bytes, {}-word list, one sender, {} alternated rounds)\n\n",
            self.payload, self.words, self.rounds
        );
        s.push_str(
            "A sender in the lab's namespace writes the same segment of clean text on a packet \
             socket; the receive path (veth, tc ingress, IP, netfilter INPUT ending in one counting \
             DROP for every filter) runs inside its send call. \"added\": the filter's ns per packet \
             minus no filter's in the same round (median). \"x lagic\": per-round ratios to the \
             first lagic row, median (min-max), by the wall clock. \"CPU ns/packet\": by the \
             sender thread's CPU clock (without time other work took; it includes the receive \
             path only where the kernel charges softirq work to the task).\n\n",
        );
        s.push_str("| filter | packets/s | ns/packet | CPU ns/packet | added ns | x lagic (ns/packet) | x lagic (added) | lost/sent |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.rows {
            let ratio = |x: &crate::measure::Ratio| {
                if x.max > 0.0 {
                    x.show(1)
                } else {
                    "-".to_string()
                }
            };
            s.push_str(&format!(
                "| {} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {}/{} |\n",
                r.filter,
                r.pps,
                r.ns_per_packet,
                r.cpu_ns_per_packet,
                if r.filter == "none" {
                    "-".to_string()
                } else {
                    format!("{:.0}", r.added_ns)
                },
                ratio(&r.of_diode),
                ratio(&r.added_of_diode),
                r.lost,
                r.sent
            ));
        }
        s
    }
}

/// Removes the chain and INPUT's jump to it, if there.
pub fn remove_chain(iface: &str) {
    let quiet = |args: &[&str]| {
        let _ = Command::new("iptables")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    let port = DISCARD_PORT.to_string();
    quiet(&[
        "-D", "INPUT", "-i", iface, "-p", "tcp", "--dport", &port, "-j", CHAIN,
    ]);
    quiet(&["-F", CHAIN]);
    quiet(&["-X", CHAIN]);
}

/// Installs the chain: one string rule per word of `strings` (if any),
/// then the counting DROP, jumped to from INPUT for the sender's segments,
/// in one `iptables-restore --noflush`.
pub fn install_chain(iface: &str, strings: Option<(&str, &[Vec<u8>])>) -> Result<(), BenchError> {
    let mut rules = format!("*filter\n:{CHAIN} - [0:0]\n");
    if let Some((algo, words)) = strings {
        for w in words {
            rules.push_str(&format!(
                "-A {CHAIN} -m string --algo {algo} --icase --string {} -j DROP\n",
                String::from_utf8_lossy(w)
            ));
        }
    }
    rules.push_str(&format!(
        "-A {CHAIN} -j DROP\n-I INPUT -i {iface} -p tcp --dport {DISCARD_PORT} -j {CHAIN}\nCOMMIT\n"
    ));
    crate::tools::iptables_restore(&rules, &format!("iptables-restore of the {CHAIN} chain"))
}

/// Packets the chain's last rule (the counting DROP) has seen.
pub fn counted() -> Result<u64, BenchError> {
    let out = Command::new("iptables")
        .args(["-n", "-v", "-x", "-L", CHAIN])
        .output()
        .map_err(|e| BenchError::io("running iptables -L", e))?;
    if !out.status.success() {
        return Err(BenchError::Tool {
            what: format!("iptables -nvxL {CHAIN}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // The rule lines follow two header lines; the last is the final DROP,
    // its first column the packet count.
    text.lines()
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            BenchError::Setup(format!("no final rule in iptables -nvxL {CHAIN}:\n{text}"))
        })
}

/// What one `blast` run reports: frames sent, and the loop's wall and
/// CPU time.
#[derive(Debug, Clone, Copy)]
pub struct Blast {
    /// Frames the kernel accepted.
    pub sent: u64,
    /// Wall time of the send loop.
    pub elapsed: Duration,
    /// The sender thread's CPU time over the loop.
    pub cpu: Duration,
}

/// Runs the sender inside `netns`: frames of `payload` on `iface` to
/// `dst_mac`, from `src` to `dst`, for about `seconds`.
pub fn run_blast(
    netns: &str,
    iface: &str,
    dst_mac: &str,
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    payload: &Path,
    seconds: f64,
) -> Result<Blast, BenchError> {
    let exe =
        std::env::current_exe().map_err(|e| BenchError::io("locating the bench binary", e))?;
    let out = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(exe)
        .args(["blast", iface, dst_mac, &src.to_string(), &dst.to_string()])
        .arg(payload)
        .arg(format!("{seconds}"))
        .output()
        .map_err(|e| BenchError::io("running the sender", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(BenchError::Tool {
            what: "lagic-bench blast".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let mut it = text.split_whitespace();
    let sent = it.next().and_then(|n| n.parse().ok());
    let ns: Option<u64> = it.next().and_then(|n| n.parse().ok());
    let cpu: Option<u64> = it.next().and_then(|n| n.parse().ok());
    match (sent, ns, cpu) {
        (Some(sent), Some(ns), Some(cpu)) => Ok(Blast {
            sent,
            elapsed: Duration::from_nanos(ns),
            cpu: Duration::from_nanos(cpu),
        }),
        _ => Err(BenchError::Setup(format!(
            "the sender printed no \"SENT WALL_NS CPU_NS\" line: {text}"
        ))),
    }
}

/// `lagic-bench blast IFACE DST_MAC SRC_IP DST_IP PAYLOAD_FILE SECONDS`:
/// the sender (run inside the lab's namespace). Prints "SENT WALL_NS
/// CPU_NS": frames sent, the loop's wall time and the thread's CPU time.
pub fn blast(args: &[String]) -> Result<(), BenchError> {
    let usage = || {
        BenchError::Setup(
            "usage: lagic-bench blast IFACE DST_MAC SRC_IP DST_IP PAYLOAD_FILE SECONDS".into(),
        )
    };
    if args.len() != 6 {
        return Err(usage());
    }
    let iface = &args[0];
    let dst_mac = parse_mac(&args[1]).ok_or_else(usage)?;
    let src: std::net::Ipv4Addr = args[2].parse().map_err(|_| usage())?;
    let dst: std::net::Ipv4Addr = args[3].parse().map_err(|_| usage())?;
    let payload =
        std::fs::read(&args[4]).map_err(|e| BenchError::io(&format!("reading {}", args[4]), e))?;
    let seconds: f64 = args[5].parse().map_err(|_| usage())?;
    let src_mac = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .ok()
        .and_then(|m| parse_mac(m.trim()))
        .ok_or_else(|| BenchError::Setup(format!("no MAC address for {iface}")))?;
    let frame = segment(src_mac, dst_mac, src, dst, &payload);
    let ifindex = {
        let name = std::ffi::CString::new(iface.as_str()).map_err(|_| usage())?;
        // SAFETY: a NUL-terminated name; the call only reads it.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    };
    if ifindex == 0 {
        return Err(BenchError::Setup(format!("no interface {iface}")));
    }
    // Protocol 0: the socket sends only, it never receives.
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(BenchError::io(
            "opening a packet socket",
            std::io::Error::last_os_error(),
        ));
    }
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a valid sockaddr_ll of the size given.
    let bound = unsafe {
        libc::bind(
            fd,
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if bound != 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        return Err(BenchError::io(
            &format!("binding a packet socket to {iface}"),
            e,
        ));
    }
    let deadline = Duration::from_secs_f64(seconds.max(0.05));
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut failed = 0u64;
    // The clock is read once per 32 frames: the loop should cost little
    // beside the kernel's path.
    'outer: loop {
        for _ in 0..32 {
            // SAFETY: `frame` outlives the call; the length is its own.
            let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) };
            if n == frame.len() as isize {
                sent += 1;
            } else {
                failed += 1;
                if failed > 1_000_000 {
                    break 'outer;
                }
            }
        }
        if start.elapsed() >= deadline {
            break;
        }
    }
    let elapsed = start.elapsed();
    let cpu = thread_cpu_ns().saturating_sub(cpu_start);
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    if sent == 0 {
        return Err(BenchError::Setup(format!(
            "the kernel accepted no frame on {iface} ({failed} refused)"
        )));
    }
    println!("{sent} {} {cpu}", elapsed.as_nanos());
    Ok(())
}

/// The calling thread's CPU time in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

/// The Internet checksum (RFC 1071) of `data`, starting from `sum`.
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// One Ethernet/IPv4/TCP ACK+PSH segment carrying `payload`, with valid
/// IP and TCP checksums.
pub fn segment(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    payload: &[u8],
) -> Vec<u8> {
    let tcp_len = 20 + payload.len();
    let ip_len = 20 + tcp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]); // id 1, DF, TTL 64, TCP
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let ip_sum = checksum(&f[ip_start..ip_start + 20], 0);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&ip_sum.to_be_bytes());
    let tcp_start = f.len();
    f.extend_from_slice(&SOURCE_PORT.to_be_bytes());
    f.extend_from_slice(&DISCARD_PORT.to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes()); // sequence number
    f.extend_from_slice(&1u32.to_be_bytes()); // acknowledgment number
    f.extend_from_slice(&[0x50, 0x18]); // data offset 5, ACK+PSH
    f.extend_from_slice(&[0xFF, 0xFF, 0, 0, 0, 0]); // window, checksum, urgent
    f.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    let partial: u32 = pseudo
        .chunks(2)
        .map(|p| u32::from(u16::from_be_bytes([p[0], p[1]])))
        .sum();
    let tcp_sum = checksum(&f[tcp_start..], partial);
    f[tcp_start + 16..tcp_start + 18].copy_from_slice(&tcp_sum.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_checksums_verify() {
        let (src, dst) = (
            "172.30.99.11".parse().unwrap(),
            "172.30.99.1".parse().unwrap(),
        );
        let f = segment(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            src,
            dst,
            b"clean text!",
        );
        assert_eq!(f.len(), 14 + 20 + 20 + 11);
        // A header with its checksum in place sums to zero.
        assert_eq!(checksum(&f[14..34], 0), 0);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&[172, 30, 99, 11, 172, 30, 99, 1, 0, 6, 0, 31]);
        let partial: u32 = pseudo
            .chunks(2)
            .map(|p| u32::from(u16::from_be_bytes([p[0], p[1]])))
            .sum();
        assert_eq!(checksum(&f[34..], partial), 0);
        // The frame parses as the TCP payload it carries.
        assert_eq!(&f[54..], b"clean text!");
    }

    #[test]
    fn macs_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_mac("02:aB:00:00:10:ff"),
            Some([2, 0xab, 0, 0, 0x10, 0xff])
        );
        assert_eq!(parse_mac("02:ab:00:00:10"), None);
        assert_eq!(parse_mac("02:ab:00:00:10:zz"), None);
    }
}
