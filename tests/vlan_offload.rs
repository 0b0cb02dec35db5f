//! A VLAN tag the kernel keeps in skb metadata, on real traffic.
//!
//! BPF_PROG_TEST_RUN only ever hands a diode the frame bytes, so the
//! prologue's drop of frames whose tag sits in `skb->vlan_present` /
//! `vlan_tci` (emit-bpf/src/codegen/packet.rs) cannot be reached there. Here
//! it is, on a veth pair between two network namespaces (`lgvlan0` in
//! `lgvlan-a`, `lgvlan1` in `lgvlan-b`), with the seed diode `minimal` (text
//! in the first 16 payload bytes) on `lgvlan1`'s TC ingress.
//!
//! Frames are written whole into `lgvlan0` through a packet socket: IPv4/TCP
//! segments carrying text, addressed to `lgvlan1`, untagged or with an
//! 802.1Q priority tag (VLAN id 0). The receiving stack moves an in-band tag
//! into skb metadata before TC ingress runs, so the diode sees the bare
//! IPv4 frame and only the metadata says it was tagged. After TC, the stack
//! clears a priority tag and delivers the segment to IP like an untagged
//! one, where a raw TCP socket in `lgvlan-b` sees it. (Tags with a non-zero
//! VLAN id would be discarded after TC here either way: this kernel has no
//! VLAN devices, so their delivery says nothing about the diode.)
//!
//! Each claim has its control, all in the same namespaces:
//! - with no classifier, untagged and priority-tagged segments both arrive
//!   (the path works; a missing segment later is a classifier's drop);
//! - a probe classifier that drops exactly the frames with `vlan_present`
//!   set stops the tagged segments and no others (the tag really is in
//!   metadata at TC ingress, so this test exercises that check);
//! - the diode passes the untagged segments and drops the tagged ones.
//!
//! No timing decides a verdict: every batch ends with an untagged sentinel
//! segment that must arrive, and frames sent earlier from the same thread
//! arrive before it (one CPU's backlog, in order), after a short drain for
//! good measure.
//!
//! Kernel state: two namespaces with unique `lgvlan` names, deleted on drop
//! (also when a check fails). Run under the kernel lock:
//! `flock /tmp/lagic-kernel.lock cargo test -p lagic-tests --test vlan_offload`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use emit_bpf::elf::write_object;
use emit_bpf::insn::{skb, Insn, JmpCond, Size, R0, R1, TC_ACT_OK, TC_ACT_SHOT};
use emit_bpf::{Function, Module};
use lagic_frames::{Frame, VlanTag};
use lagic_testkit::net::{in_netns, mac_text, run};
use lagic_testkit::{require_bpf, require_tool};
use lagic_tests::compile_example;

const SENDER_NS: &str = "lgvlan-a";
const RECEIVER_NS: &str = "lgvlan-b";
const SENDER_DEV: &str = "lgvlan0";
const RECEIVER_DEV: &str = "lgvlan1";
const SENDER_MAC: [u8; 6] = [0x02, 0x6c, 0x67, 0x76, 0x00, 0x01];
const RECEIVER_MAC: [u8; 6] = [0x02, 0x6c, 0x67, 0x76, 0x00, 0x02];
const SENDER_IP: [u8; 4] = [10, 214, 0, 1];
const RECEIVER_IP: [u8; 4] = [10, 214, 0, 2];

/// Segments of each kind per batch.
const PER_BATCH: usize = 3;
/// How long the sentinel may take: generous, it arrives in microseconds.
const SENTINEL_WITHIN: Duration = Duration::from_secs(10);
/// Extra listening after the sentinel, in case a frame took another CPU.
const DRAIN: Duration = Duration::from_millis(300);

/// The two namespaces and the veth pair between them; both namespaces (and
/// with them the links) are deleted on drop.
struct Lab {
    object_file: std::path::PathBuf,
}

impl Lab {
    fn remove_namespaces() {
        for ns in [SENDER_NS, RECEIVER_NS] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }

    fn new() -> Lab {
        // Left over from a run that was killed before its drop ran.
        Lab::remove_namespaces();
        let lab = Lab {
            object_file: std::env::temp_dir().join(format!("lagic-vlan-{}.o", std::process::id())),
        };
        for ns in [SENDER_NS, RECEIVER_NS] {
            run("ip", &["netns", "add", ns]);
        }
        run(
            "ip",
            &[
                "-n",
                SENDER_NS,
                "link",
                "add",
                SENDER_DEV,
                "address",
                &mac_text(SENDER_MAC),
                "type",
                "veth",
                "peer",
                "name",
                RECEIVER_DEV,
                "address",
                &mac_text(RECEIVER_MAC),
                "netns",
                RECEIVER_NS,
            ],
        );
        let receiver_ip = format!("{}/24", RECEIVER_IP.map(|b| b.to_string()).join("."));
        run(
            "ip",
            &[
                "-n",
                RECEIVER_NS,
                "addr",
                "add",
                &receiver_ip,
                "dev",
                RECEIVER_DEV,
            ],
        );
        run("ip", &["-n", SENDER_NS, "link", "set", SENDER_DEV, "up"]);
        run(
            "ip",
            &["-n", RECEIVER_NS, "link", "set", RECEIVER_DEV, "up"],
        );
        run(
            "tc",
            &[
                "-n",
                RECEIVER_NS,
                "qdisc",
                "add",
                "dev",
                RECEIVER_DEV,
                "clsact",
            ],
        );
        lab
    }

    /// Puts `object` (section `classifier`) on the receiver's TC ingress,
    /// replacing whatever classifier was there.
    fn classify_with(&self, object: &[u8]) {
        std::fs::write(&self.object_file, object).expect("writing the object");
        let out = run(
            "tc",
            &[
                "-n",
                RECEIVER_NS,
                "filter",
                "replace",
                "dev",
                RECEIVER_DEV,
                "ingress",
                "pref",
                "1",
                "handle",
                "1",
                "bpf",
                "da",
                "obj",
                self.object_file.to_str().expect("a UTF-8 temp path"),
                "sec",
                "classifier",
            ],
        );
        assert!(!out.contains("libbpf:"), "tc/libbpf warned:\n{out}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        Lab::remove_namespaces();
        let _ = std::fs::remove_file(&self.object_file);
    }
}

fn checked_fd(fd: libc::c_int, what: &str) -> OwnedFd {
    assert!(fd >= 0, "{what}: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A packet socket bound to the sender's veth end: what is sent is put on
/// the wire as is.
fn frame_writer() -> OwnedFd {
    in_netns(SENDER_NS, || {
        // Protocol 0: this socket sends and never receives.
        // SAFETY: plain socket(2).
        let fd = checked_fd(
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) },
            "packet socket",
        );
        let name = std::ffi::CString::new(SENDER_DEV).unwrap();
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex > 0, "{SENDER_DEV} has no index");
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: addr is a sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        fd
    })
}

/// A raw TCP socket in the receiver's namespace: a copy of every TCP
/// segment IP delivers there, whatever the port.
fn segment_reader() -> OwnedFd {
    in_netns(RECEIVER_NS, || {
        // SAFETY: plain socket(2).
        let fd = checked_fd(
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) },
            "raw TCP socket",
        );
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 20_000,
        };
        // SAFETY: a timeval of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        assert_eq!(rc, 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
        fd
    })
}

/// An IPv4/TCP frame from the sender to the receiver carrying `text`,
/// priority-tagged (802.1Q, VLAN id 0) when `tagged`.
fn segment(text: &str, tagged: bool) -> Vec<u8> {
    let frame = Frame::ipv4()
        .src_mac(SENDER_MAC)
        .dst_mac(RECEIVER_MAC)
        .src(SENDER_IP)
        .dst(RECEIVER_IP)
        .ports(40_000, 7410)
        .payload(text.as_bytes());
    if tagged {
        frame.vlan(VlanTag::dot1q(0)).build()
    } else {
        frame.build()
    }
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sends [`PER_BATCH`] untagged and [`PER_BATCH`] priority-tagged segments,
/// then an untagged sentinel, and returns how many of each kind the
/// receiver's IP layer delivered: (untagged, tagged).
fn send_batch(writer: &OwnedFd, reader: &OwnedFd, batch: &str) -> (usize, usize) {
    let untagged = format!("lagic vlan {batch} untagged");
    let tagged = format!("lagic vlan {batch} tagged");
    let sentinel = format!("lagic vlan {batch} sentinel");
    let mut frames = Vec::new();
    for _ in 0..PER_BATCH {
        frames.push(segment(&untagged, false));
        frames.push(segment(&tagged, true));
    }
    frames.push(segment(&sentinel, false));
    for frame in &frames {
        // SAFETY: a buffer of the given length.
        let sent = unsafe { libc::send(writer.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            sent,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }
    let (mut got_untagged, mut got_tagged) = (0, 0);
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    let mut sentinel_at: Option<Instant> = None;
    loop {
        match sentinel_at {
            Some(at) if at.elapsed() >= DRAIN => break,
            None if start.elapsed() >= SENTINEL_WITHIN => {
                panic!("{batch}: the untagged sentinel never arrived; the lab carries no traffic")
            }
            _ => {}
        }
        // SAFETY: a buffer of the given length.
        let n = unsafe { libc::recv(reader.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            continue; // the 20 ms receive timeout
        }
        let packet = &buf[..n as usize];
        if contains(packet, untagged.as_bytes()) {
            got_untagged += 1;
        } else if contains(packet, tagged.as_bytes()) {
            got_tagged += 1;
        } else if contains(packet, sentinel.as_bytes()) && sentinel_at.is_none() {
            sentinel_at = Some(Instant::now());
        }
    }
    (got_untagged, got_tagged)
}

/// A classifier that drops exactly the frames whose VLAN tag is in skb
/// metadata, and passes every other frame.
fn metadata_tag_probe() -> Vec<u8> {
    write_object(&Module {
        entry: Function {
            name: "vlan_probe".to_owned(),
            insns: vec![
                Insn::load(Size::W, R1, R1, skb::VLAN_PRESENT),
                Insn::mov64_imm(R0, TC_ACT_OK),
                Insn::jmp_imm(JmpCond::Jne, R1, 0, 1),
                Insn::exit(),
                Insn::mov64_imm(R0, TC_ACT_SHOT),
                Insn::exit(),
            ],
        },
        callbacks: Vec::new(),
        license: "GPL".to_owned(),
        maps: Vec::new(),
        rodata: Vec::new(),
    })
    .expect("writing the probe")
}

#[test]
fn frames_whose_vlan_tag_is_in_skb_metadata_are_dropped_on_a_real_veth() {
    if !require_bpf() {
        return;
    }
    for tool in ["ip", "tc"] {
        if require_tool(tool, "scripts/install-test-deps").is_none() {
            return;
        }
    }
    let lab = Lab::new();
    let writer = frame_writer();
    let reader = segment_reader();

    // Control: the stack delivers both kinds when nothing classifies.
    assert_eq!(
        send_batch(&writer, &reader, "no-classifier"),
        (PER_BATCH, PER_BATCH),
        "without a classifier, untagged and priority-tagged segments must both arrive"
    );

    // The tag is in metadata at TC ingress: the vlan_present probe stops
    // the tagged segments, and only those.
    lab.classify_with(&metadata_tag_probe());
    assert_eq!(
        send_batch(&writer, &reader, "probe"),
        (PER_BATCH, 0),
        "the vlan_present probe must stop exactly the tagged segments; otherwise the tag is \
         not in skb metadata at TC ingress and this test does not exercise the diode's check"
    );

    // The diode: text passes untagged, never with a tag in metadata.
    lab.classify_with(&compile_example("minimal").object);
    assert_eq!(
        send_batch(&writer, &reader, "diode"),
        (PER_BATCH, 0),
        "the diode must pass the untagged text segments and drop every segment whose VLAN \
         tag is in skb metadata"
    );
    drop(lab);
}
