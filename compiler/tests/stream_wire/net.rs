//! The namespaces, links and addresses of one wire test, and the diode on the router.
//!
//! ```text
//!   sender ns (enclave side)        router ns                      client ns
//!   snd0 10.77.1.2 ==veth== rtr0 10.77.1.1 | rtr1 10.77.2.1 ==veth== cli0 10.77.2.2
//!                            ^ diode on ingress (tc, da)
//! ```
//!
//! The router forwards, so a segment whose TTL is 1 is seen by the diode on `rtr0` and then
//! dropped by the router instead of reaching the client: the one-hop-after-the-diode case.
//!
//! Raw topologies carry IPv4 or IPv6 ([`Family`]); the addresses are the same plan in
//! `fd6c:7377:1::/64` and `fd6c:7377:2::/64`, with IPv6 on only where the family needs it.
//!
//! Two kinds of sender side:
//! - [`Topology::raw`]: `snd0` has no IP address, and forwarding is off in the sender
//!   namespace, so that kernel neither answers nor resets the client's segments: the
//!   adversarial sender ([`super::raw_sender`]) owns the connection through a packet socket.
//!   The router reaches the sender's address through a permanent neighbour entry (nobody
//!   answers ARP there).
//! - [`Topology::impaired`]: the sender has its address and a real TCP stack (transmit
//!   checksum offload off on `snd0`, as a stream diode needs), and an `impair` namespace
//!   sits between `snd0` and `rtr0` where [`super::impair`] relays the frames, losing,
//!   duplicating and reordering the sender's (this kernel has no netem).
//!
//! Invariants: every name starts with `lsw-TAG-`, one tag per test, so parallel tests never
//! share a namespace; interfaces live only in those namespaces (never `lo`/`eth0` of the
//! host); [`Topology`]'s drop deletes every namespace it made, also when the test panics,
//! and creation first deletes leftovers of a run that was killed before its drop ran.

use std::path::Path;
use std::process::Command;

/// The enclave's address: the adversarial sender's, or the honest server's.
pub const SENDER_IP: [u8; 4] = [10, 77, 1, 2];
/// The router's address on the enclave side.
pub const ROUTER_IN_IP: [u8; 4] = [10, 77, 1, 1];
/// The router's address on the client side.
pub const ROUTER_OUT_IP: [u8; 4] = [10, 77, 2, 1];
/// The receiving application's address.
pub const CLIENT_IP: [u8; 4] = [10, 77, 2, 2];
/// The enclave's IPv6 address.
pub const SENDER_IP6: [u8; 16] = v6(1, 2);
/// The router's IPv6 address on the enclave side.
pub const ROUTER_IN_IP6: [u8; 16] = v6(1, 1);
/// The router's IPv6 address on the client side.
pub const ROUTER_OUT_IP6: [u8; 16] = v6(2, 1);
/// The receiving application's IPv6 address.
pub const CLIENT_IP6: [u8; 16] = v6(2, 2);

/// `fd6c:7377:NET::HOST`.
const fn v6(net: u8, host: u8) -> [u8; 16] {
    [
        0xfd, 0x6c, 0x73, 0x77, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, host,
    ]
}

/// The IP version of a raw topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// The sender's MAC on `snd0`.
pub const SENDER_MAC: [u8; 6] = [0x02, 0x6c, 0x73, 0x77, 0x00, 0x01];
/// The router's MAC on `rtr0`, where the diode sits.
pub const ROUTER_IN_MAC: [u8; 6] = [0x02, 0x6c, 0x73, 0x77, 0x00, 0x02];
/// The sender's interface.
pub const SENDER_DEV: &str = "snd0";
/// The router's interface towards the sender: the diode is on its ingress.
pub const DIODE_DEV: &str = "rtr0";
/// The impair namespace's interface towards the sender.
pub const IMPAIR_SENDER_DEV: &str = "imp0";
/// The impair namespace's interface towards the router.
pub const IMPAIR_ROUTER_DEV: &str = "imp1";

/// Dotted quad.
pub fn ip_text(ip: [u8; 4]) -> String {
    ip.map(|b| b.to_string()).join(".")
}

/// IPv6 text.
pub fn ip6_text(ip: [u8; 16]) -> String {
    std::net::Ipv6Addr::from(ip).to_string()
}

pub use lagic_testkit::net::{in_netns, mac_text, run, spawn_in_netns};

/// Writes a sysctl of namespace `ns` (files under /proc/sys/net are those of the opening
/// thread's namespace).
fn sysctl(ns: &str, key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_owned();
    in_netns(ns, move || {
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    });
}

/// Which sender side a topology has (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SenderSide {
    Raw,
    Impaired,
}

/// The namespaces of one test; dropping it deletes them all, and with them every link.
pub struct Topology {
    /// The sender's (enclave's) namespace.
    pub sender_ns: String,
    /// The router's namespace, where the diode sits on `rtr0` ingress.
    pub router_ns: String,
    /// The receiving application's namespace.
    pub client_ns: String,
    /// The impairing relay's namespace ([`Topology::impaired`] only).
    pub impair_ns: Option<String>,
}

impl Topology {
    /// The sender side for the adversarial raw sender: `snd0` without an address.
    pub fn raw(tag: &str, family: Family) -> Topology {
        Topology::build(tag, SenderSide::Raw, family)
    }

    /// The sender side with a real TCP stack behind an impairing relay (IPv4).
    pub fn impaired(tag: &str) -> Topology {
        Topology::build(tag, SenderSide::Impaired, Family::V4)
    }

    fn names(&self) -> Vec<String> {
        let mut names = vec![
            self.sender_ns.clone(),
            self.router_ns.clone(),
            self.client_ns.clone(),
        ];
        names.extend(self.impair_ns.clone());
        names
    }

    fn remove(&self) {
        for ns in self.names() {
            if Path::new("/run/netns").join(&ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            }
        }
    }

    fn build(tag: &str, side: SenderSide, family: Family) -> Topology {
        assert!(
            tag.len() <= 8 && tag.bytes().all(|b| b.is_ascii_alphanumeric()),
            "a short alphanumeric tag"
        );
        let topology = Topology {
            sender_ns: format!("lsw-{tag}-snd"),
            router_ns: format!("lsw-{tag}-rtr"),
            client_ns: format!("lsw-{tag}-cli"),
            impair_ns: (side == SenderSide::Impaired).then(|| format!("lsw-{tag}-imp")),
        };
        // Left over from a run killed before its drop ran.
        topology.remove();
        for ns in topology.names() {
            run("ip", &["netns", "add", &ns]);
            // IPv6 only where needed: its autoconfiguration is noise on these links, and the
            // raw sender's kernel must not speak it at all (it would reset the client).
            let ipv6 = family == Family::V6 && ns != topology.sender_ns;
            let disable = if ipv6 { "0" } else { "1" };
            sysctl(&ns, "net.ipv6.conf.all.disable_ipv6", disable);
            sysctl(&ns, "net.ipv6.conf.default.disable_ipv6", disable);
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        let (s, r, c) = (
            topology.sender_ns.as_str(),
            topology.router_ns.as_str(),
            topology.client_ns.as_str(),
        );
        // A new namespace may inherit forwarding from the host's; fix both explicitly.
        sysctl(s, "net.ipv4.ip_forward", "0");
        sysctl(r, "net.ipv4.ip_forward", "1");
        if family == Family::V6 {
            sysctl(r, "net.ipv6.conf.all.forwarding", "1");
        }
        match &topology.impair_ns {
            None => {
                run(
                    "ip",
                    &[
                        "-n",
                        s,
                        "link",
                        "add",
                        SENDER_DEV,
                        "address",
                        &mac_text(SENDER_MAC),
                        "type",
                        "veth",
                        "peer",
                        "name",
                        DIODE_DEV,
                        "address",
                        &mac_text(ROUTER_IN_MAC),
                        "netns",
                        r,
                    ],
                );
            }
            Some(i) => {
                run(
                    "ip",
                    &[
                        "-n",
                        s,
                        "link",
                        "add",
                        SENDER_DEV,
                        "address",
                        &mac_text(SENDER_MAC),
                        "type",
                        "veth",
                        "peer",
                        "name",
                        IMPAIR_SENDER_DEV,
                        "netns",
                        i,
                    ],
                );
                run(
                    "ip",
                    &[
                        "-n",
                        i,
                        "link",
                        "add",
                        IMPAIR_ROUTER_DEV,
                        "type",
                        "veth",
                        "peer",
                        "name",
                        DIODE_DEV,
                        "address",
                        &mac_text(ROUTER_IN_MAC),
                        "netns",
                        r,
                    ],
                );
                for dev in [IMPAIR_SENDER_DEV, IMPAIR_ROUTER_DEV] {
                    run("ip", &["-n", i, "link", "set", dev, "up"]);
                }
            }
        }
        run(
            "ip",
            &[
                "-n", r, "link", "add", "rtr1", "type", "veth", "peer", "name", "cli0", "netns", c,
            ],
        );
        let cidr = |ip| format!("{}/24", ip_text(ip));
        run(
            "ip",
            &[
                "-n",
                r,
                "addr",
                "add",
                &cidr(ROUTER_IN_IP),
                "dev",
                DIODE_DEV,
            ],
        );
        run(
            "ip",
            &["-n", r, "addr", "add", &cidr(ROUTER_OUT_IP), "dev", "rtr1"],
        );
        run(
            "ip",
            &["-n", c, "addr", "add", &cidr(CLIENT_IP), "dev", "cli0"],
        );
        if family == Family::V6 {
            let cidr6 = |ip| format!("{}/64", ip6_text(ip));
            for (ns, ip, dev) in [
                (r, ROUTER_IN_IP6, DIODE_DEV),
                (r, ROUTER_OUT_IP6, "rtr1"),
                (c, CLIENT_IP6, "cli0"),
            ] {
                // nodad: usable at once, not after duplicate address detection.
                run(
                    "ip",
                    &[
                        "-n",
                        ns,
                        "-6",
                        "addr",
                        "add",
                        &cidr6(ip),
                        "dev",
                        dev,
                        "nodad",
                    ],
                );
            }
        }
        for (ns, dev) in [(s, SENDER_DEV), (r, DIODE_DEV), (r, "rtr1"), (c, "cli0")] {
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        run(
            "ip",
            &[
                "-n",
                c,
                "route",
                "add",
                "default",
                "via",
                &ip_text(ROUTER_OUT_IP),
            ],
        );
        if family == Family::V6 {
            run(
                "ip",
                &[
                    "-n",
                    c,
                    "-6",
                    "route",
                    "add",
                    "default",
                    "via",
                    &ip6_text(ROUTER_OUT_IP6),
                ],
            );
            run(
                "ip",
                &[
                    "-n",
                    r,
                    "-6",
                    "neigh",
                    "replace",
                    &ip6_text(SENDER_IP6),
                    "lladdr",
                    &mac_text(SENDER_MAC),
                    "dev",
                    DIODE_DEV,
                    "nud",
                    "permanent",
                ],
            );
        }
        match side {
            SenderSide::Raw => {
                // Nobody answers ARP for the raw sender's address.
                run(
                    "ip",
                    &[
                        "-n",
                        r,
                        "neigh",
                        "replace",
                        &ip_text(SENDER_IP),
                        "lladdr",
                        &mac_text(SENDER_MAC),
                        "dev",
                        DIODE_DEV,
                        "nud",
                        "permanent",
                    ],
                );
            }
            SenderSide::Impaired => {
                // As an honest deployment has it (docs/stream.md, "Checksums left to
                // offload"): the enclave's stack completes its checksums before its frames
                // cross, since a stream diode drops partial ones.
                disable_tx_checksum(s, SENDER_DEV);
                run(
                    "ip",
                    &["-n", s, "addr", "add", &cidr(SENDER_IP), "dev", SENDER_DEV],
                );
                run(
                    "ip",
                    &[
                        "-n",
                        s,
                        "route",
                        "add",
                        "default",
                        "via",
                        &ip_text(ROUTER_IN_IP),
                    ],
                );
            }
        }
        topology
    }

    /// Puts the diode object at `object` (section `classifier`) on `rtr0`'s TC ingress, as
    /// `tc` loads it (direct action), and checks it is there.
    pub fn attach_diode(&self, object: &Path) {
        let r = self.router_ns.as_str();
        run("tc", &["-n", r, "qdisc", "add", "dev", DIODE_DEV, "clsact"]);
        let out = run(
            "tc",
            &[
                "-n",
                r,
                "filter",
                "replace",
                "dev",
                DIODE_DEV,
                "ingress",
                "pref",
                "1",
                "handle",
                "1",
                "bpf",
                "da",
                "obj",
                object.to_str().expect("a UTF-8 object path"),
                "sec",
                "classifier",
            ],
        );
        assert!(!out.contains("libbpf:"), "tc/libbpf warned:\n{out}");
        let shown = run(
            "tc",
            &["-n", r, "filter", "show", "dev", DIODE_DEV, "ingress"],
        );
        assert!(
            shown.contains("direct-action"),
            "the diode is not on {DIODE_DEV} ingress:\n{shown}"
        );
    }
}

/// Turns off transmit checksum offload on `dev` of namespace `ns` (`ethtool -K DEV tx off`,
/// by its ioctl, so no tool is needed): the kernel then completes every partial checksum of
/// a segment leaving `dev` in software, at the offset the skb names, as a host does before
/// a device without offload (or a NIC inserts it where the offset says).
pub fn disable_tx_checksum(ns: &str, dev: &str) {
    let dev = dev.to_owned();
    in_netns(ns, move || {
        lagic_lab::offload::disable_tx_checksum(&dev)
            .unwrap_or_else(|e| panic!("transmit checksum offload off on {dev}: {e}"));
    });
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}
