#!/usr/bin/env bash
# scripts/receivers.sh — install the alert receivers the jaga-outputs integration
# tests start on loopback: Alertmanager, rsyslog (with its TLS driver), an SMTP
# server (aiosmtpd), Prometheus, openssl (test certificates), and for the fleet
# test NATS (JetStream) and PostgreSQL. Idempotent:
# installs only what is missing, with apt, and starts nothing; each test starts
# and stops its own instances on free ports.
# Progress goes to stderr, prefixed "receivers:".
set -euo pipefail

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

say() { printf 'receivers: %s\n' "$*" >&2; }

# rsyslog-gnutls gives rsyslog's imtcp its TLS stream driver (RFC 5425 tests).
WANT=(prometheus-alertmanager rsyslog rsyslog-gnutls python3-aiosmtpd prometheus openssl nats-server postgresql)

missing=()
for p in "${WANT[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    say "all present (${WANT[*]})"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "ERROR: missing ${missing[*]} and no apt-get: install them by hand"
    exit 1
fi
root=()
[ "$(id -u)" -eq 0 ] || root=(sudo)

say "installing ${missing[*]}"
# A policy-rc.d that says no keeps the maintainer scripts from starting rsyslog,
# alertmanager or prometheus as system services; it is removed afterwards.
policy=/usr/sbin/policy-rc.d
added_policy=0
apt_log=$(mktemp "${TMPDIR:-/tmp}/jaga-receivers-apt.XXXXXX")
trap '[ "$added_policy" = 0 ] || "${root[@]}" rm -f "$policy"; rm -f "$apt_log"' EXIT
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${root[@]}" tee "$policy" >/dev/null
    "${root[@]}" chmod 755 "$policy"
    added_policy=1
fi
if ! { "${root[@]}" apt-get update -qq && "${root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    say "ERROR: apt-get install ${missing[*]} failed"
    exit 1
fi
say "installed ${missing[*]}"
