#!/usr/bin/env bash
# scripts/receivers.sh — install the alert receivers the jaga-outputs integration
# tests start on loopback: Alertmanager, rsyslog (with its TLS driver), an SMTP
# server (aiosmtpd) and Prometheus. Idempotent: installs only what is missing,
# with apt, and starts nothing; each test starts and stops its own instances.
# Progress goes to stderr, prefixed "receivers:".
set -euo pipefail

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

log() { printf 'receivers: %s\n' "$*" >&2; }
die() { printf 'receivers: ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing; run as root"
    SUDO=(sudo)
fi
as_root() { "${SUDO[@]}" "$@"; }

# rsyslog-gnutls gives rsyslog's imtcp its TLS stream driver (RFC 5425 tests).
WANT=(prometheus-alertmanager rsyslog rsyslog-gnutls python3-aiosmtpd prometheus openssl)

pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${WANT[@]}"; do pkg_installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -eq 0 ]; then
    log "all present (${WANT[*]})"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get: install them by hand"

log "installing ${missing[*]}"
as_root apt-get update -qq || die "apt-get update failed"

# Keep the maintainer scripts from starting rsyslog, alertmanager or prometheus
# as system services: the tests run their own instances on free ports.
policy_created=0
apt_log=$(mktemp "${TMPDIR:-/tmp}/jaga-receivers-apt.XXXXXX")
cleanup() {
    if [ "$policy_created" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d || true; fi
    rm -f "$apt_log"
}
trap cleanup EXIT
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
fi
as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1 || {
    tail -n 30 "$apt_log" >&2
    die "apt-get install ${missing[*]} failed"
}
log "installed ${missing[*]}"
