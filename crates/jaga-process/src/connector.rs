//! The Linux process connector: a netlink socket on which the kernel
//! multicasts fork, exec and exit of every process. Works only from the
//! host's network, user and pid namespaces; before Linux 6.6 it also needs
//! CAP_NET_ADMIN.
//!
//! Messages are parsed from bytes by hand (no `unsafe`): `nlmsghdr` (16
//! bytes), `cn_msg` (20), `proc_event` header (16) and its union.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::ProcessError;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const NLMSG_OVERRUN: u16 = 4;
const CN_MSG_LEN: usize = 20;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const EVENT_HEADER_LEN: usize = 16;

const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// A process event, as much of it as jaga uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcEvent {
    Fork {
        parent_tgid: u32,
        child_pid: u32,
        child_tgid: u32,
    },
    Exec {
        pid: u32,
        tgid: u32,
    },
    Exit {
        pid: u32,
        tgid: u32,
    },
    /// The kernel's answer to a subscription: `ack` is the request's
    /// sequence number plus one, `err` 0 is success.
    Ack {
        ack: u32,
        err: u32,
    },
    /// uid, gid, sid, ptrace, comm, coredump: not used.
    Other,
}

/// What one datagram held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub events: Vec<ProcEvent>,
    /// Messages too short or inconsistent to read; skipped.
    pub malformed: u64,
    /// The kernel said it dropped messages (`NLMSG_OVERRUN`).
    pub overruns: u64,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes
        .get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes)
}

/// Parses every netlink message of a datagram; never panics on bad input.
pub fn parse_datagram(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut offset = 0;
    while offset + NLMSG_HDRLEN <= bytes.len() {
        let (Some(len), Some(kind)) = (u32_at(bytes, offset), u16_at(bytes, offset + 4)) else {
            parsed.malformed += 1;
            break;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || offset + len > bytes.len() {
            parsed.malformed += 1;
            break;
        }
        let payload = &bytes[offset + NLMSG_HDRLEN..offset + len];
        match kind {
            NLMSG_OVERRUN => parsed.overruns += 1,
            NLMSG_ERROR => parsed.malformed += 1,
            _ => match parse_cn_msg(payload) {
                Some(event) => parsed.events.push(event),
                None => parsed.malformed += 1,
            },
        }
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        offset += (len + 3) & !3;
    }
    parsed
}

fn parse_cn_msg(bytes: &[u8]) -> Option<ProcEvent> {
    let idx = u32_at(bytes, 0)?;
    let val = u32_at(bytes, 4)?;
    let ack = u32_at(bytes, 12)?;
    let data_len = usize::from(u16_at(bytes, 16)?);
    if idx != CN_IDX_PROC || val != CN_VAL_PROC {
        return Some(ProcEvent::Other);
    }
    let data = bytes.get(CN_MSG_LEN..CN_MSG_LEN + data_len)?;
    let what = u32_at(data, 0)?;
    let body = data.get(EVENT_HEADER_LEN..)?;
    let at = |i: usize| u32_at(body, i * 4);
    Some(match what {
        PROC_EVENT_NONE => ProcEvent::Ack { ack, err: at(0)? },
        PROC_EVENT_FORK => ProcEvent::Fork {
            parent_tgid: at(1)?,
            child_pid: at(2)?,
            child_tgid: at(3)?,
        },
        PROC_EVENT_EXEC => ProcEvent::Exec {
            pid: at(0)?,
            tgid: at(1)?,
        },
        PROC_EVENT_EXIT => ProcEvent::Exit {
            pid: at(0)?,
            tgid: at(1)?,
        },
        _ => ProcEvent::Other,
    })
}

/// The subscription message: `nlmsghdr` + `cn_msg` + `PROC_CN_MCAST_LISTEN`.
fn listen_message(seq: u32) -> Vec<u8> {
    let op = PROC_CN_MCAST_LISTEN.to_ne_bytes();
    let total = NLMSG_HDRLEN + CN_MSG_LEN + op.len();
    let mut msg = Vec::with_capacity(total);
    msg.extend_from_slice(&(total as u32).to_ne_bytes());
    msg.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's to fill
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes()); // ack: answered as seq + 1
    msg.extend_from_slice(&(op.len() as u16).to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&op);
    msg
}

/// A subscribed proc connector socket (non-blocking).
pub struct Connector {
    fd: OwnedFd,
}

/// How long the kernel has to acknowledge the subscription.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// A large receive buffer absorbs bursts (a fork bomb, a build) while
/// the reader is busy reading `/proc`.
const RECEIVE_BUFFER_BYTES: usize = 8 << 20;

impl Connector {
    /// Opens, binds and subscribes; fails with why when the kernel or the
    /// privileges do not allow it.
    pub fn open() -> Result<Self, ProcessError> {
        let unavailable = |step: &'static str| {
            move |errno: Errno| ProcessError::Connector {
                step,
                error: std::io::Error::from(errno),
            }
        };
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::CONNECTOR),
        )
        .map_err(unavailable("open a netlink connector socket"))?;
        // Forcing the size needs CAP_NET_ADMIN, which the bind below needs too.
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&fd, RECEIVE_BUFFER_BYTES)
            .is_err()
        {
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, RECEIVE_BUFFER_BYTES);
        }
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, CN_IDX_PROC))
            .map_err(unavailable("join the proc connector group"))?;
        let seq = std::process::id();
        rustix::net::sendto(
            &fd,
            &listen_message(seq),
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(unavailable("subscribe to process events"))?;
        let connector = Self { fd };
        connector.wait_for_ack(seq)?;
        Ok(connector)
    }

    fn wait_for_ack(&self, seq: u32) -> Result<(), ProcessError> {
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut buf = vec![0u8; 64 * 1024];
        while Instant::now() < deadline {
            crate::wait_readable(&[self.fd.as_fd()], Duration::from_millis(100));
            loop {
                match self.receive(&mut buf) {
                    Ok(Some(len)) => {
                        for event in parse_datagram(&buf[..len]).events {
                            if let ProcEvent::Ack { ack, err } = event {
                                // The kernel renumbers `seq`; `ack` is ours plus one.
                                if ack != seq.wrapping_add(1) {
                                    continue;
                                }
                                if err == 0 {
                                    return Ok(());
                                }
                                return Err(ProcessError::Connector {
                                    step: "subscribe to process events",
                                    error: std::io::Error::from_raw_os_error(err as i32),
                                });
                            }
                        }
                    }
                    Ok(None) => break,
                    // An overrun while waiting: the subscription works.
                    Err(Errno::NOBUFS) => return Ok(()),
                    Err(errno) => {
                        return Err(ProcessError::Connector {
                            step: "read the subscription's answer",
                            error: errno.into(),
                        })
                    }
                }
            }
        }
        // Kernels that ignore the request from outside the initial
        // namespaces send no answer, and no events either.
        Err(ProcessError::Connector {
            step: "subscribe to process events",
            error: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the kernel did not answer within 2s (not in the host's namespaces?)",
            ),
        })
    }

    /// One datagram into `buf`: `Ok(None)` when there is none now,
    /// `Err(NOBUFS)` when the kernel dropped messages.
    pub fn receive(&self, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        match rustix::net::recv(&self.fd, &mut *buf, RecvFlags::empty()) {
            Ok((len, _)) => Ok(Some(len.min(buf.len()))),
            Err(Errno::AGAIN) | Err(Errno::INTR) => Ok(None),
            Err(errno) => Err(errno),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram as the kernel sends it: one message per event.
    fn message(what: u32, body: &[u32]) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&what.to_ne_bytes());
        data.extend_from_slice(&0u32.to_ne_bytes()); // cpu
        data.extend_from_slice(&123u64.to_ne_bytes()); // timestamp
        for word in body {
            data.extend_from_slice(&word.to_ne_bytes());
        }
        let total = NLMSG_HDRLEN + CN_MSG_LEN + data.len();
        let mut msg = Vec::new();
        msg.extend_from_slice(&(total as u32).to_ne_bytes());
        msg.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        msg.extend_from_slice(&7u32.to_ne_bytes());
        msg.extend_from_slice(&8u32.to_ne_bytes());
        msg.extend_from_slice(&(data.len() as u16).to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&data);
        while msg.len() % 4 != 0 {
            msg.push(0);
        }
        msg
    }

    #[test]
    fn fork_exec_exit_and_ack() {
        let mut bytes = message(PROC_EVENT_FORK, &[10, 10, 11, 11]);
        bytes.extend(message(PROC_EVENT_EXEC, &[11, 11]));
        bytes.extend(message(PROC_EVENT_EXIT, &[11, 11, 0, 17, 10, 10]));
        bytes.extend(message(PROC_EVENT_NONE, &[0]));
        bytes.extend(message(0x200, &[11, 11, 0x6873, 0, 0, 0]));
        let parsed = parse_datagram(&bytes);
        assert_eq!(parsed.malformed, 0);
        assert_eq!(
            parsed.events,
            vec![
                ProcEvent::Fork {
                    parent_tgid: 10,
                    child_pid: 11,
                    child_tgid: 11
                },
                ProcEvent::Exec { pid: 11, tgid: 11 },
                ProcEvent::Exit { pid: 11, tgid: 11 },
                ProcEvent::Ack { ack: 8, err: 0 },
                ProcEvent::Other,
            ]
        );
    }

    #[test]
    fn truncated_and_lying_lengths_are_counted_not_read_past() {
        let whole = message(PROC_EVENT_EXEC, &[11, 11]);
        for cut in 0..whole.len() {
            let parsed = parse_datagram(&whole[..cut]);
            assert!(parsed.events.is_empty(), "cut at {cut}");
        }
        let mut lying = whole.clone();
        lying[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(parse_datagram(&lying).malformed, 1);
        let mut short_body = whole.clone();
        // cn_msg.len says 40 bytes of data, the message has fewer.
        short_body[NLMSG_HDRLEN + 16..NLMSG_HDRLEN + 18].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(parse_datagram(&short_body).malformed, 1);
        let mut tiny = whole;
        tiny[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(parse_datagram(&tiny).malformed, 1);
    }

    #[test]
    fn the_subscription_message_has_its_length() {
        let msg = listen_message(5);
        assert_eq!(u32_at(&msg, 0), Some(msg.len() as u32));
        assert_eq!(u32_at(&msg, msg.len() - 4), Some(PROC_CN_MCAST_LISTEN));
    }
}
