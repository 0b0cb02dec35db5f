//! Reading what a diode decided: its verdict counters and its drop events.
//!
//! Every object lagic writes carries two maps ([`emit_bpf::decision`] has
//! their layout): a per-CPU array of counters by [`Reason`] and a ring
//! buffer of drop events. A stream diode also has its flow map, which
//! [`DiodeMaps::flow`] and [`DiodeMaps::flow_table`] read (an entry, and how
//! full the table is). [`DiodeMaps`] finds them through a loaded
//! program's map ids (`BPF_OBJ_GET_INFO_BY_FD`'s `map_ids`), so it works for
//! a pinned, attached diode as well as for a program loaded for a test run.
//! [`Counters`] sums the per-CPU values; [`Decision`] is one decoded event.
//! Both serialize (serde) for `lagic status --json`, `lagic watch --json`
//! and anything else that reads them.
//!
//! Invariant: a record that does not decode (too short, unknown reason) is
//! an error for that record, never a guessed event.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd};

use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use aya::programs::loaded_programs;
use emit_bpf::decision::{self as layout, Reason, NONE};
use serde::Serialize;
use thiserror::Error;

/// Why a diode's maps could not be read.
#[derive(Debug, Error)]
pub enum DecisionError {
    /// No loaded program has the id.
    #[error("no loaded BPF program has id {0}")]
    NoProgram(u32),
    /// The program has no map of that name: not a lagic diode with counters.
    #[error(
        "program {program} has no map `{map}` (compiled by an older lagic, or not a lagic diode)"
    )]
    MissingMap {
        /// Program id.
        program: u32,
        /// The map's name.
        map: &'static str,
    },
    /// A `bpf(2)` call failed.
    #[error("{what}: {source}")]
    Kernel {
        /// What was being done.
        what: String,
        /// The kernel's error.
        #[source]
        source: std::io::Error,
    },
    /// Aya refused a map or program handle.
    #[error("{what}: {detail}")]
    Aya {
        /// What was being done.
        what: String,
        /// Aya's error.
        detail: String,
    },
}

fn aya_err(what: impl Into<String>, e: impl std::fmt::Display) -> DecisionError {
    DecisionError::Aya {
        what: what.into(),
        detail: e.to_string(),
    }
}

/// Why one event record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the fixed part of an event.
    #[error("event record of {0} bytes is shorter than the {1}-byte fixed part")]
    Short(usize, usize),
    /// A reason value no diode writes.
    #[error("event record with unknown reason {0}")]
    UnknownReason(u32),
    /// A layout version this lagic does not know (written by a newer one).
    #[error("event record of format {0}; this lagic reads formats 1 and 2 (upgrade lagic)")]
    UnknownFormat(u32),
}

/// Verdict counts of one diode, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Packets passed.
    pub pass: u64,
    /// Dropped: the predicate is false.
    pub predicate: u64,
    /// Dropped: malformed or not fully readable.
    pub malformed: u64,
    /// Dropped by the `arp` policy.
    pub policy_arp: u64,
    /// Dropped by the `ipv6_nd` policy.
    pub policy_ipv6_nd: u64,
    /// Dropped by the `other_ip` policy.
    pub policy_other_ip: u64,
    /// Dropped by the `non_ip` policy.
    pub policy_non_ip: u64,
    /// Dropped: IPv4 fragments.
    pub fragment: u64,
    /// Dropped: VLAN-tagged frames.
    pub vlan: u64,
    /// Dropped: IPv6 extension headers.
    pub ipv6_extension: u64,
    /// Dropped: frames over 64 KiB.
    pub oversize: u64,
    /// Stream diodes: segments of a latched flow (turned into RSTs),
    /// including the violations that latch it other than the predicate's.
    pub latched: u64,
    /// Stream diodes: segments not at the next expected byte (dropped).
    pub out_of_order: u64,
    /// Stream diodes: segments of flows without state (the diode did not
    /// see their SYN: attached, or re-attached, mid-connection), turned
    /// into RSTs.
    pub evicted: u64,
    /// Stream diodes: segments refused because the flow table is full (a
    /// new flow's SYN, or the latch of a flow without state), turned into
    /// RSTs.
    pub table_full: u64,
    /// Stream diodes: SYNs refused on a flow that is not latched (with
    /// payload, or another initial sequence number that cannot start a
    /// fresh flow there), dropped.
    pub bad_syn: u64,
    /// Stream diodes: segments whose TCP checksum was left to be completed
    /// after the diode (`CHECKSUM_PARTIAL`), dropped.
    pub partial_checksum: u64,
    /// Drop events lost to a full ring buffer (their drops are counted).
    pub lost_events: u64,
}

impl Counters {
    /// The count of `reason`.
    pub fn get(&self, reason: Reason) -> u64 {
        *self.slot(reason as u32)
    }

    fn slot(&self, slot: u32) -> &u64 {
        match slot {
            0 => &self.pass,
            1 => &self.predicate,
            2 => &self.malformed,
            3 => &self.policy_arp,
            4 => &self.policy_ipv6_nd,
            5 => &self.policy_other_ip,
            6 => &self.policy_non_ip,
            7 => &self.fragment,
            8 => &self.vlan,
            9 => &self.ipv6_extension,
            10 => &self.oversize,
            11 => &self.latched,
            12 => &self.out_of_order,
            13 => &self.evicted,
            15 => &self.table_full,
            16 => &self.bad_syn,
            17 => &self.partial_checksum,
            _ => &self.lost_events,
        }
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut u64> {
        Some(match slot {
            0 => &mut self.pass,
            1 => &mut self.predicate,
            2 => &mut self.malformed,
            3 => &mut self.policy_arp,
            4 => &mut self.policy_ipv6_nd,
            5 => &mut self.policy_other_ip,
            6 => &mut self.policy_non_ip,
            7 => &mut self.fragment,
            8 => &mut self.vlan,
            9 => &mut self.ipv6_extension,
            10 => &mut self.oversize,
            11 => &mut self.latched,
            12 => &mut self.out_of_order,
            13 => &mut self.evicted,
            15 => &mut self.table_full,
            16 => &mut self.bad_syn,
            17 => &mut self.partial_checksum,
            layout::LOST_EVENTS_SLOT => &mut self.lost_events,
            _ => return None,
        })
    }

    /// Every drop, whatever the reason.
    pub fn drops(&self) -> u64 {
        Reason::ALL
            .iter()
            .filter(|r| **r != Reason::Pass)
            .map(|r| self.get(*r))
            .sum()
    }
}

/// The flow of a dropped frame, parsed from its head (as far as it parses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// Source address.
    pub src_ip: IpAddr,
    /// Source port (TCP or UDP only).
    pub src_port: Option<u16>,
    /// Destination address.
    pub dest_ip: IpAddr,
    /// Destination port (TCP or UDP only).
    pub dest_port: Option<u16>,
    /// IP protocol number (IPv6: the first next header).
    pub proto: u8,
}

/// One drop a diode recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// `CLOCK_MONOTONIC` nanoseconds at the decision (`bpf_ktime_get_ns`).
    pub time_ns: u64,
    /// Why it dropped.
    #[serde(serialize_with = "reason_name")]
    pub reason: Reason,
    /// Index of the formula atom that decided ([`emit_bpf::decision::atoms`]).
    pub decided_by: Option<u32>,
    /// Payload offset where the deciding byte's span starts, as the diode
    /// recorded it: the byte lies in `payload[offset..offset + offset_span]`
    /// ([`Decision::locate`] narrows it; docs/watch.md).
    pub offset: Option<u32>,
    /// Length of that span: 1 for a byte test, the scan's chunk (or inline
    /// window) for a scan.
    pub offset_span: u32,
    /// The deciding scan's registers where the span starts
    /// ([`layout::EVENT_SPAN_STATE`]); `None` in a version-1 record.
    pub span_state: Option<[u32; 2]>,
    /// `skb->ifindex`.
    pub ifindex: u32,
    /// `skb->ingress_ifindex` (equal to `ifindex` on ingress).
    pub ingress_ifindex: u32,
    /// The frame's length.
    pub frame_len: u32,
    /// Frame offset of the TCP payload, when the diode parsed that far.
    pub payload_start: Option<u32>,
    /// The payload's length (0 when not parsed that far).
    pub payload_len: u32,
    /// Payload offset of the excerpt's first byte.
    pub excerpt_start: u32,
    /// Payload bytes around the deciding byte.
    pub excerpt: Vec<u8>,
    /// The frame's first bytes (at most [`layout::HEAD_LEN`]).
    pub head: Vec<u8>,
    /// Addresses and ports from `head`, if it parses as IPv4 or IPv6.
    pub flow: Option<Flow>,
}

fn reason_name<S: serde::Serializer>(r: &Reason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.as_str())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn opt(v: u32) -> Option<u32> {
    (v != NONE).then_some(v)
}

impl Decision {
    /// Decodes one ring-buffer record.
    pub fn decode(record: &[u8]) -> Result<Decision, DecodeError> {
        if record.len() < layout::EVENT_EXCERPT_V1 {
            return Err(DecodeError::Short(record.len(), layout::EVENT_EXCERPT_V1));
        }
        let (head_at, excerpt_at, span_state) = match u32_at(record, layout::EVENT_FORMAT) {
            0 => (layout::EVENT_HEAD_V1, layout::EVENT_EXCERPT_V1, None),
            layout::EVENT_FORMAT_VERSION => {
                if record.len() < layout::EVENT_EXCERPT {
                    return Err(DecodeError::Short(record.len(), layout::EVENT_EXCERPT));
                }
                let at = layout::EVENT_SPAN_STATE;
                let state = [u32_at(record, at), u32_at(record, at + 4)];
                (layout::EVENT_HEAD, layout::EVENT_EXCERPT, Some(state))
            }
            v => return Err(DecodeError::UnknownFormat(v)),
        };
        let reason_value = u32_at(record, layout::EVENT_REASON);
        let reason =
            Reason::from_u32(reason_value).ok_or(DecodeError::UnknownReason(reason_value))?;
        let head_len = usize::from(u16_at(record, layout::EVENT_HEAD_LEN)).min(layout::HEAD_LEN);
        let head = record[head_at..head_at + head_len].to_vec();
        let excerpt_len =
            usize::from(u16_at(record, layout::EVENT_EXCERPT_LEN)).min(record.len() - excerpt_at);
        let excerpt = record[excerpt_at..excerpt_at + excerpt_len].to_vec();
        Ok(Decision {
            time_ns: u64::from_le_bytes(record[0..8].try_into().unwrap()),
            reason,
            decided_by: opt(u32_at(record, layout::EVENT_DECIDED_BY)),
            offset: opt(u32_at(record, layout::EVENT_OFFSET)),
            offset_span: u32_at(record, layout::EVENT_OFFSET_SPAN),
            span_state,
            ifindex: u32_at(record, layout::EVENT_IFINDEX),
            ingress_ifindex: u32_at(record, layout::EVENT_INGRESS_IFINDEX),
            frame_len: u32_at(record, layout::EVENT_FRAME_LEN),
            payload_start: opt(u32_at(record, layout::EVENT_PAYLOAD_START)),
            payload_len: u32_at(record, layout::EVENT_PAYLOAD_LEN),
            excerpt_start: u32_at(record, layout::EVENT_EXCERPT_START),
            excerpt,
            flow: parse_flow(&head),
            head,
        })
    }

    /// The deciding byte, as exactly as the record allows: `atoms` are the
    /// diode's formula atoms ([`emit_bpf::decision::atoms`] of its program;
    /// empty when unknown). See [`emit_bpf::decision::locate`].
    pub fn locate(&self, atoms: &[layout::Atom]) -> Option<layout::Located> {
        let atom = self.decided_by.and_then(|a| atoms.get(a as usize));
        layout::locate(
            atom,
            &layout::Recorded {
                offset: self.offset,
                span: self.offset_span,
                span_state: self.span_state,
                payload_len: self.payload_len,
                excerpt_start: self.excerpt_start,
                excerpt: &self.excerpt,
            },
        )
    }

    /// Whether the frame arrived on the interface it is on (TC ingress).
    pub fn is_ingress(&self) -> bool {
        self.ingress_ifindex == self.ifindex
    }
}

/// Addresses and ports from a frame's first bytes: Ethernet II, then IPv4
/// or IPv6; ports for TCP (6) and UDP (17) when the head holds them.
pub fn parse_flow(head: &[u8]) -> Option<Flow> {
    let ethertype = u16::from_be_bytes([*head.get(12)?, *head.get(13)?]);
    let ip = head.get(14..)?;
    let (src_ip, dest_ip, proto, l4): (IpAddr, IpAddr, u8, usize) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (
                Ipv4Addr::from(src).into(),
                Ipv4Addr::from(dst).into(),
                *ip.get(9)?,
                ihl,
            )
        }
        0x86DD => {
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                *ip.get(6)?,
                40,
            )
        }
        _ => return None,
    };
    let ports = if matches!(proto, 6 | 17) {
        ip.get(l4..l4 + 4).map(|p| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        })
    } else {
        None
    };
    Some(Flow {
        src_ip,
        src_port: ports.map(|p| p.0),
        dest_ip,
        dest_port: ports.map(|p| p.1),
        proto,
    })
}

/// The counters and event ring buffer of one loaded diode (and a stream
/// diode's flow map).
pub struct DiodeMaps {
    program_id: u32,
    counters: PerCpuArray<MapData, u64>,
    events: RingBuf<MapData>,
    flows: Option<FlowMap>,
}

/// A stream diode's flow map and its shape.
struct FlowMap {
    map: MapData,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

/// How full a stream diode's flow table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlowTable {
    /// Entries now (one per 4-tuple the diode has seen since it was loaded).
    pub flows: u64,
    /// Entries it can hold; beyond that new flows are refused (`table_full`).
    pub capacity: u32,
}

impl std::fmt::Debug for DiodeMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiodeMaps")
            .field("program_id", &self.program_id)
            .finish_non_exhaustive()
    }
}

impl DiodeMaps {
    /// The maps of the loaded program whose fd is `program`.
    pub fn for_program(program: BorrowedFd<'_>) -> Result<DiodeMaps, DecisionError> {
        let info = crate::sys::prog_info(program).map_err(|source| DecisionError::Kernel {
            what: "reading the program's info".into(),
            source,
        })?;
        DiodeMaps::for_program_id(info.id)
    }

    /// The maps of the loaded program with kernel id `id`.
    pub fn for_program_id(id: u32) -> Result<DiodeMaps, DecisionError> {
        let info = loaded_programs()
            .filter_map(Result::ok)
            .find(|p| p.id() == id)
            .ok_or(DecisionError::NoProgram(id))?;
        let map_ids = info
            .map_ids()
            .map_err(|e| aya_err(format!("reading the map ids of program {id}"), e))?
            .unwrap_or_default();
        let mut counters = None;
        let mut events = None;
        let mut flows = None;
        for map_id in map_ids {
            let data = MapData::from_id(map_id)
                .map_err(|e| aya_err(format!("opening map {map_id}"), e))?;
            let name = data
                .info()
                .map_err(|e| aya_err(format!("reading map {map_id}"), e))?
                .name_as_str()
                .unwrap_or_default()
                .to_owned();
            if name == emit_bpf::STREAM_FLOWS_MAP {
                let [_, key_size, value_size, max_entries] =
                    crate::sys::map_shape(data.fd().as_fd()).map_err(|source| {
                        DecisionError::Kernel {
                            what: format!("reading the shape of map {map_id} ({name})"),
                            source,
                        }
                    })?;
                flows = Some(FlowMap {
                    map: data,
                    key_size,
                    value_size,
                    max_entries,
                });
                continue;
            }
            let map = Map::from_map_data(data)
                .map_err(|e| aya_err(format!("opening map {map_id}"), e))?;
            if name == layout::COUNTERS_MAP {
                counters = Some(
                    PerCpuArray::try_from(map)
                        .map_err(|e| aya_err(format!("map {map_id} ({name})"), e))?,
                );
            } else if name == layout::EVENTS_MAP {
                events = Some(
                    RingBuf::try_from(map)
                        .map_err(|e| aya_err(format!("map {map_id} ({name})"), e))?,
                );
            }
        }
        Ok(DiodeMaps {
            program_id: id,
            counters: counters.ok_or(DecisionError::MissingMap {
                program: id,
                map: layout::COUNTERS_MAP,
            })?,
            events: events.ok_or(DecisionError::MissingMap {
                program: id,
                map: layout::EVENTS_MAP,
            })?,
            flows,
        })
    }

    fn flow_map(&self) -> Result<&FlowMap, DecisionError> {
        self.flows.as_ref().ok_or(DecisionError::MissingMap {
            program: self.program_id,
            map: emit_bpf::STREAM_FLOWS_MAP,
        })
    }

    /// The flow value stored under `key` (a stream diode's flow key,
    /// `emit_bpf::codegen::stream::key`), `None` if the table has no such
    /// flow. An error for a diode without flow map or a key of another size.
    pub fn flow(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DecisionError> {
        let flows = self.flow_map()?;
        if key.len() != flows.key_size as usize {
            return Err(DecisionError::Kernel {
                what: format!(
                    "looking up a {}-byte key in a flow map of {}-byte keys",
                    key.len(),
                    flows.key_size
                ),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        crate::sys::map_lookup_key(flows.map.fd().as_fd(), key, flows.value_size).map_err(
            |source| DecisionError::Kernel {
                what: format!("reading {}", emit_bpf::STREAM_FLOWS_MAP),
                source,
            },
        )
    }

    /// How full the flow table is (`None` for a diode without one). Counts
    /// the keys one by one: the count is of a table that may change meanwhile.
    pub fn flow_table(&self) -> Result<Option<FlowTable>, DecisionError> {
        let Some(flows) = &self.flows else {
            return Ok(None);
        };
        let fd = flows.map.fd().as_fd();
        let mut count = 0u64;
        let mut key = None;
        loop {
            let next =
                crate::sys::map_next_key(fd, key.as_deref(), flows.key_size).map_err(|source| {
                    DecisionError::Kernel {
                        what: format!("walking {}", emit_bpf::STREAM_FLOWS_MAP),
                        source,
                    }
                })?;
            let Some(next) = next else { break };
            count += 1;
            key = Some(next);
        }
        Ok(Some(FlowTable {
            flows: count,
            capacity: flows.max_entries,
        }))
    }

    /// The program these maps belong to.
    pub fn program_id(&self) -> u32 {
        self.program_id
    }

    /// The counters now, summed over CPUs. A diode of an older lagic has
    /// fewer slots (no [`Reason::BadSyn`] or [`Reason::PartialChecksum`]):
    /// those it lacks read as 0.
    pub fn counters(&self) -> Result<Counters, DecisionError> {
        let mut c = Counters::default();
        for slot in 0..layout::COUNTER_SLOTS.min(self.counters.len()) {
            let Some(field) = c.slot_mut(slot) else {
                continue;
            };
            let values = self
                .counters
                .get(&slot, 0)
                .map_err(|e| aya_err(format!("reading counter {slot}"), e))?;
            *field = values.iter().sum();
        }
        Ok(c)
    }

    /// The next recorded event, if one is ready (never blocks; wait for
    /// readability of [`DiodeMaps::events_fd`] between calls).
    pub fn next_event(&mut self) -> Option<Result<Decision, DecodeError>> {
        let item = self.events.next()?;
        Some(Decision::decode(&item))
    }

    /// The ring buffer's fd: readable (poll/epoll) when events are waiting.
    pub fn events_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A predicate drop's record, written field by field at the offsets the
    /// format fixes (docs/watch.md): version 2 unless `v1`.
    fn record(v1: bool) -> Vec<u8> {
        let (head_at, excerpt_at) = if v1 { (56, 152) } else { (64, 160) };
        let excerpt = b"I hate";
        let mut r = vec![0u8; (excerpt_at + excerpt.len()).div_ceil(8) * 8];
        let mut put = |at: usize, v: u32| r[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put(8, 1); // predicate
        put(12, 0); // atom 0
        put(16, 64); // span start
        put(20, 7);
        put(24, 7);
        put(28, 90);
        put(36, 64); // excerpt start
        put(40, 54); // payload start
        put(44, 70); // payload length
        put(48, 8); // span
        if !v1 {
            put(52, 2); // format
            put(56, 0); // state at the span's start
            put(60, 0);
        }
        r[32..34].copy_from_slice(&2u16.to_le_bytes()); // head length
        r[34..36].copy_from_slice(&(excerpt.len() as u16).to_le_bytes());
        r[head_at..head_at + 2].copy_from_slice(b"HD");
        r[excerpt_at..excerpt_at + excerpt.len()].copy_from_slice(excerpt);
        r
    }

    #[test]
    fn the_layout_is_golden() {
        assert_eq!(
            (
                layout::EVENT_FORMAT,
                layout::EVENT_SPAN_STATE,
                layout::EVENT_HEAD,
                layout::EVENT_EXCERPT
            ),
            (52, 56, 64, 160)
        );
        assert_eq!(layout::event_size(layout::DEFAULT_EXCERPT), 224);
        let d = Decision::decode(&record(false)).unwrap();
        assert_eq!(d.span_state, Some([0, 0]));
        assert_eq!((d.offset, d.offset_span), (Some(64), 8));
        assert_eq!(
            (d.head.as_slice(), d.excerpt.as_slice()),
            (&b"HD"[..], &b"I hate"[..])
        );
        assert_eq!((d.payload_start, d.payload_len), (Some(54), 70));
    }

    #[test]
    fn version_1_records_decode_and_stay_spans() {
        let d = Decision::decode(&record(true)).unwrap();
        assert_eq!(d.span_state, None);
        assert_eq!(
            (d.head.as_slice(), d.excerpt.as_slice()),
            (&b"HD"[..], &b"I hate"[..])
        );
        let spec = predicate_ir::parse(include_str!("../../examples/hateless.json")).unwrap();
        let atoms = layout::atoms(&predicate_ir::lower(&spec).unwrap());
        // Without a starting state the chunk cannot be replayed; it stays a
        // span, cut at the payload's end (64 + 8 > 70).
        let span = d.locate(&atoms).unwrap();
        assert_eq!((span.offset, span.span), (64, 6));
        // The same record in version 2 is replayed: "hate" ends at 64 + 5.
        let exact = Decision::decode(&record(false)).unwrap().locate(&atoms);
        assert_eq!(
            exact,
            Some(layout::Located {
                offset: 69,
                span: 1
            })
        );
    }

    #[test]
    fn an_unknown_format_is_an_error_not_a_guess() {
        let mut r = record(false);
        r[52..56].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(Decision::decode(&r), Err(DecodeError::UnknownFormat(3)));
        let short = &record(false)[..100];
        assert!(matches!(
            Decision::decode(short),
            Err(DecodeError::Short(100, _))
        ));
    }
}
