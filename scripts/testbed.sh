#!/usr/bin/env bash
# scripts/testbed.sh — prepare the machine for jaga's tests. Idempotent.
#
# On a Debian machine that has none of it, this:
#   1. installs the Debian packages the tests need (only those missing);
#   2. starts a Docker engine (Debian's docker.io) if none answers;
#   3. builds the offline test images (no registry is ever contacted):
#        jaga-test/busybox:latest  Debian's static busybox + applet symlinks
#        jaga-test/nginx:latest    Debian's nginx + its libraries, static site
#      each rebuilt only when its content hash (label jaga.testbed.hash) changed;
#   4. smoke-tests both images (and so the engine's networking).
# Progress goes to stderr, prefixed "testbed:".
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
IMAGES_DIR="$SCRIPT_DIR/images"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

DOCKERD_LOG=/var/log/jaga-testbed-dockerd.log
BUSYBOX_IMAGE=jaga-test/busybox:latest
NGINX_IMAGE=jaga-test/nginx:latest
HASH_LABEL=jaga.testbed.hash
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENGINE_WAIT_SECS=60
# Applets the tests use; every other applet of the binary is linked as well.
BUSYBOX_APPLETS=(sh sleep cat dd head yes nc httpd wget ls echo true seq tail top)

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing; run as root"
    SUDO=(sudo)
fi
as_root() { "${SUDO[@]}" "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/jaga-testbed.XXXXXX")
VERIFY_CONTAINERS=()
POLICY_RC_CREATED=0
cleanup() {
    local c
    for c in "${VERIFY_CONTAINERS[@]}"; do
        docker rm -f "$c" >/dev/null 2>&1 || true
    done
    if [ "$POLICY_RC_CREATED" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# One testbed run at a time (concurrent test runs would race on images).
exec 9>"${TMPDIR:-/tmp}/jaga-testbed.lock"
flock 9

engine_version() { timeout 15 docker version --format '{{.Server.Version}}' 2>/dev/null; }
engine_up() { command -v docker >/dev/null 2>&1 && engine_version >/dev/null; }

# ---------------------------------------------------------------- packages
pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

cgroups_mounted() { awk '$3 == "cgroup" || $3 == "cgroup2" {found=1} END {exit !found}' /proc/mounts; }

ensure_packages() {
    # Debian 12's nginx-light is only a meta package (nginx + the echo module);
    # the plain nginx binary is in "nginx", which is all the image needs.
    local want=(busybox-static nginx prometheus curl ca-certificates)
    if ! engine_up && ! command -v dockerd >/dev/null 2>&1; then
        # Only when no Docker at all: docker.io conflicts with docker-ce/containerd.io.
        want+=(docker.io iptables)
    fi
    # Without systemd nothing may have mounted the cgroup hierarchies dockerd
    # needs; docker.io only recommends cgroupfs-mount.
    if ! cgroups_mounted; then want+=(cgroupfs-mount); fi
    # Debian's docker.io (20.10) cannot start any container when the kernel has
    # AppArmor enabled but apparmor_parser is missing (moby#44900, fixed in 23.0);
    # "apparmor" is only a Recommends of docker.io, so --no-install-recommends skips it.
    if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] &&
        ! command -v apparmor_parser >/dev/null 2>&1; then
        want+=(apparmor)
    fi
    local missing=() p
    for p in "${want[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "packages: all present (${want[*]})"
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get: this script needs Debian"
    log "packages: installing ${missing[*]}"
    log "apt-get update"
    as_root apt-get update -qq || die "apt-get update failed"
    for p in "${missing[@]}"; do
        local cand
        cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
        if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
            die "package '$p' has no installation candidate in the configured apt sources"
        fi
    done
    # Keep the packages' daemons (nginx on :80, prometheus on :9090, dockerd) from
    # being started by their maintainer scripts; this script starts what it needs.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1 || {
        tail -n 30 "$WORK/apt.log" >&2
        die "apt-get install ${missing[*]} failed"
    }
    if [ "$POLICY_RC_CREATED" = 1 ]; then
        as_root rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=0
    fi
    log "packages: installed ${missing[*]}"
}

# ------------------------------------------------------------------ engine
fix_iptables_backend() {
    # dockerd needs a working iptables; Debian defaults to iptables-nft. If the
    # kernel lacks nf_tables but has the legacy tables, switch to legacy.
    command -v iptables >/dev/null 2>&1 || return 0
    if as_root iptables -t nat -S >/dev/null 2>&1; then return 0; fi
    if command -v iptables-legacy >/dev/null 2>&1 && as_root iptables-legacy -t nat -S >/dev/null 2>&1; then
        log "iptables (nft backend) does not work here; switching to iptables-legacy"
        as_root update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
        as_root update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null 2>&1 || true
    else
        log "warning: 'iptables -t nat -S' fails with every backend; dockerd may not start"
    fi
}

dockerd_pids() { # pids of processes named dockerd (no pidof/pgrep dependency)
    local f
    for f in /proc/[0-9]*/comm; do
        [ "$(cat "$f" 2>/dev/null)" = dockerd ] && { f=${f#/proc/}; printf '%s ' "${f%/comm}"; }
    done
    return 0
}
dockerd_running() { [ -n "$(dockerd_pids)" ]; }

start_engine() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        log "starting docker via systemd"
        as_root systemctl start docker.service || true
        return
    fi
    if dockerd_running; then
        log "dockerd (pid $(dockerd_pids)) is running but not answering yet; waiting"
        return
    fi
    fix_iptables_backend
    if ! cgroups_mounted && command -v cgroupfs-mount >/dev/null 2>&1; then
        log "no cgroup hierarchy mounted; running cgroupfs-mount"
        as_root cgroupfs-mount || log "warning: cgroupfs-mount failed"
    fi
    # A pid file left by a killed dockerd blocks start-up when its pid got reused.
    local pidfile=/var/run/docker.pid oldpid
    if [ -f "$pidfile" ]; then
        oldpid=$(cat "$pidfile" 2>/dev/null || true)
        if [ -z "$oldpid" ] || [ "$(cat "/proc/$oldpid/comm" 2>/dev/null || true)" != dockerd ]; then
            as_root rm -f "$pidfile"
        fi
    fi
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    # dockerd starts its own containerd (under /run/docker/containerd) when none
    # is configured. setsid: keep it out of our process group and session so it
    # survives this script, its caller, and job-control kills.
    # 9>&-: dockerd must not inherit (and so hold forever) our lock.
    "${SUDO[@]}" sh -c 'exec setsid nohup dockerd >"$1" 2>&1 </dev/null' sh "$DOCKERD_LOG" 9>&- &
    disown || true
}

ensure_engine() {
    local v
    if v=$(engine_version); then
        log "docker engine answers (server $v)"
        return
    fi
    command -v docker >/dev/null 2>&1 || die "docker CLI not found even after installing docker.io"
    start_engine
    local i why="no Docker engine answers after ${ENGINE_WAIT_SECS}s (docker info fails)"
    for ((i = 0; i < ENGINE_WAIT_SECS; i++)); do
        if v=$(engine_version); then
            log "docker engine up after ${i}s (server $v)"
            return
        fi
        if [ "$i" -ge 3 ] && ! dockerd_running && [ ! -d /run/systemd/system ]; then
            why="dockerd exited after ${i}s without answering" # no point waiting further
            break
        fi
        sleep 1
    done
    printf 'testbed: ERROR: %s; tail of %s:\n' "$why" "$DOCKERD_LOG" >&2
    if [ -d /run/systemd/system ]; then
        as_root journalctl -u docker.service -n 30 --no-pager >&2 2>/dev/null || true
    else
        as_root tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
    fi
    exit 1
}

# ------------------------------------------------------------------ images
# Pack a staged root filesystem deterministically; the tar's hash (plus the
# import changes) is the image's content hash.
pack_rootfs() { # rootdir tarfile
    chmod 755 "$1"
    tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 --format=gnu \
        -C "$1" -cf "$2" .
}

# import_if_changed image tarfile change...
import_if_changed() {
    local image=$1 tarfile=$2
    shift 2
    local changes=("$@") args=() c hash have old_id new_id
    hash=$( { sha256sum <"$tarfile"; printf '%s\n' "${changes[@]}"; } | sha256sum | cut -c1-32)
    have=$(docker image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$image" 2>/dev/null || true)
    if [ "$have" = "$hash" ]; then
        log "image $image up to date ($HASH_LABEL=$hash)"
        return
    fi
    old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
    for c in "${changes[@]}"; do args+=(--change "$c"); done
    args+=(--change "LABEL $HASH_LABEL=$hash")
    log "image $image: ${have:+inputs changed, }building (hash $hash)"
    new_id=$(docker import "${args[@]}" --message "built by jaga scripts/testbed.sh" "$tarfile" "$image")
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
        # Drop the superseded image unless a container still uses it.
        docker rmi "$old_id" >/dev/null 2>&1 || true
    fi
}

build_busybox() {
    local bb=/bin/busybox root="$WORK/busybox-root" a
    [ -x "$bb" ] || die "$bb missing (package busybox-static)"
    file_is_static "$bb" || die "$bb is not statically linked (install busybox-static, not busybox)"
    mkdir -p "$root"/{bin,etc,root,tmp,var/www,proc,sys,dev}
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    cp "$bb" "$root/bin/busybox"
    for a in $("$bb" --list) "${BUSYBOX_APPLETS[@]}"; do
        case "$a" in busybox | */*) continue ;; esac
        ln -sfn busybox "$root/bin/$a"
    done
    for a in "${BUSYBOX_APPLETS[@]}"; do
        [ -L "$root/bin/$a" ] || die "busybox lacks applet '$a'"
    done
    ln -s bin "$root/sbin"
    mkdir -p "$root/usr"
    ln -s ../bin "$root/usr/bin"
    ln -s ../bin "$root/usr/sbin"
    install -m 644 "$IMAGES_DIR/busybox/passwd" "$root/etc/passwd"
    install -m 644 "$IMAGES_DIR/busybox/group" "$root/etc/group"
    pack_rootfs "$root" "$WORK/busybox.tar"
    import_if_changed "$BUSYBOX_IMAGE" "$WORK/busybox.tar" \
        'CMD ["/bin/sh"]' \
        "ENV PATH=$DEFAULT_PATH"
}

file_is_static() { ! ldd "$1" >/dev/null 2>&1; }

# copy_with_path src root: copy file (dereferenced) to the same path under root.
copy_with_path() {
    mkdir -p "$2$(dirname "$1")"
    cp -L "$1" "$2$1"
}

build_nginx() {
    local nginx=/usr/sbin/nginx root="$WORK/nginx-root" lib d
    [ -x "$nginx" ] || die "$nginx missing (package nginx)"
    [ -f /etc/nginx/mime.types ] || die "/etc/nginx/mime.types missing (package nginx-common)"
    copy_with_path "$nginx" "$root"
    # Every library ldd lists, at the same path, plus the dynamic loader.
    while read -r lib; do
        [ -n "$lib" ] || continue
        [ -e "$lib" ] || die "ldd lists $lib for $nginx but it does not exist"
        copy_with_path "$lib" "$root"
    done < <(ldd "$nginx" | awk '$2 == "=>" && $3 ~ /^\// {print $3; next} $1 ~ /^\// {print $1}')
    mkdir -p "$root/etc/nginx" "$root/var/www/html" "$root/var/log/nginx" "$root/run" "$root/tmp" \
        "$root/var/lock" "$root/proc" "$root/sys" "$root/dev"
    for d in body fastcgi proxy scgi uwsgi; do mkdir -p "$root/var/lib/nginx/$d"; done
    chmod 1777 "$root/tmp"
    install -m 644 /etc/nginx/mime.types "$root/etc/nginx/mime.types"
    install -m 644 "$IMAGES_DIR/nginx/nginx.conf" "$root/etc/nginx/nginx.conf"
    install -m 644 "$IMAGES_DIR/nginx/index.html" "$root/var/www/html/index.html"
    install -m 644 "$IMAGES_DIR/nginx/passwd" "$root/etc/passwd"
    install -m 644 "$IMAGES_DIR/nginx/group" "$root/etc/group"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
    pack_rootfs "$root" "$WORK/nginx.tar"
    import_if_changed "$NGINX_IMAGE" "$WORK/nginx.tar" \
        'CMD ["/usr/sbin/nginx","-g","daemon off;"]' \
        "ENV PATH=$DEFAULT_PATH" \
        'EXPOSE 80/tcp'
}

# ------------------------------------------------------------------ checks
verify_busybox() {
    local out
    out=$(timeout 60 docker run --rm "$BUSYBOX_IMAGE" sh -c 'echo hello | cat; seq 1 3 | tail -n 1' 2>&1) ||
        die "busybox image does not run: $out"
    [ "$out" = "$(printf 'hello\n3')" ] || die "busybox image gave unexpected output: $out"
    log "verified $BUSYBOX_IMAGE (sh, cat, seq, tail)"
}

verify_nginx() {
    local name="jaga-testbed-verify-$$" port="" body="" logs i
    VERIFY_CONTAINERS+=("$name")
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" -p 127.0.0.1::80 "$NGINX_IMAGE" >/dev/null ||
        die "cannot start a container from $NGINX_IMAGE"
    port=$(docker port "$name" 80/tcp | head -n 1 | sed 's/.*://')
    [ -n "$port" ] || die "no published port for the nginx verification container"
    for ((i = 0; i < 100; i++)); do
        if body=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/users/?id=SELECT+*+FROM+users" 2>/dev/null); then
            break
        fi
        body=""
        sleep 0.1
    done
    if [ -z "$body" ]; then
        docker logs "$name" >&2 2>&1 || true
        die "nginx container on 127.0.0.1:$port does not answer /users/"
    fi
    local code_root code_missing
    code_root=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/")
    code_missing=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/no-such-page")
    [ "$code_root" = 200 ] || die "nginx GET / returned $code_root, want 200"
    [ "$code_missing" = 404 ] || die "nginx GET /no-such-page returned $code_missing, want 404"
    # Combined format: IP - user [time] "request" status bytes "referer" "agent"
    local re='^[0-9a-f.:]+ - - \[[^]]+\] "GET /users/\?id=SELECT\+\*\+FROM\+users HTTP/1\.1" 200 [0-9]+ "-" "curl/'
    for ((i = 0; i < 50; i++)); do
        logs=$(docker logs "$name" 2>/dev/null || true)
        if grep -Eq "$re" <<<"$logs"; then break; fi
        sleep 0.1
    done
    grep -Eq "$re" <<<"$logs" || {
        docker logs "$name" >&2 2>&1 || true
        die "nginx container's stdout lacks a combined-format access line"
    }
    docker rm -f "$name" >/dev/null 2>&1 || true
    log "verified $NGINX_IMAGE (GET / 200, 404 otherwise, /users/?query 200, access log on stdout)"
}

# -------------------------------------------------------------------- main
main() {
    local t0=$SECONDS v
    log "preparing test bed (scripts at $SCRIPT_DIR)"
    ensure_packages
    ensure_engine
    build_busybox
    build_nginx
    verify_busybox
    verify_nginx
    v=$(engine_version)
    log "ready (docker $v, images: $BUSYBOX_IMAGE $NGINX_IMAGE) in $((SECONDS - t0))s"
}

main "$@"
