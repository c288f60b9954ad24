//! The outputs against real receivers on 127.0.0.1: Alertmanager, rsyslog
//! aiosmtpd and nats-server (installed by `scripts/receivers.sh`), and an HTTP
//! receiver of our own for Slack payloads. One test binary, so the
//! receivers' helpers are built once:
//! `cargo test -p jaga-outputs --test receivers`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alertmanager;
mod common;
mod nats;
mod remote_write;
mod slack;
mod smtp;
mod syslog;
