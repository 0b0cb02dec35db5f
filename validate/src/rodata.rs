//! Read-only global data (`.rodata`: a diode's transition tables) in the
//! interpreter, as the loaders give it to the program.
//!
//! Aya and libbpf turn `.rodata` into a frozen array map of one value and
//! rewrite each `ld_imm64` relocated against a `.rodata` symbol into a
//! `BPF_PSEUDO_MAP_VALUE` load of "the value's address plus the symbol's
//! offset plus the instruction's first `imm`". Here that address is
//! [`RODATA_BASE`] plus the same sum, and the bytes are the object's own
//! section ([`crate::Object::rodata`]), read-only: a store there fails, as
//! the verifier refuses stores to a read-only map.
//!
//! Invariant: only entry instructions the object relocates against a
//! `.rodata` symbol load an address, and only within the section; any
//! other `BPF_PSEUDO_MAP_VALUE` load is an error naming its slot.

use crate::object::Object;
use crate::vm::{Func, Vm};

/// Where the interpreter places `.rodata` (clear of every other region).
pub const RODATA_BASE: u64 = 0x5800_0000;

/// `src` of an `ld_imm64` loading a map value's address.
pub const PSEUDO_MAP_VALUE: u8 = 2;

/// Registers the `BPF_PSEUDO_MAP_VALUE` emulation on `vm`.
pub fn install(vm: &mut Vm<'_>) {
    vm.register_pseudo_load(PSEUDO_MAP_VALUE, load_address);
}

/// The address an `ld_imm64` with `src` = 2 at the current slot loads.
fn load_address(vm: &mut Vm<'_>, imm: i32, _high: u64) -> Result<u64, String> {
    let (f, slot) = vm.loading_at();
    address(vm.object(), f, slot, imm)
}

/// The address an `ld_imm64` with `src` = 2 and first `imm` at `slot` of
/// `f` loads (the walk check's symbolic run resolves it the same way).
pub fn address(object: &Object, f: Func, slot: usize, imm: i32) -> Result<u64, String> {
    let symbol = match f {
        Func::Entry => object.rodata_refs.get(&slot).copied(),
        Func::Callback(_) => None,
    }
    .ok_or_else(|| {
        format!("a map value address at slot {slot} without a relocation against .rodata")
    })?;
    let offset = symbol
        .checked_add_signed(i64::from(imm))
        .filter(|&o| o < object.rodata.len() as u64)
        .ok_or_else(|| {
            format!(
                "a .rodata address at offset {symbol} + {imm}, outside its {} bytes",
                object.rodata.len()
            )
        })?;
    Ok(RODATA_BASE + offset)
}

/// The `len` bytes at `addr` when they lie inside `.rodata`; None when
/// `addr` is not in `.rodata` at all.
pub fn read(object: &Object, addr: u64, len: usize) -> Option<Result<&[u8], String>> {
    let size = object.rodata.len() as u64;
    if !(RODATA_BASE..RODATA_BASE + size.max(1)).contains(&addr) || size == 0 {
        return None;
    }
    let at = (addr - RODATA_BASE) as usize;
    Some(
        object.rodata.get(at..at + len).ok_or_else(|| {
            format!("reads {len} bytes at .rodata offset {at}, past its {size} bytes")
        }),
    )
}
