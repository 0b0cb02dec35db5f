//! Every raw `bpf(2)` command this crate issues, one function per command (Aya issues the
//! rest: object loads and the TCX/netlink attach itself):
//! - programs: `BPF_PROG_LOAD` (raw instruction loads), `BPF_PROG_TEST_RUN`,
//!   `BPF_PROG_GET_FD_BY_ID`;
//! - objects: `BPF_OBJ_GET_INFO_BY_FD` (programs and links), `BPF_OBJ_PIN`, `BPF_OBJ_GET`;
//! - the metadata map: `BPF_MAP_CREATE`, `BPF_MAP_UPDATE_ELEM`, `BPF_MAP_LOOKUP_ELEM`;
//! - links: `BPF_LINK_UPDATE`, `BPF_LINK_DETACH`.
//!
//! The attribute structs mirror the members of `union bpf_attr` and `struct bpf_prog_info` in
//! `include/uapi/linux/bpf.h`, with the kernel's names and layout (`#[repr(C)]`, 8-byte aligned
//! pointers). Each struct may stop before the kernel's own end: the kernel accepts a shorter
//! attribute and treats the missing tail as zero, so we declare only the members we use, in
//! order, and pass our own size.
//!
//! No struct has implicit padding: padding bytes are not initialized by Rust, and the kernel
//! refuses attributes with non-zero bytes where it expects zeros. Tail padding is an explicit
//! zeroed `_pad` member.
//!
//! Every function returns the plain `io::Error` of the syscall; callers add what they were
//! doing. Everything here is `pub(crate)`: the safe API lives in [`crate::program`],
//! [`crate::testrun`], [`crate::pins`] and [`crate::attach`].

use std::ffi::{CStr, CString};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `enum bpf_cmd` values used here.
pub(crate) const BPF_MAP_CREATE: libc::c_long = 0;
pub(crate) const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
pub(crate) const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
pub(crate) const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
pub(crate) const BPF_PROG_LOAD: libc::c_long = 5;
pub(crate) const BPF_OBJ_PIN: libc::c_long = 6;
pub(crate) const BPF_OBJ_GET: libc::c_long = 7;
pub(crate) const BPF_PROG_TEST_RUN: libc::c_long = 10;
pub(crate) const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
pub(crate) const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
pub(crate) const BPF_PROG_QUERY: libc::c_long = 16;
pub(crate) const BPF_LINK_UPDATE: libc::c_long = 29;
pub(crate) const BPF_LINK_DETACH: libc::c_long = 34;

/// `enum bpf_attach_type`: the TCX hooks.
pub(crate) const BPF_TCX_INGRESS: u32 = 46;
pub(crate) const BPF_TCX_EGRESS: u32 = 47;

/// `BPF_F_REPLACE`: update the link only if it still runs `old_prog_fd`.
pub(crate) const BPF_F_REPLACE: u32 = 1 << 2;
/// `enum bpf_map_type`: a plain array.
pub(crate) const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// `enum bpf_prog_type`: the TC classifier type.
pub(crate) const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;

/// `BPF_OBJ_NAME_LEN`.
pub(crate) const BPF_OBJ_NAME_LEN: usize = 16;

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `expected_attach_type`.
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_prog_load {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; BPF_OBJ_NAME_LEN],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
}

/// The `BPF_PROG_TEST_RUN` member (`test`) of `union bpf_attr`, complete as of Linux 6.x.
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_test_run {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    /// Explicit tail padding to the 8-byte alignment. It must be zero: the kernel rejects
    /// (EINVAL) a `bpf_attr` whose bytes past the command's last member are not, and
    /// implicit padding would carry whatever was on the stack.
    pub _pad: u32,
}

/// The `BPF_OBJ_GET_INFO_BY_FD` member (`info`) of `union bpf_attr`.
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_info {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
}

/// `struct bpf_prog_info`, up to `attach_btf_id` (Linux 5.16+ layout; `verified_insns` is the
/// field we are after).
#[repr(C, align(8))]
#[derive(Default, Debug, Clone)]
pub(crate) struct bpf_prog_info {
    pub type_: u32,
    pub id: u32,
    pub tag: [u8; 8],
    pub jited_prog_len: u32,
    pub xlated_prog_len: u32,
    pub jited_prog_insns: u64,
    pub xlated_prog_insns: u64,
    pub load_time: u64,
    pub created_by_uid: u32,
    pub nr_map_ids: u32,
    pub map_ids: u64,
    pub name: [u8; BPF_OBJ_NAME_LEN],
    pub ifindex: u32,
    /// `gpl_compatible:1` and 31 bits of padding.
    pub gpl_compatible_bits: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub nr_jited_ksyms: u32,
    pub nr_jited_func_lens: u32,
    pub jited_ksyms: u64,
    pub jited_func_lens: u64,
    pub btf_id: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub nr_func_info: u32,
    pub nr_line_info: u32,
    pub line_info: u64,
    pub jited_line_info: u64,
    pub nr_jited_line_info: u32,
    pub line_info_rec_size: u32,
    pub jited_line_info_rec_size: u32,
    pub nr_prog_tags: u32,
    pub prog_tags: u64,
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub recursion_misses: u64,
    pub verified_insns: u32,
    pub attach_btf_obj_id: u32,
    pub attach_btf_id: u32,
    /// Explicit tail padding (zero), as for [`bpf_attr_test_run`].
    pub _pad: u32,
}

/// The `BPF_MAP_CREATE` member of `union bpf_attr`, up to `map_name`.
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_map_create {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; BPF_OBJ_NAME_LEN],
    /// Explicit tail padding (zero), as for [`bpf_attr_test_run`].
    pub _pad: u32,
}

/// The member of `union bpf_attr` for the `BPF_MAP_*_ELEM` commands.
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_map_elem {
    pub map_fd: u32,
    /// Alignment of `key` (`__aligned_u64`); zero.
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// The member of `union bpf_attr` for `BPF_OBJ_PIN` and `BPF_OBJ_GET`.
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_obj {
    pub pathname: u64,
    pub bpf_fd: u32,
    pub file_flags: u32,
}

/// The member of `union bpf_attr` for the `BPF_*_GET_FD_BY_ID` commands.
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_get_id {
    pub id: u32,
    pub next_id: u32,
    pub open_flags: u32,
    /// Explicit tail padding (zero).
    pub _pad: u32,
}

/// The `link_update` member of `union bpf_attr` (`BPF_LINK_UPDATE`).
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_link_update {
    pub link_fd: u32,
    pub new_prog_fd: u32,
    pub flags: u32,
    pub old_prog_fd: u32,
}

/// The `link_detach` member of `union bpf_attr` (`BPF_LINK_DETACH`).
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_link_detach {
    pub link_fd: u32,
    /// Explicit tail padding (zero).
    pub _pad: u32,
}

/// The `query` member of `union bpf_attr` (`BPF_PROG_QUERY`).
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct bpf_attr_query {
    /// `target_fd` or `target_ifindex`.
    pub target_ifindex: u32,
    pub attach_type: u32,
    pub query_flags: u32,
    pub attach_flags: u32,
    pub prog_ids: u64,
    /// `prog_cnt` (or `count`).
    pub prog_cnt: u32,
    /// The kernel's unnamed 32-bit gap.
    pub _pad: u32,
    pub prog_attach_flags: u64,
    pub link_ids: u64,
    pub link_attach_flags: u64,
    pub revision: u64,
}

/// `struct bpf_link_info` up to the `tcx` member of its union (`ifindex`, `attach_type`),
/// with room for the union's larger members.
#[repr(C, align(8))]
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct bpf_link_info {
    pub type_: u32,
    pub id: u32,
    pub prog_id: u32,
    /// Alignment of the union (it holds `__aligned_u64` members); zero.
    pub _pad: u32,
    /// `tcx.ifindex` (the first word of the union).
    pub ifindex: u32,
    /// `tcx.attach_type`.
    pub attach_type: u32,
    /// The rest of the union, unused here.
    pub _rest: [u64; 4],
}

/// Issues `bpf(cmd, attr, size_of::<A>())` and returns the non-negative result.
///
/// # Safety
/// `attr` must be the attribute struct that `cmd` expects, and every pointer stored in it must
/// be valid for the access the kernel makes (reads of `*_size_in` bytes, writes of `log_size`
/// bytes, ...) for the duration of the call.
pub(crate) unsafe fn sys_bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: forwarded to the caller's contract; `attr` is a live, exclusively borrowed struct
    // of exactly `size_of::<A>()` bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut A as *mut libc::c_void,
            size_of::<A>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The outcome of a raw `BPF_PROG_LOAD`: the fd on success; the errno and the verifier log on
/// failure.
pub(crate) type ProgLoadResult = Result<OwnedFd, (io::Error, String)>;

/// Loads `insns` (8-byte eBPF instructions, host byte order) as a `BPF_PROG_TYPE_SCHED_CLS`
/// program under `license`, collecting the verifier log into a buffer of `log_size` bytes at
/// `log_level` (0 disables the log).
pub(crate) fn prog_load(
    insns: &[u8],
    license: &CStr,
    name: &str,
    log_level: u32,
    log_size: usize,
) -> ProgLoadResult {
    let mut log = vec![0u8; if log_level == 0 { 0 } else { log_size.max(1) }];
    let mut prog_name = [0u8; BPF_OBJ_NAME_LEN];
    // Kernel object names: at most 15 bytes plus NUL, of [A-Za-z0-9_.].
    for (dst, src) in prog_name
        .iter_mut()
        .zip(
            name.bytes()
                .filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.'),
        )
        .take(BPF_OBJ_NAME_LEN - 1)
    {
        *dst = src;
    }
    let mut attr = bpf_attr_prog_load {
        prog_type: BPF_PROG_TYPE_SCHED_CLS,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name,
        ..Default::default()
    };
    // SAFETY: `insns` holds `insn_cnt * 8` readable bytes, `license` is NUL-terminated, `log`
    // holds `log_size` writable bytes; all outlive the call.
    match unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) } {
        // SAFETY: BPF_PROG_LOAD returns a fresh fd that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(err) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err((err, String::from_utf8_lossy(&log[..end]).into_owned()))
        }
    }
}

/// What one `BPF_PROG_TEST_RUN` returned.
pub(crate) struct TestRunOutput {
    pub retval: u32,
    /// Average nanoseconds per repetition, as measured by the kernel.
    pub duration_ns: u32,
}

/// Issues `BPF_PROG_TEST_RUN` with `attr`, again when a signal interrupted it
/// (EINTR, up to five times): a signal reaching the process stops a test run.
///
/// # Safety
/// Every pointer in `attr` must be valid for its size for the whole call, as
/// `BPF_PROG_TEST_RUN` requires.
unsafe fn test_run(attr: &mut bpf_attr_test_run) -> io::Result<()> {
    let mut attempts = 0;
    loop {
        // SAFETY: the caller vouches for `attr`'s pointers.
        match unsafe { sys_bpf(BPF_PROG_TEST_RUN, attr) } {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) && attempts < 5 => attempts += 1,
            result => return result.map(drop),
        }
    }
}

/// Runs the program behind `fd` once on `data` with `BPF_PROG_TEST_RUN` and
/// returns its return value and the packet as the program left it (at most
/// `max_out` bytes).
pub(crate) fn prog_test_run_out(
    fd: BorrowedFd<'_>,
    data: &[u8],
    max_out: usize,
) -> io::Result<(u32, Vec<u8>)> {
    let mut out = vec![0u8; max_out];
    let mut attr = bpf_attr_test_run {
        prog_fd: fd.as_raw_fd() as u32,
        data_size_in: data.len() as u32,
        data_in: data.as_ptr() as u64,
        data_size_out: out.len() as u32,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ..Default::default()
    };
    // SAFETY: `data` holds `data_size_in` readable bytes and `out` `data_size_out` writable
    // ones, both outliving the call; `ctx_*` are null.
    unsafe { test_run(&mut attr) }?;
    out.truncate((attr.data_size_out as usize).min(max_out));
    Ok((attr.retval, out))
}

/// Runs the program behind `fd` on `data` (`repeat` times; 0 means once) with
/// `BPF_PROG_TEST_RUN`, discarding the output packet.
pub(crate) fn prog_test_run(
    fd: BorrowedFd<'_>,
    data: &[u8],
    repeat: u32,
) -> io::Result<TestRunOutput> {
    let mut attr = bpf_attr_test_run {
        prog_fd: fd.as_raw_fd() as u32,
        data_size_in: data.len() as u32,
        data_in: data.as_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: `data` holds `data_size_in` readable bytes and outlives the call; `data_out` and
    // `ctx_*` are null, so the kernel writes only into `attr`.
    unsafe { test_run(&mut attr) }?;
    Ok(TestRunOutput {
        retval: attr.retval,
        duration_ns: attr.duration,
    })
}

/// `BPF_OBJ_GET_INFO_BY_FD`: the kernel's info struct `I` (as much of it as `I` declares) for
/// the object behind `fd`.
///
/// # Safety
/// `I` must be a prefix of the info struct of the object's kind, laid out as the kernel's, and
/// its `Default` must leave every pointer member null (so the kernel copies nothing else out).
unsafe fn obj_info<I: Default>(fd: BorrowedFd<'_>) -> io::Result<I> {
    let mut info = I::default();
    let mut attr = bpf_attr_info {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<I>() as u32,
        info: &mut info as *mut I as u64,
    };
    // SAFETY: `info` is a writable `I` of `info_len` bytes; its pointer members are null (the
    // caller's contract).
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// Reads `struct bpf_prog_info` for the program behind `fd`.
pub(crate) fn prog_info(fd: BorrowedFd<'_>) -> io::Result<bpf_prog_info> {
    // SAFETY: `bpf_prog_info` mirrors the kernel's prefix; its pointer members default to null.
    unsafe { obj_info(fd) }
}

/// A fresh fd returned by a `bpf(2)` command.
fn owned_fd(ret: libc::c_long) -> OwnedFd {
    // SAFETY: the command returned a fresh fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

fn path_cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// `BPF_OBJ_GET_INFO_BY_FD` for a link.
pub(crate) fn link_info(fd: BorrowedFd<'_>) -> io::Result<bpf_link_info> {
    // SAFETY: `bpf_link_info` mirrors the kernel's prefix and holds no pointers the kernel
    // follows (the union's members we declare are plain numbers, zero by default).
    unsafe { obj_info(fd) }
}

/// `BPF_PROG_QUERY` of a TCX hook: the ids of the programs attached to `ifindex` at
/// `attach_type` ([`BPF_TCX_INGRESS`] or [`BPF_TCX_EGRESS`]), in the order they run.
pub(crate) fn prog_query_tcx(ifindex: u32, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = bpf_attr_query {
        target_ifindex: ifindex,
        attach_type,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: `ids` is writable for prog_cnt u32s and outlives the call; the other pointers are
    // null, so the kernel writes nothing else.
    unsafe { sys_bpf(BPF_PROG_QUERY, &mut attr) }?;
    ids.truncate((attr.prog_cnt as usize).min(64));
    Ok(ids)
}

/// `BPF_MAP_CREATE` of an ARRAY map named `name` with 4-byte keys.
pub(crate) fn map_create_array(
    name: &str,
    value_size: u32,
    max_entries: u32,
) -> io::Result<OwnedFd> {
    let mut map_name = [0u8; BPF_OBJ_NAME_LEN];
    for (dst, src) in map_name
        .iter_mut()
        .zip(name.bytes())
        .take(BPF_OBJ_NAME_LEN - 1)
    {
        *dst = src;
    }
    let mut attr = bpf_attr_map_create {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size,
        max_entries,
        map_name,
        ..Default::default()
    };
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) }.map(owned_fd)
}

/// `BPF_MAP_UPDATE_ELEM` of element `key` of an array map whose values are `value.len()` bytes.
pub(crate) fn map_update_elem(fd: BorrowedFd<'_>, key: u32, value: &[u8]) -> io::Result<()> {
    let mut attr = bpf_attr_map_elem {
        map_fd: fd.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: value.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: key and value are readable for key_size and value_size bytes during the call (the
    // kernel reads value_size bytes; callers pass exactly the map's value size).
    unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }?;
    Ok(())
}

/// `BPF_MAP_LOOKUP_ELEM` of element `key` of an array map with `value_size`-byte values.
///
/// The kernel writes the map's own value size, so `value_size` must be the size the map was
/// created with: callers check it with [`map_value_size`] first.
pub(crate) fn map_lookup_elem(
    fd: BorrowedFd<'_>,
    key: u32,
    value_size: u32,
) -> io::Result<Vec<u8>> {
    // An array map's key is its u32 index; an index past its end is ENOENT, an error here.
    map_lookup_key(fd, &key.to_ne_bytes(), value_size)?
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
}

/// The result of a command that fails with ENOENT when there is no such key: `Some(out)` on
/// success, `None` for ENOENT.
fn unless_absent<T>(ret: io::Result<libc::c_long>, out: T) -> io::Result<Option<T>> {
    match ret {
        Ok(_) => Ok(Some(out)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `BPF_MAP_LOOKUP_ELEM` with a key of the map's key size (`key.len()`) and `value_size`-byte
/// values (the map's own, as for [`map_lookup_elem`]); `None` when the key is absent.
pub(crate) fn map_lookup_key(
    fd: BorrowedFd<'_>,
    key: &[u8],
    value_size: u32,
) -> io::Result<Option<Vec<u8>>> {
    let mut value = vec![0u8; value_size as usize];
    let mut attr = bpf_attr_map_elem {
        map_fd: fd.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `key` is readable for the map's key size (callers pass exactly that many bytes),
    // `value` writable for its value size (see above).
    unless_absent(unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) }, value)
}

/// `BPF_MAP_GET_NEXT_KEY` of a map with `key_size`-byte keys: the key after `key` (the first
/// key for `None`), `None` after the last.
pub(crate) fn map_next_key(
    fd: BorrowedFd<'_>,
    key: Option<&[u8]>,
    key_size: u32,
) -> io::Result<Option<Vec<u8>>> {
    let mut next = vec![0u8; key_size as usize];
    // `next_key` sits where the other commands have `value`.
    let mut attr = bpf_attr_map_elem {
        map_fd: fd.as_raw_fd() as u32,
        key: key.map_or(0, |k| k.as_ptr() as u64),
        value: next.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `key` (when given) is readable and `next` writable for the map's key size.
    unless_absent(unsafe { sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) }, next)
}

/// Type, key size, value size and `max_entries` of the map behind `fd`.
pub(crate) fn map_shape(fd: BorrowedFd<'_>) -> io::Result<[u32; 4]> {
    /// `struct bpf_map_info` up to `map_flags`.
    #[repr(C, align(8))]
    #[derive(Default)]
    struct bpf_map_info {
        type_: u32,
        id: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    }
    // SAFETY: `bpf_map_info` mirrors the kernel's prefix and holds no pointers.
    let info: bpf_map_info = unsafe { obj_info(fd) }?;
    Ok([info.type_, info.key_size, info.value_size, info.max_entries])
}

/// The value size and type of the map behind `fd` (`BPF_OBJ_GET_INFO_BY_FD`).
pub(crate) fn map_value_size(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let [type_, _, value_size, _] = map_shape(fd)?;
    Ok((type_, value_size))
}

/// `BPF_OBJ_PIN`: pins the object behind `fd` at `path` (on bpffs).
pub(crate) fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = path_cstring(path)?;
    let mut attr = bpf_attr_obj {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        file_flags: 0,
    };
    // SAFETY: `c` is NUL-terminated and outlives the call.
    unsafe { sys_bpf(BPF_OBJ_PIN, &mut attr) }?;
    Ok(())
}

/// `BPF_OBJ_GET`: opens the object pinned at `path`.
pub(crate) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = path_cstring(path)?;
    let mut attr = bpf_attr_obj {
        pathname: c.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `c` is NUL-terminated and outlives the call.
    unsafe { sys_bpf(BPF_OBJ_GET, &mut attr) }.map(owned_fd)
}

/// `BPF_PROG_GET_FD_BY_ID`.
pub(crate) fn prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = bpf_attr_get_id {
        id,
        ..Default::default()
    };
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }.map(owned_fd)
}

/// `BPF_LINK_UPDATE` with `BPF_F_REPLACE`: swaps the program of `link` from `old` to `new` in
/// one step, failing if the link no longer runs `old`.
pub(crate) fn link_update(
    link: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    old: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut attr = bpf_attr_link_update {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: new.as_raw_fd() as u32,
        flags: BPF_F_REPLACE,
        old_prog_fd: old.as_raw_fd() as u32,
    };
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf(BPF_LINK_UPDATE, &mut attr) }?;
    Ok(())
}

/// `BPF_LINK_DETACH`.
pub(crate) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = bpf_attr_link_detach {
        link_fd: link.as_raw_fd() as u32,
        ..Default::default()
    };
    // SAFETY: the attribute holds no pointers.
    unsafe { sys_bpf(BPF_LINK_DETACH, &mut attr) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// Offsets that must match `include/uapi/linux/bpf.h` byte for byte.
    #[test]
    fn attr_layouts_match_the_kernel_headers() {
        assert_eq!(offset_of!(bpf_attr_prog_load, insns), 8);
        assert_eq!(offset_of!(bpf_attr_prog_load, log_buf), 32);
        assert_eq!(offset_of!(bpf_attr_prog_load, prog_name), 48);
        assert_eq!(offset_of!(bpf_attr_prog_load, expected_attach_type), 68);
        assert_eq!(size_of::<bpf_attr_prog_load>(), 72);

        assert_eq!(offset_of!(bpf_attr_test_run, data_in), 16);
        assert_eq!(offset_of!(bpf_attr_test_run, repeat), 32);
        assert_eq!(offset_of!(bpf_attr_test_run, duration), 36);
        assert_eq!(offset_of!(bpf_attr_test_run, ctx_in), 48);
        assert_eq!(offset_of!(bpf_attr_test_run, flags), 64);
        assert_eq!(offset_of!(bpf_attr_test_run, batch_size), 72);
        assert_eq!(size_of::<bpf_attr_test_run>(), 80);

        assert_eq!(size_of::<bpf_attr_info>(), 16);

        assert_eq!(offset_of!(bpf_prog_info, xlated_prog_len), 20);
        assert_eq!(offset_of!(bpf_prog_info, name), 64);
        assert_eq!(offset_of!(bpf_prog_info, netns_dev), 88);
        assert_eq!(offset_of!(bpf_prog_info, btf_id), 128);
        assert_eq!(offset_of!(bpf_prog_info, prog_tags), 184);
        assert_eq!(offset_of!(bpf_prog_info, verified_insns), 216);
        assert_eq!(size_of::<bpf_prog_info>(), 232);

        assert_eq!(offset_of!(bpf_attr_map_create, map_name), 28);
        assert_eq!(size_of::<bpf_attr_map_create>(), 48);
        assert_eq!(offset_of!(bpf_attr_map_elem, key), 8);
        assert_eq!(offset_of!(bpf_attr_map_elem, flags), 24);
        assert_eq!(size_of::<bpf_attr_map_elem>(), 32);
        assert_eq!(offset_of!(bpf_attr_obj, bpf_fd), 8);
        assert_eq!(offset_of!(bpf_attr_obj, file_flags), 12);
        assert_eq!(size_of::<bpf_attr_get_id>(), 16);
        assert_eq!(offset_of!(bpf_attr_link_update, old_prog_fd), 12);
        assert_eq!(size_of::<bpf_attr_link_detach>(), 8);
        assert_eq!(offset_of!(bpf_attr_query, prog_ids), 16);
        assert_eq!(offset_of!(bpf_attr_query, prog_cnt), 24);
        assert_eq!(offset_of!(bpf_attr_query, link_ids), 40);
        assert_eq!(size_of::<bpf_attr_query>(), 64);
        assert_eq!(offset_of!(bpf_link_info, prog_id), 8);
        assert_eq!(offset_of!(bpf_link_info, ifindex), 16);
        assert_eq!(offset_of!(bpf_link_info, attach_type), 20);
    }
}
