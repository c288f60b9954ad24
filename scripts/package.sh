#!/usr/bin/env bash
# scripts/package.sh — jaga as it is installed: one static release binary,
# built once, then packed as
#   - the container image jaga:<version> and jaga:latest (FROM scratch,
#     packaging/container), built offline;
#   - the Debian package target/package/jaga_<version>_amd64.deb
#     (packaging/deb, packaging/systemd), staged and built with dpkg-deb.
# Usage: scripts/package.sh [--skip-build] [--no-image] [--no-deb]
# Progress goes to stderr, prefixed "package:"; timings at the end.
set -euo pipefail

cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TARGET=x86_64-unknown-linux-gnu
BIN="$ROOT/target/$TARGET/release/jaga"   # as built; $OUT/jaga is shipped
OUT="$ROOT/target/package"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

say() { printf 'package: %s\n' "$*" >&2; }
die() { printf 'package: ERROR: %s\n' "$*" >&2; exit 1; }

build=1 image=1 deb=1
for arg in "$@"; do
    case "$arg" in
    --skip-build) build=0 ;;
    --no-image) image=0 ;;
    --no-deb) deb=0 ;;
    *) die "unknown argument '$arg' (use --skip-build, --no-image, --no-deb)" ;;
    esac
done

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

t0=$SECONDS
if [ "$build" = 1 ]; then
    # glibc linked statically (crt-static) so the binary runs FROM scratch and
    # on any glibc distribution. The explicit --target keeps build scripts and
    # proc-macros dynamic (a static proc-macro cannot be loaded).
    say "building the static release binary (target $TARGET)"
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo build --release --locked --target "$TARGET" -p jaga
fi
[ -x "$BIN" ] || die "$BIN is missing: run without --skip-build"
# Static (static-pie included): no shared library needed, no interpreter.
if readelf -d "$BIN" | grep -q '(NEEDED)' || readelf -l "$BIN" | grep -q 'INTERP'; then
    die "$BIN is dynamically linked: $(ldd "$BIN" | tr '\n' ' ')"
fi
VERSION=$("$BIN" --version | awk '{print $2}')
[ -n "$VERSION" ] || die "'$BIN --version' printed no version"
# What is shipped: without its symbol tables (panics still name functions).
mkdir -p "$OUT"
strip -o "$OUT/jaga" "$BIN" || die "cannot strip $BIN (package binutils)"
BIN="$OUT/jaga"
t_build=$((SECONDS - t0))
say "binary: $BIN, $(stat -c %s "$BIN") bytes, $("$BIN" --version)"

# ------------------------------------------------------------------ image
build_image() {
    command -v docker >/dev/null 2>&1 || die "no docker CLI: run scripts/testbed.sh first"
    [ -s "$CA_BUNDLE" ] || die "$CA_BUNDLE is missing (package ca-certificates)"
    local ctx="$OUT/image"
    rm -rf "$ctx"
    mkdir -p "$ctx"
    cp packaging/container/Dockerfile packaging/container/jaga.toml "$ctx/"
    cp "$BIN" "$ctx/jaga"
    cp -L "$CA_BUNDLE" "$ctx/ca-certificates.crt"
    say "building image jaga:$VERSION from $ctx"
    # The classic builder: FROM scratch needs no registry.
    DOCKER_BUILDKIT=0 docker build -q -t "jaga:$VERSION" -t jaga:latest "$ctx" >"$OUT/image.log" 2>&1 ||
        { cat "$OUT/image.log" >&2; die "docker build of jaga:$VERSION failed"; }
    say "image jaga:$VERSION: $(docker image inspect -f '{{.Size}}' "jaga:$VERSION") bytes"
}

# -------------------------------------------------------------------- deb
build_deb() {
    command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb is missing (package dpkg)"
    local stage="$OUT/deb/jaga" doc
    rm -rf "$OUT/deb"
    doc="$stage/usr/share/doc/jaga"
    mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/jaga" \
        "$doc" "$stage/usr/share/man/man1" "$stage/usr/share/bash-completion/completions" \
        "$stage/usr/share/zsh/vendor-completions" "$stage/usr/share/fish/vendor_completions.d"
    install -m 0755 "$BIN" "$stage/usr/bin/jaga"
    install -m 0644 packaging/systemd/jaga.service "$stage/lib/systemd/system/jaga.service"
    install -m 0644 packaging/deb/jaga.toml "$stage/etc/jaga/jaga.toml"
    install -m 0644 jaga.example.toml README.md "$doc/"
    printf 'jaga\nLicense: Apache-2.0\nOn Debian systems the licence is in /usr/share/common-licenses/Apache-2.0.\n' \
        >"$doc/copyright"
    # Completions and man pages from the binary's own clap definitions.
    "$BIN" completions bash >"$stage/usr/share/bash-completion/completions/jaga"
    "$BIN" completions zsh >"$stage/usr/share/zsh/vendor-completions/_jaga"
    "$BIN" completions fish >"$stage/usr/share/fish/vendor_completions.d/jaga.fish"
    "$BIN" man --out-dir "$stage/usr/share/man/man1"
    gzip -9n "$stage"/usr/share/man/man1/*.1
    install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"
    install -m 0644 packaging/deb/conffiles "$stage/DEBIAN/conffiles"
    local size
    size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
    sed -e "s/@VERSION@/$VERSION/" -e "s/@INSTALLED_SIZE@/$size/" packaging/deb/control \
        >"$stage/DEBIAN/control"
    local deb="$OUT/jaga_${VERSION}_amd64.deb"
    rm -f "$OUT"/jaga_*_amd64.deb
    dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
    say "package $deb: $(stat -c %s "$deb") bytes"
}

t1=$SECONDS
[ "$image" = 0 ] || build_image
t_image=$((SECONDS - t1))
t2=$SECONDS
[ "$deb" = 0 ] || build_deb
t_deb=$((SECONDS - t2))
say "done: binary ${t_build}s, image ${t_image}s, deb ${t_deb}s"
