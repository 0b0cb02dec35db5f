//! Emulations of the maps and helpers a diode's verdict exits use (its
//! counters and drop events, docs/watch.md), after the kernel's helper
//! descriptions (`include/uapi/linux/bpf.h`).
//!
//! [`install`] registers them on a [`Vm`]:
//!
//! - An `ld_imm64` of a map (`src` = 1, `BPF_PSEUDO_MAP_FD`) loads a map
//!   handle, found by the relocation's `.maps` symbol: the counters
//!   ([`COUNTERS_MAP`]) or the events ([`EVENTS_MAP`]). A handle is not
//!   memory: any load or store through it fails, as the verifier refuses
//!   it. Any other map symbol is an error naming it.
//! - `bpf_map_lookup_elem` on the counters (a per-CPU array) returns a
//!   pointer to this CPU's value for a key below the array's size and
//!   NULL (0) for any other key; on the ring buffer it is an error.
//! - `bpf_ringbuf_reserve(events, size, 0)` returns a fresh writable
//!   record, or NULL when [`WatchState::ring_full`] is set or the size
//!   exceeds the ring; one record may be outstanding at a time (lagic
//!   reserves one per drop).
//! - `bpf_ringbuf_submit` / `bpf_ringbuf_discard` release exactly the
//!   outstanding record (any other pointer is an error); the record's
//!   memory is gone afterwards.
//! - `bpf_ktime_get_ns` returns a value that grows by one per call.
//! - `bpf_skb_load_bytes(skb, offset, to, len)` copies from the whole
//!   frame (linear or not) and returns 0, or `-EFAULT` when the range
//!   exceeds the frame.
//!
//! The maps' shapes (slot count, ring size) are the watch format's
//! ([`emit_bpf::decision`]), which `lagic status` and `lagic watch` read
//! too; the object's BTF is not parsed here.
//!
//! Invariant the checks rely on: a verdict must not depend on the ring
//! buffer being full. [`crate::formula`] runs every case with the ring
//! free and full, and the whole-program tests do the same.

use emit_bpf::decision::{COUNTERS_MAP, COUNTER_SLOTS, EVENTS_MAP, EVENTS_RING_SIZE};

use crate::vm::{helper, Func, Vm, CTX_BASE};

/// Map handles (`ld_imm64` results): not memory.
pub const COUNTERS_HANDLE: u64 = 0x5000_0000;
/// See [`COUNTERS_HANDLE`].
pub const EVENTS_HANDLE: u64 = 0x5000_0100;
/// This CPU's counter values (one 8-byte value per slot).
pub const COUNTERS_BASE: u64 = 0x5100_0000;
/// Where a reserved ring buffer record lives while outstanding.
pub const RECORD_BASE: u64 = 0x5200_0000;

const EFAULT: i64 = 14;

/// The maps' state across one run.
#[derive(Debug, Clone, Default)]
pub struct WatchState {
    /// Whether `bpf_ringbuf_reserve` fails (the ring is full).
    pub ring_full: bool,
    /// The outstanding record, if one is reserved.
    pub reserved: Option<u64>,
    /// Records submitted and discarded.
    pub submitted: u64,
    pub discarded: u64,
    /// `bpf_ktime_get_ns` calls so far.
    pub clock: u64,
}

/// Registers the map reference and helper emulations on `vm` and maps
/// this CPU's counters (zeroed).
pub fn install(vm: &mut Vm<'_>) {
    vm.register_pseudo_load(1, load_map);
    vm.register_helper(helper::MAP_LOOKUP_ELEM, lookup);
    vm.register_helper(helper::RINGBUF_RESERVE, reserve);
    vm.register_helper(helper::RINGBUF_SUBMIT, submit);
    vm.register_helper(helper::RINGBUF_DISCARD, discard);
    vm.register_helper(helper::KTIME_GET_NS, ktime);
    vm.register_helper(helper::SKB_LOAD_BYTES, skb_load_bytes);
    vm.register_helper(
        crate::stream::SKB_CHANGE_TAIL,
        crate::stream::skb_change_tail,
    );
    vm.map_region(COUNTERS_BASE, COUNTER_SLOTS as usize * 8, true);
}

/// This CPU's counter in `slot`, as the program left it.
pub fn counter(vm: &Vm<'_>, slot: u32) -> Result<u64, String> {
    vm.peek_u64(COUNTERS_BASE + u64::from(slot) * 8, 8)
}

fn load_map(vm: &mut Vm<'_>, _imm: i32, _upper: u64) -> Result<u64, String> {
    let (f, slot) = vm.loading_at();
    if f != Func::Entry {
        return Err("a callback references a map".into());
    }
    let name = vm
        .object()
        .map_refs
        .get(&slot)
        .ok_or("a map reference without a relocation against .maps")?;
    match name.as_str() {
        COUNTERS_MAP => Ok(COUNTERS_HANDLE),
        EVENTS_MAP => Ok(EVENTS_HANDLE),
        emit_bpf::STREAM_FLOWS_MAP => Ok(crate::stream::FLOWS_HANDLE),
        other => Err(format!("references map `{other}`, which is not emulated")),
    }
}

/// [`lookup`], for [`crate::stream`]'s test hook.
pub(crate) fn lookup_any(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    lookup(vm, args)
}

/// `void *bpf_map_lookup_elem(map, const void *key)`.
fn lookup(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    let [map, key, ..] = args;
    if map == crate::stream::FLOWS_HANDLE {
        return crate::stream::lookup_flow(vm, key);
    }
    if map != COUNTERS_HANDLE {
        return Err(format!(
            "bpf_map_lookup_elem on {map:#x}, not the counters map"
        ));
    }
    let key = vm.peek_u64(key, 4).map_err(|e| format!("the key: {e}"))? as u32;
    Ok(if key < COUNTER_SLOTS {
        COUNTERS_BASE + u64::from(key) * 8
    } else {
        0
    })
}

/// `void *bpf_ringbuf_reserve(ringbuf, u64 size, u64 flags)`.
fn reserve(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    let [map, size, flags, ..] = args;
    if map != EVENTS_HANDLE {
        return Err(format!(
            "bpf_ringbuf_reserve on {map:#x}, not the events ring"
        ));
    }
    if flags != 0 {
        return Err(format!("bpf_ringbuf_reserve with flags {flags}"));
    }
    if vm.watch.reserved.is_some() {
        return Err("bpf_ringbuf_reserve with a record still outstanding".into());
    }
    if vm.watch.ring_full || size == 0 || size > u64::from(EVENTS_RING_SIZE) {
        return Ok(0);
    }
    vm.map_region(RECORD_BASE, size as usize, true);
    vm.watch.reserved = Some(RECORD_BASE);
    Ok(RECORD_BASE)
}

fn release(vm: &mut Vm<'_>, what: &str, args: [u64; 5]) -> Result<u64, String> {
    let [record, flags, ..] = args;
    if vm.watch.reserved != Some(record) {
        return Err(format!("{what} of {record:#x}, not an outstanding record"));
    }
    if flags != 0 {
        return Err(format!("{what} with flags {flags}"));
    }
    vm.watch.reserved = None;
    vm.unmap_region(record);
    Ok(0)
}

/// `void bpf_ringbuf_submit(void *data, u64 flags)`.
fn submit(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    release(vm, "bpf_ringbuf_submit", args)?;
    vm.watch.submitted += 1;
    Ok(0)
}

/// `void bpf_ringbuf_discard(void *data, u64 flags)`.
fn discard(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    release(vm, "bpf_ringbuf_discard", args)?;
    vm.watch.discarded += 1;
    Ok(0)
}

/// `u64 bpf_ktime_get_ns(void)`.
fn ktime(vm: &mut Vm<'_>, _args: [u64; 5]) -> Result<u64, String> {
    vm.watch.clock += 1;
    Ok(1_000_000_000 + vm.watch.clock)
}

/// `long bpf_skb_load_bytes(const void *skb, u32 offset, void *to, u32 len)`.
fn skb_load_bytes(vm: &mut Vm<'_>, args: [u64; 5]) -> Result<u64, String> {
    let [skb, offset, to, len, _] = args;
    if skb != CTX_BASE {
        return Err("bpf_skb_load_bytes: first argument is not the context".into());
    }
    let (offset, len) = (offset as u32 as usize, len as u32 as usize);
    if len == 0 {
        return Err("bpf_skb_load_bytes with length 0 (the verifier refuses it)".into());
    }
    let frame = vm.frame().ok_or("no packet set up")?;
    let Some(bytes) = frame.get(offset..offset.saturating_add(len)) else {
        return Ok((-EFAULT) as u64);
    };
    let bytes = bytes.to_vec();
    vm.poke(to, &bytes)
        .map_err(|e| format!("bpf_skb_load_bytes destination: {e}"))?;
    Ok(0)
}
