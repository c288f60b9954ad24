#!/usr/bin/env bash
# scripts/test.sh — jaga's test command: prepares the test bed (Docker engine +
# offline images, see scripts/testbed.sh), then runs fmt, clippy, packaging
# (scripts/package.sh) and the tests.
# Extra arguments go to `cargo test`, e.g.  scripts/test.sh -p jaga-cgroup -- --nocapture
set -euo pipefail

cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

step() { printf 'test: %s\n' "$*" >&2; }
die() { printf 'test: ERROR: %s\n' "$*" >&2; exit 1; }

# rustup puts cargo in ~/.cargo/bin, which non-login shells may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install a Rust toolchain with rustup (https://rustup.rs), then re-run"

need_component() { # cargo-subcommand rustup-component
    cargo "$1" --version >/dev/null 2>&1 && return 0
    if command -v rustup >/dev/null 2>&1; then
        step "installing missing toolchain component $2"
        rustup component add "$2" >&2 || true
    fi
    cargo "$1" --version >/dev/null 2>&1 ||
        die "'cargo $1' is missing: run 'rustup component add $2' and re-run"
}
need_component fmt rustfmt
need_component clippy clippy

step "preparing test bed"
bash scripts/testbed.sh

step "installing headless Chromium for the dashboard's browser tests"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_root=()
    [ "$(id -u)" -eq 0 ] || apt_root=(sudo)
    "${apt_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver >&2 ||
        die "cannot install chromium and chromium-driver (apt): the dashboard's browser tests need them"
fi

step "installing alert receivers (Alertmanager, rsyslog, aiosmtpd)"
bash scripts/receivers.sh

step "cargo fmt --all -- --check"
cargo fmt --all -- --check || die "formatting differs: run 'cargo fmt --all'"

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings || die "clippy reported problems"

# The static release binary, built once and packed as the image jaga:latest
# and target/package/jaga_*.deb, which crates/jaga/tests/packaging.rs runs
# and installs. Costs one release build (~3-5 min on 2 cores).
step "packaging (scripts/package.sh)"
bash scripts/package.sh || die "packaging failed"

step "cargo test --workspace $*"
cargo test --workspace "$@" || die "tests failed"

step "all checks passed"
