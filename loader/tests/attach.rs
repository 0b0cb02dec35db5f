//! Kernel tests of attaching, replacing and detaching, on a real veth pair with one end in a
//! network namespace. UDP datagrams sent from the namespace cross the host end's ingress,
//! where the diode sits; the host counts what arrives.
//!
//! The replacement test is the evidence for "no window without a diode": while a sender
//! floods datagrams, the drop-everything diode is replaced by another drop-everything diode
//! over and over; a single datagram arriving would show a gap.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use emit_bpf::elf::write_object;
use emit_bpf::insn::{Insn, R0, TC_ACT_OK, TC_ACT_SHOT};
use emit_bpf::{Function, Module};
use lagic_loader::attach::{self, AttachError, AttachOptions, Direction, Health, Mode, ModeChoice};
use lagic_testkit::require_bpf;

/// How many times the replacement test swaps diodes under the flood (each swap loads and
/// verifies a program, ~0.1-0.2 s here).
const REPLACEMENTS: usize = 30;

/// A classifier named `name` that returns `verdict` for every packet.
fn constant(name: &str, verdict: i32) -> Vec<u8> {
    write_object(&Module {
        entry: Function {
            name: name.to_owned(),
            insns: vec![Insn::mov64_imm(R0, verdict), Insn::exit()],
        },
        callbacks: Vec::new(),
        license: "GPL".to_owned(),
        maps: Vec::new(),
        rodata: Vec::new(),
    })
    .expect("writing the object")
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A veth pair `lat<N>h` (host, 10.213.N.1) and `lat<N>e` (namespace `lagic-at<N>`,
/// 10.213.N.2); removed with its pins on drop.
struct Veth {
    n: u8,
    host: String,
    netns: String,
}

impl Veth {
    fn new(n: u8) -> Veth {
        let veth = Veth {
            n,
            host: format!("lat{n}h"),
            netns: format!("lagic-at{n}"),
        };
        veth.remove();
        let peer = format!("lat{n}e");
        ip(&["netns", "add", &veth.netns]);
        ip(&[
            "link",
            "add",
            &veth.host,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &veth.netns,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("10.213.{n}.1/24"),
            "dev",
            &veth.host,
        ]);
        ip(&["link", "set", &veth.host, "up"]);
        ip(&[
            "-n",
            &veth.netns,
            "addr",
            "add",
            &format!("10.213.{n}.2/24"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &veth.netns, "link", "set", &peer, "up"]);
        // A permanent neighbour entry: while a drop-all diode eats the namespace's ARP
        // requests, address resolution must not be what decides whether datagrams flow later.
        let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", veth.host))
            .expect("the host end's MAC");
        ip(&[
            "-n",
            &veth.netns,
            "neigh",
            "replace",
            &format!("10.213.{n}.1"),
            "lladdr",
            mac.trim(),
            "dev",
            &peer,
            "nud",
            "permanent",
        ]);
        veth
    }

    fn remove(&self) {
        for d in Direction::ALL {
            let _ = attach::detach(&self.host, d);
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }

    fn host_addr(&self, port: u16) -> SocketAddr {
        format!("10.213.{}.1:{port}", self.n).parse().unwrap()
    }

    /// Sends datagrams from inside the namespace to `to` until `stop`; counts them in `sent`.
    fn flood(
        &self,
        to: SocketAddr,
        stop: Arc<AtomicBool>,
        sent: Arc<AtomicU64>,
    ) -> std::thread::JoinHandle<()> {
        let netns = Path::new("/run/netns").join(&self.netns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&netns).expect("opening the namespace");
            // SAFETY: setns on this thread only, with an fd we own.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let socket = UdpSocket::bind("0.0.0.0:0").expect("binding the sender");
            while !stop.load(Ordering::Relaxed) {
                if socket.send_to(b"probe", to).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Counts datagrams arriving at `socket` for `time`.
fn receive_for(socket: &UdpSocket, time: Duration) -> u64 {
    let deadline = Instant::now() + time;
    let mut count = 0;
    let mut buf = [0u8; 64];
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    while Instant::now() < deadline {
        if socket.recv_from(&mut buf).is_ok() {
            count += 1;
        }
    }
    count
}

/// Replaces drop-all diodes back and forth under a flood, then checks that a pass-all diode
/// lets the same flood through, and that detach leaves nothing.
fn replacement_leaves_no_gap(n: u8, mode: Mode) {
    let veth = Veth::new(n);
    let drop_a = constant("drop_a", TC_ACT_SHOT);
    let drop_b = constant("drop_b", TC_ACT_SHOT);
    let pass = constant("pass_all", TC_ACT_OK);
    let options = AttachOptions {
        mode: ModeChoice::Only(mode),
        source: Some("test".into()),
        ..Default::default()
    };

    let first = attach::attach(&drop_a, &veth.host, Direction::Ingress, &options).unwrap();
    assert_eq!(first.attachment.mode, mode);
    assert_eq!(first.replaced_program_id, None);

    let port = 40_000 + u16::from(n);
    let receiver = UdpSocket::bind(veth.host_addr(port)).expect("binding the receiver");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = veth.flood(veth.host_addr(port), stop.clone(), sent.clone());

    // Replace over and over while the flood runs; collect arrivals concurrently.
    let replacer = {
        let host = veth.host.clone();
        let options = options.clone();
        let (drop_a, drop_b) = (drop_a.clone(), drop_b.clone());
        std::thread::spawn(move || {
            let mut last_link = None;
            for i in 0..REPLACEMENTS {
                let object = if i % 2 == 0 { &drop_b } else { &drop_a };
                let report =
                    attach::attach(object, &host, Direction::Ingress, &options).expect("replacing");
                assert!(report.replaced_program_id.is_some());
                // TCX: the same link throughout (BPF_LINK_UPDATE, never a new link).
                if mode == Mode::Tcx {
                    let link = report.attachment.link_id;
                    assert!(last_link.is_none() || last_link == link);
                    last_link = link;
                }
            }
        })
    };
    let mut arrived = 0;
    let started = Instant::now();
    while !replacer.is_finished() {
        arrived += receive_for(&receiver, Duration::from_millis(50));
    }
    replacer.join().unwrap();
    eprintln!(
        "{mode}: {REPLACEMENTS} replacements in {} ms",
        started.elapsed().as_millis()
    );
    arrived += receive_for(&receiver, Duration::from_millis(100));
    let sent_during = sent.load(Ordering::Relaxed);
    assert!(
        sent_during > 100,
        "the flood sent only {sent_during} datagrams"
    );
    assert_eq!(
        arrived, 0,
        "{arrived} of {sent_during} datagrams crossed while drop-all diodes were replaced ({mode})"
    );
    let now = attach::attachment(&veth.host, Direction::Ingress)
        .unwrap()
        .expect("attached");
    assert_eq!(now.diode, "drop_a");
    assert_eq!(now.health, Health::Active);

    // The flood itself works: with a pass-all diode it arrives.
    attach::attach(&pass, &veth.host, Direction::Ingress, &options).unwrap();
    let arrived = receive_for(&receiver, Duration::from_millis(300));
    assert!(
        arrived > 10,
        "only {arrived} datagrams arrived through pass_all"
    );

    // Back to drop, then detach: traffic flows without a diode, and no pin is left.
    attach::attach(&drop_a, &veth.host, Direction::Ingress, &options).unwrap();
    receive_for(&receiver, Duration::from_millis(50));
    assert_eq!(receive_for(&receiver, Duration::from_millis(200)), 0);
    let gone = attach::detach(&veth.host, Direction::Ingress).unwrap();
    assert_eq!(gone.diode, "drop_a");
    assert!(receive_for(&receiver, Duration::from_millis(300)) > 10);
    assert!(
        gone.pin_dir.starts_with(attach::PIN_ROOT),
        "{:?}",
        gone.pin_dir
    );
    assert!(!gone.pin_dir.exists());
    assert!(!gone.pin_dir.parent().unwrap().exists());
    assert!(attach::attachment(&veth.host, Direction::Ingress)
        .unwrap()
        .is_none());

    // Attaching again after a detach works (clsact: the qdisc is still there) and drops again.
    let again = attach::attach(&drop_b, &veth.host, Direction::Ingress, &options).unwrap();
    assert_eq!(again.replaced_program_id, None);
    assert_eq!(again.attachment.mode, mode);
    receive_for(&receiver, Duration::from_millis(50));
    assert_eq!(receive_for(&receiver, Duration::from_millis(200)), 0);
    attach::detach(&veth.host, Direction::Ingress).unwrap();

    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
}

#[test]
fn tcx_replacement_under_load_never_lets_a_packet_through() {
    if !require_bpf() {
        return;
    }
    replacement_leaves_no_gap(1, Mode::Tcx);
}

#[test]
fn clsact_replacement_under_load_never_lets_a_packet_through() {
    if !require_bpf() {
        return;
    }
    replacement_leaves_no_gap(2, Mode::Clsact);
}

#[test]
fn status_reports_both_directions_and_a_vanished_interface() {
    if !require_bpf() {
        return;
    }
    let veth = Veth::new(3);
    let ingress = attach::attach(
        &constant("gate_in", TC_ACT_OK),
        &veth.host,
        Direction::Ingress,
        &AttachOptions::default(),
    )
    .unwrap();
    assert_eq!(ingress.attachment.mode, Mode::Tcx, "this kernel has TCX");
    attach::attach(
        &constant("gate_out", TC_ACT_OK),
        &veth.host,
        Direction::Egress,
        &AttachOptions {
            mode: ModeChoice::Only(Mode::Clsact),
            ..Default::default()
        },
    )
    .unwrap();
    // A clsact filter deleted by hand: status calls it stale, and attaching again works.
    let out = Command::new("tc")
        .args(["filter", "del", "dev", &veth.host, "egress"])
        .output()
        .expect("running tc");
    assert!(out.status.success(), "{out:?}");
    // The kernel frees the filter's program after an RCU grace period.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stale = loop {
        let a = attach::attachment(&veth.host, Direction::Egress)
            .unwrap()
            .unwrap();
        if a.health != Health::Active || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(stale.health, Health::Stale);
    let again = attach::attach(
        &constant("gate_out", TC_ACT_OK),
        &veth.host,
        Direction::Egress,
        &AttachOptions {
            mode: ModeChoice::Only(Mode::Clsact),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(again.replaced_program_id, None);

    let mine: Vec<_> = attach::attachments()
        .unwrap()
        .into_iter()
        .filter(|a| a.iface == veth.host)
        .collect();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0].direction, Direction::Ingress);
    assert_eq!(mine[0].diode, "gate_in");
    assert_eq!(mine[0].program_id, ingress.attachment.program_id);
    assert_eq!(mine[0].source.as_deref(), None);
    assert_eq!(mine[1].direction, Direction::Egress);
    assert_eq!(mine[1].diode, "gate_out");
    assert_eq!(mine[1].mode, Mode::Clsact);
    assert!(mine.iter().all(|a| a.health == Health::Active));
    let since = mine[0].since.elapsed().unwrap();
    assert!(since < Duration::from_secs(60), "{since:?}");

    // The interface goes away: the kernel drops the attachments; status says so and detach
    // removes the pins.
    ip(&["link", "del", &veth.host]);
    for d in Direction::ALL {
        let a = attach::attachment(&veth.host, d)
            .unwrap()
            .expect("pins remain");
        assert_eq!(a.health, Health::InterfaceGone, "{d}");
        let gone = attach::detach(&veth.host, d).unwrap();
        assert_eq!(gone.health, Health::InterfaceGone);
        assert!(!gone.pin_dir.exists());
    }
    assert!(attach::attachments()
        .unwrap()
        .iter()
        .all(|a| a.iface != veth.host));
}

#[test]
fn errors_say_what_is_wrong() {
    if !require_bpf() {
        return;
    }
    let object = constant("gate", TC_ACT_OK);
    match attach::attach(
        &object,
        "nosuchif0",
        Direction::Ingress,
        &AttachOptions::default(),
    ) {
        Err(e @ AttachError::NoSuchInterface(_)) => {
            assert!(e.to_string().contains("ip link"), "{e}")
        }
        other => panic!("expected NoSuchInterface, got {other:?}"),
    }
    match attach::detach("nosuchif0", Direction::Egress) {
        Err(e @ AttachError::NothingAttached { .. }) => {
            assert!(e.to_string().contains("lagic status"), "{e}")
        }
        other => panic!("expected NothingAttached, got {other:?}"),
    }
    assert!(matches!(
        attach::attach(
            &object,
            "a/b",
            Direction::Ingress,
            &AttachOptions::default()
        ),
        Err(AttachError::BadInterfaceName(_))
    ));

    // A program the verifier refuses (r0 read before it is set): the log's tail comes back,
    // and nothing is attached or pinned.
    let veth = Veth::new(4);
    let bad = write_object(&Module {
        entry: Function {
            name: "bad_gate".to_owned(),
            insns: vec![Insn::exit()],
        },
        callbacks: Vec::new(),
        license: "GPL".to_owned(),
        maps: Vec::new(),
        rodata: Vec::new(),
    })
    .unwrap();
    match attach::attach(
        &bad,
        &veth.host,
        Direction::Ingress,
        &AttachOptions::default(),
    ) {
        Err(e @ AttachError::Rejected { .. }) => {
            let text = e.to_string();
            assert!(text.contains("R0 !read_ok"), "{text}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(attach::attachment(&veth.host, Direction::Ingress)
        .unwrap()
        .is_none());

    // A rejected replacement leaves the diode in place.
    let good = attach::attach(
        &object,
        &veth.host,
        Direction::Ingress,
        &AttachOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        attach::attach(
            &bad,
            &veth.host,
            Direction::Ingress,
            &AttachOptions::default()
        ),
        Err(AttachError::Rejected { .. })
    ));
    let still = attach::attachment(&veth.host, Direction::Ingress)
        .unwrap()
        .unwrap();
    assert_eq!(still.program_id, good.attachment.program_id);
}

/// A TCX diode pinned by an older lagic under `/sys/fs/bpf/lagi/<iface>/<direction>` shows in
/// status as legacy; attaching to that interface takes its link over and replaces the program
/// in place (no second diode stacked beside it), and the old pins go.
#[test]
fn legacy_pins_are_listed_and_adopted() {
    use aya::programs::links::FdLink;
    use aya::programs::tc::TcAttachOptions;
    use aya::programs::{LinkOrder, TcAttachType};

    if !require_bpf() {
        return;
    }
    let veth = Veth::new(5);
    let legacy_dir = Path::new(attach::LEGACY_PIN_ROOT)
        .join(&veth.host)
        .join("ingress");
    std::fs::create_dir_all(&legacy_dir).unwrap();
    let mut old =
        lagic_loader::LoadedProgram::from_object(&constant("old_gate", TC_ACT_SHOT)).unwrap();
    let old_id = old.stats().unwrap().id;
    {
        let classifier = old.classifier_mut().unwrap();
        let id = classifier
            .attach_with_options(
                &veth.host,
                TcAttachType::Ingress,
                TcAttachOptions::TcxOrder(LinkOrder::first()),
            )
            .unwrap();
        let link = FdLink::try_from(classifier.take_link(id).unwrap()).unwrap();
        link.pin(legacy_dir.join("link")).unwrap();
    }
    drop(old);

    let listed: Vec<_> = attach::attachments()
        .unwrap()
        .into_iter()
        .filter(|a| a.iface == veth.host)
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].legacy);
    assert_eq!(listed[0].health, Health::Active);
    assert_eq!(listed[0].program_id, old_id);

    let report = attach::attach(
        &constant("new_gate", TC_ACT_OK),
        &veth.host,
        Direction::Ingress,
        &AttachOptions::default(),
    )
    .unwrap();
    assert_eq!(report.replaced_program_id, Some(old_id));
    assert!(!legacy_dir.exists());
    let now: Vec<_> = attach::attachments()
        .unwrap()
        .into_iter()
        .filter(|a| a.iface == veth.host)
        .collect();
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(!now[0].legacy);
    assert_eq!(now[0].diode, "new_gate");
    assert_eq!(now[0].health, Health::Active);
    attach::detach(&veth.host, Direction::Ingress).unwrap();
}
