#!/usr/bin/env bash
# setup-libs.sh
# The C libraries of the example bindings (example_bz2, example_yaml, example_expat) with their headers,
# which tests/test_example_*.py compile against: Debian's libbz2-dev, libyaml-dev and
# libexpat1-dev, installed with apt-get when missing.  Idempotent; needs root only when
# something is missing.  Without them the example tests skip, unless FFM_REQUIRE_EXAMPLE_LIBS
# is set (CI sets it): then they fail.
set -euo pipefail

PKGS=(libbz2-dev libyaml-dev libexpat1-dev)
log() { printf '[setup-libs.sh] %s\n' "$*" >&2; }

missing=()
for pkg in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  log "present: ${PKGS[*]}"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "missing: ${missing[*]}; run as root (apt-get install ${missing[*]})"
  exit 1
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
log "installed: ${missing[*]}"
