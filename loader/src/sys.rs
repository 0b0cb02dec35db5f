//! Thin wrappers over the `bpf(2)` syscall for the three commands this crate issues itself:
//! `BPF_PROG_LOAD` (raw instruction loads), `BPF_PROG_TEST_RUN` and `BPF_OBJ_GET_INFO_BY_FD`.
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
//! Everything here is `pub(crate)`: the safe API lives in [`crate::program`] and
//! [`crate::testrun`].

use std::ffi::CStr;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `enum bpf_cmd` values used here.
pub(crate) const BPF_PROG_LOAD: libc::c_long = 5;
pub(crate) const BPF_PROG_TEST_RUN: libc::c_long = 10;
pub(crate) const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

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
    // A signal reaching the process stops a test run with EINTR; run it again.
    let mut attempts = 0;
    loop {
        // SAFETY: `data` holds `data_size_in` readable bytes and outlives the call; `data_out`
        // and `ctx_*` are null, so the kernel writes only into `attr`.
        match unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) } {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) && attempts < 5 => attempts += 1,
            result => {
                result?;
                break;
            }
        };
    }
    Ok(TestRunOutput {
        retval: attr.retval,
        duration_ns: attr.duration,
    })
}

/// Reads `struct bpf_prog_info` for the program behind `fd`.
pub(crate) fn prog_info(fd: BorrowedFd<'_>) -> io::Result<bpf_prog_info> {
    let mut info = bpf_prog_info::default();
    let mut attr = bpf_attr_info {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<bpf_prog_info>() as u32,
        info: &mut info as *mut bpf_prog_info as u64,
    };
    // SAFETY: `info` is a writable `bpf_prog_info` of `info_len` bytes; every pointer member in
    // it is null, so the kernel copies nothing else out.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
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
    }
}
