#!/usr/bin/env bash
# setup.sh TARGET_DIR
# The AArch64 test environment: qemu-user, a cross C compiler, and an aarch64 CPython 3.11
# sysroot made from Debian 12 arm64 .debs, run under qemu-user without binfmt_misc and
# without `dpkg --add-architecture` (a private apt configuration under TARGET_DIR/apt
# resolves the arm64 dependencies; the host's dpkg state is untouched).
# Idempotent: re-running is a fast smoke test.
# Needs: root (apt-get install of qemu-user and gcc-aarch64-linux-gnu), a Debian 12 host.
# Env overrides: MIRROR (default http://deb.debian.org/debian),
#                SECURITY_MIRROR (default http://deb.debian.org/debian-security), SUITE (bookworm)
# Result:  TARGET_DIR/sysroot                 extracted arm64 root (ld.so, libc, python3.11, stdlib)
#          TARGET_DIR/bin/python3.11-aarch64  wrapper: qemu-aarch64 -L sysroot sysroot/usr/bin/python3.11 "$@"
set -euo pipefail

T=${1:?usage: $0 TARGET_DIR}
mkdir -p "$T"; T=$(cd "$T" && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=${SUITE:-bookworm}
PKGS=(python3.11-minimal libpython3.11-stdlib)   # closure includes libc6, libffi8, libssl3, zlib1g, libexpat1, ...
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
log() { printf '[setup.sh %(%T)T] %s\n' -1 "$*" >&2; }

# 1. qemu user-mode emulator (no binfmt package pulled in) and the cross C compiler
if ! command -v qemu-aarch64 >/dev/null 2>&1 || ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
  log "installing qemu-user and gcc-aarch64-linux-gnu"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends qemu-user gcc-aarch64-linux-gnu \
    libc6-dev-arm64-cross >/dev/null
fi
QEMU=$(command -v qemu-aarch64)
log "qemu: $QEMU ($("$QEMU" --version | head -1))"

# 2. private arm64 apt configuration (host dpkg/apt state is untouched)
A=$T/apt
mkdir -p "$A"/state/lists/partial "$A"/cache/archives/partial "$A"/etc/{sources.list.d,preferences.d,apt.conf.d,trusted.gpg.d}
[ -e "$A/state/status" ] || : > "$A/state/status"   # empty dpkg status => full closure
cat > "$A/etc/sources.list" <<EOF
deb [arch=arm64 signed-by=$KEYRING] $MIRROR $SUITE main
deb [arch=arm64 signed-by=$KEYRING] $MIRROR $SUITE-updates main
deb [arch=arm64 signed-by=$KEYRING] $SECURITY_MIRROR $SUITE-security main
EOF
cat > "$A/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
APT::Sandbox::User "root";
Acquire::Languages "none";
Dir::State "$A/state";
Dir::State::status "$A/state/status";
Dir::Cache "$A/cache";
Dir::Etc "$A/etc";
Dir::Etc::sourcelist "$A/etc/sources.list";
Dir::Etc::sourceparts "$A/etc/sources.list.d";
Dir::Etc::preferencesparts "$A/etc/preferences.d";
Dir::Etc::parts "$A/etc/apt.conf.d";
Dir::Etc::trustedparts "$A/etc/trusted.gpg.d";
EOF
export APT_CONFIG=$A/apt.conf

# 3. resolve + download the arm64 dependency closure (≈37 debs, ≈15 MB); status file stays
#    empty so apt pulls in every dependency, not just what the host happens to lack.
if [ ! -f "$T/.debs.ok" ]; then
  log "apt-get update (arm64 private lists, ~9 MB)"
  apt-get update -qq
  log "downloading ${PKGS[*]} + dependencies (arm64)"
  apt-get install -y -qq --download-only "${PKGS[@]}" >/dev/null
  (cd "$A/cache/archives" && ls -1 ./*.deb) > "$T/.debs.ok"
  # drop the 50 MB lists + 70 MB pkgcache/srcpkgcache (keep the 15 MB of .debs)
  rm -rf "$A"/cache/*.bin "$A"/state/lists; mkdir -p "$A/state/lists/partial"
fi

# 4. extract into sysroot (built in a temp dir, then swapped in atomically)
if [ ! -f "$T/sysroot/.complete" ] || ! cmp -s "$T/.debs.ok" "$T/sysroot/.complete"; then
  log "extracting $(wc -l < "$T/.debs.ok") debs into $T/sysroot"
  rm -rf "$T/sysroot.tmp"; mkdir -p "$T/sysroot.tmp"
  for d in "$A"/cache/archives/*.deb; do dpkg-deb -x "$d" "$T/sysroot.tmp"; done
  cp "$T/.debs.ok" "$T/sysroot.tmp/.complete"
  rm -rf "$T/sysroot"; mv "$T/sysroot.tmp" "$T/sysroot"
fi

# 5. wrapper (qemu -L makes the ELF interpreter /lib/ld-linux-aarch64.so.1 and every
#    absolute open() resolve inside the sysroot first; no PYTHONHOME needed)
mkdir -p "$T/bin"
cat > "$T/bin/python3.11-aarch64" <<EOF
#!/bin/sh
exec "$QEMU" -L "$T/sysroot" "$T/sysroot/usr/bin/python3.11" "\$@"
EOF
chmod +x "$T/bin/python3.11-aarch64"

# 6. smoke test: ctypes/libffi, pythonapi, and mmap RW -> mprotect RX -> call aarch64 code
"$T/bin/python3.11-aarch64" - <<'PY'
import ctypes, mmap, platform, sys
assert platform.machine() == "aarch64", platform.machine()
libc = ctypes.CDLL(None)
assert libc.strlen(b"abc") == 3
f = ctypes.pythonapi.PyLong_FromLong; f.restype = ctypes.py_object; f.argtypes = [ctypes.c_long]
assert f(12345) == 12345
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
page = mmap.PAGESIZE
addr = libc.mmap(None, page, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
assert addr and addr != ctypes.c_void_p(-1).value
ctypes.memmove(addr, bytes.fromhex("40058052c0035fd6"), 8)   # mov w0,#42 ; ret
assert libc.mprotect(addr, page, mmap.PROT_READ | mmap.PROT_EXEC) == 0
r = ctypes.CFUNCTYPE(ctypes.c_int)(addr)()
assert r == 42, r
print(f"OK {platform.machine()} {sys.version.split()[0]} strlen=3 pythonapi=ok jit={r}")
PY
log "done: $T/bin/python3.11-aarch64"
