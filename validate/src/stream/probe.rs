//! Probe segments for the stream walk and formula checks: one segment of a
//! flow whose stream length so far (the stream offset of the segment's
//! first new byte) is chosen, run through the whole entry function.
//!
//! The flow map is emulated as in [`super::lookup_flow`] (a flow opened by
//! a SYN, expecting exactly the probe's sequence number, judged nothing),
//! and the value's stream length is then set to the chosen offset, so the
//! emitted segment rules copy it where the passes and formulas read it.

use crate::frame;
use crate::object::Object;
use crate::vm::{helper, Skb, Vm};

/// Where the chosen stream length is kept for the lookup emulation (a
/// helper emulation is a plain function).
const PROBE_BASE: u64 = 0x5310_0000;
/// Offset of the `u64` stream length in a flow value (emitter's layout,
/// docs/stream.md).
const VALUE_STREAM_LEN: u64 = 24;
/// Frame offset of the TCP flags byte in [`frame::ipv4_tcp`].
const TCP_FLAGS_AT: usize = frame::HEADERS - 20 + 13;
const TCP_FIN: u8 = 0x01;

/// An interpreter with the watch and flow emulations, the probe frame
/// carrying `payload` (with FIN if `fin`) and a flow whose stream length so
/// far is `stream_len`.
pub(crate) fn vm<'o>(object: &'o Object, stream_len: u64, payload: &[u8], fin: bool) -> Vm<'o> {
    let mut vm = Vm::new(object);
    crate::watch::install(&mut vm);
    vm.register_helper(helper::MAP_LOOKUP_ELEM, lookup);
    vm.map_region(PROBE_BASE, 8, false);
    vm.poke(PROBE_BASE, &stream_len.to_le_bytes())
        .expect("just mapped");
    let mut f = frame::ipv4_tcp(payload);
    if fin {
        f[TCP_FLAGS_AT] |= TCP_FIN;
    }
    vm.set_skb(Skb::linear(f));
    vm
}

/// Sets the stream length so far of the flow the next lookup opens.
pub(crate) fn set_stream_len(vm: &mut Vm<'_>, stream_len: u64) -> Result<(), String> {
    vm.poke(PROBE_BASE, &stream_len.to_le_bytes())
}

/// `bpf_map_lookup_elem`: the counters as usual; the flow map's fresh
/// value then gets the probe's stream length.
pub(crate) fn lookup(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    let at = crate::watch::lookup_any(vm, args)?;
    if args[0] == super::FLOWS_HANDLE && at == super::FLOW_VALUE_BASE {
        let s = vm.peek_u64(PROBE_BASE, 8)?;
        vm.poke(at + VALUE_STREAM_LEN, &s.to_le_bytes())?;
    }
    Ok(at)
}
