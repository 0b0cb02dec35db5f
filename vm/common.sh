# Shared by the vm/ scripts (sourced, not run): the cache directory and small helpers.
#
# The cache holds what the enclave VM boots from and is reused across runs:
#   $LAGIC_VM_CACHE/linux-image-VERSION/  a Debian kernel package, unpacked (never installed)
#   $LAGIC_VM_CACHE/kernel               -> linux-image-VERSION (the one in use)
#   $LAGIC_VM_CACHE/vmlinuz              -> kernel/boot/vmlinuz-VERSION
#   $LAGIC_VM_CACHE/vmlinux              the kernel proper, decompressed (QEMU boots it via PVH)
#   $LAGIC_VM_CACHE/model/               the generated model (vm/build)
#   $LAGIC_VM_CACHE/initramfs.img        the initramfs (vm/build)
# `lagic lab up --vm` reads vmlinux and initramfs.img from the same place by default.

LAGIC_VM_CACHE="${LAGIC_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/lagic/vm}"

say() { echo "$(basename "$0"): $*" >&2; }
die() { say "$*"; exit 2; }

# apt-get, waiting for another apt or dpkg run to finish instead of failing on its lock.
apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}

# Runs `apt-get update` at most once per invocation of a script (and its children).
apt_update_once() {
  if [ -z "${LAGIC_VM_APT_UPDATED:-}" ]; then
    say "apt-get update"
    apt_get update -qq
    export LAGIC_VM_APT_UPDATED=1
  fi
}
