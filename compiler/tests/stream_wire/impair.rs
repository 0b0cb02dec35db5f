//! A userspace netem: a transparent relay between the sender's link and the router's, in the
//! impair namespace, that loses, duplicates and reorders the frames the sender sends.
//!
//! Why not `tc qdisc netem`: the kernels this runs on need not have `sch_netem` (the one here
//! has `CONFIG_NET_SCH_NETEM` off), and a test must not depend on one kernel build. A relay
//! of packet sockets needs nothing but `CONFIG_PACKET`.
//!
//! Frames cross with their `virtio_net_hdr` (`PACKET_VNET_HDR`), so the sender's GSO
//! super-frames and checksum-offload state reach the router as the sender's stack made them:
//! the diode sees the same skbs as on a direct veth. The sender's `snd0` has transmit
//! checksum offload off ([`super::net::Topology::impaired`]), as a stream diode needs, so
//! those are complete-checksummed frames of at most the MTU.
//!
//! Impairment applies to the sender-to-router direction and only to frames that carry data
//! (longer than [`DATA_FRAME_MIN`]): handshake, ACKs and ARP cross untouched, so that a
//! lost SYN-ACK does not cost the test a one-second retransmission timer. Besides the random
//! rates, the 3rd data frame is always lost, the 5th duplicated and the 7th reordered, so
//! every kind of impairment happens on any transfer of at least 7 data frames (1 MB is
//! hundreds of frames), and the counts say what happened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::net::{in_netns, spawn_in_netns, IMPAIR_ROUTER_DEV, IMPAIR_SENDER_DEV};
use super::packet::{PacketSocket, VNET_HDR_LEN};

/// Frames at most this long (virtio header excluded) are never impaired: no data in them.
const DATA_FRAME_MIN: usize = 14 + 20 + 20 + 60;
/// How long a reordered frame waits at most for a later one to overtake it.
const POLL: Duration = Duration::from_millis(5);
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the only flag meaningful when sending.
const NEEDS_CSUM: u8 = 1;

/// Rates in parts per thousand of data frames, and the random seed.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Lost.
    pub loss: u32,
    /// Sent twice.
    pub duplicate: u32,
    /// Held back until the next data frame has been sent.
    pub reorder: u32,
    /// Seed of the generator (runs are reproducible up to timing).
    pub seed: u64,
}

/// What the relay did to the sender's frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Frames that crossed (each copy of a duplicate counts once).
    pub relayed: usize,
    /// Data frames that crossed, before impairment.
    pub data_frames: usize,
    /// Lost on purpose.
    pub lost: usize,
    /// Duplicated.
    pub duplicated: usize,
    /// Reordered.
    pub reordered: usize,
    /// Sends the kernel refused (ENOBUFS under a burst): lost as well.
    pub send_errors: usize,
}

/// The running relay; dropping it stops it.
pub struct Relay {
    stop: Arc<AtomicBool>,
    forward: Option<JoinHandle<Counts>>,
    backward: Option<JoinHandle<Counts>>,
}

/// xorshift64*: small, seeded, good enough to choose which frames to impair.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn relay(
    from: &PacketSocket,
    to: &PacketSocket,
    impairment: Option<Impairment>,
    stop: &AtomicBool,
) -> Counts {
    let mut counts = Counts::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut rng = impairment.map_or(1, |i| i.seed | 1);
    let mut held: Option<Vec<u8>> = None;
    let send = |frame: &mut Vec<u8>, counts: &mut Counts| {
        frame[0] &= NEEDS_CSUM;
        match to.send(frame) {
            Ok(()) => counts.relayed += 1,
            Err(_) => counts.send_errors += 1,
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let n = match from.recv(&mut buf) {
            Ok(Some(n)) => n,
            Ok(None) => {
                if let Some(mut frame) = held.take() {
                    send(&mut frame, &mut counts);
                }
                continue;
            }
            Err(e) => panic!("the relay cannot receive: {e}"),
        };
        let mut frame = buf[..n].to_vec();
        let Some(imp) = impairment.filter(|_| n - VNET_HDR_LEN > DATA_FRAME_MIN) else {
            send(&mut frame, &mut counts);
            continue;
        };
        counts.data_frames += 1;
        let nth = counts.data_frames;
        let mut roll = |rate: u32| next(&mut rng) % 1000 < u64::from(rate);
        if nth == 3 || roll(imp.loss) {
            counts.lost += 1;
            continue;
        }
        if held.is_none() && (nth == 7 || roll(imp.reorder)) {
            counts.reordered += 1;
            held = Some(frame);
            continue;
        }
        let duplicate = nth == 5 || roll(imp.duplicate);
        send(&mut frame, &mut counts);
        if duplicate {
            counts.duplicated += 1;
            send(&mut frame, &mut counts);
        }
        if let Some(mut frame) = held.take() {
            send(&mut frame, &mut counts);
        }
    }
    counts
}

impl Relay {
    /// Starts relaying between the impair namespace's two interfaces, impairing the
    /// sender's frames with `impairment` (`None`: a plain relay).
    pub fn start(impair_ns: &str, impairment: Option<Impairment>) -> Relay {
        let (sender_side, router_side) = in_netns(impair_ns, || {
            let bind = |dev| {
                PacketSocket::bind(dev, true, POLL)
                    .unwrap_or_else(|e| panic!("relay socket on {dev}: {e}"))
            };
            (
                Arc::new(bind(IMPAIR_SENDER_DEV)),
                Arc::new(bind(IMPAIR_ROUTER_DEV)),
            )
        });
        let stop = Arc::new(AtomicBool::new(false));
        let forward = {
            let (from, to, stop) = (sender_side.clone(), router_side.clone(), stop.clone());
            spawn_in_netns(impair_ns, move || relay(&from, &to, impairment, &stop))
        };
        let backward = {
            let stop = stop.clone();
            spawn_in_netns(impair_ns, move || {
                relay(&router_side, &sender_side, None, &stop)
            })
        };
        Relay {
            stop,
            forward: Some(forward),
            backward: Some(backward),
        }
    }

    /// Stops the relay; what it did to the sender's frames.
    pub fn stop(mut self) -> Counts {
        self.stop.store(true, Ordering::Relaxed);
        let counts = self.forward.take().map(|t| t.join());
        if let Some(t) = self.backward.take() {
            let _ = t.join();
        }
        match counts {
            Some(Ok(counts)) => counts,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Counts::default(),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in [self.forward.take(), self.backward.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
    }
}
