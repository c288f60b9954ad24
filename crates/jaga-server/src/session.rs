//! Browser sessions for the dashboard: the login form trades one of the
//! configured API tokens for a random session id in a cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` under TLS). Sessions live in memory only (a
//! restart signs everyone out) and end when the token file is reloaded, so
//! revoking a token revokes the sessions it opened.
//!
//! Failed logins are counted per client address: after
//! [`MAX_FAILURES`] in [`FAILURE_WINDOW`], that address gets 429 until the
//! window has passed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

use crate::auth::TokenHash;

/// The cookie that carries the session id.
pub const COOKIE: &str = "jaga_session";
/// How long a session lasts after login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins an address may make per window.
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Most sessions kept at once: the oldest go first.
const MAX_SESSIONS: usize = 1024;
/// Most addresses whose failures are remembered.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Session id hash → when it ends.
    live: HashMap<TokenHash, Instant>,
    failures: HashMap<IpAddr, Failures>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// What a login attempt may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Too many failures: try again after this long.
    Limited(Duration),
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Whether `peer` may try to log in now.
    pub fn admit(&self, peer: Option<IpAddr>, now: Instant) -> Admission {
        let Some(peer) = peer else {
            return Admission::Allowed;
        };
        let inner = self.lock();
        match inner.failures.get(&peer) {
            Some(f) if f.count >= MAX_FAILURES => {
                let ends = f.since + FAILURE_WINDOW;
                if ends > now {
                    Admission::Limited(ends - now)
                } else {
                    Admission::Allowed
                }
            }
            _ => Admission::Allowed,
        }
    }

    /// Counts a failed login of `peer`; returns the failures in its window.
    pub fn failed(&self, peer: Option<IpAddr>, now: Instant) -> u32 {
        let Some(peer) = peer else {
            return 0;
        };
        let mut inner = self.lock();
        if inner.failures.len() >= MAX_TRACKED {
            inner
                .failures
                .retain(|_, f| now.duration_since(f.since) < FAILURE_WINDOW);
        }
        let entry = inner.failures.entry(peer).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now.duration_since(entry.since) >= FAILURE_WINDOW {
            *entry = Failures {
                count: 0,
                since: now,
            };
        }
        entry.count += 1;
        entry.count
    }

    /// A new session; returns the id the cookie carries.
    pub fn open(
        &self,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Result<String, crate::auth::AuthError> {
        let (id, hash) = crate::auth::new_token()?;
        let mut inner = self.lock();
        if let Some(peer) = peer {
            inner.failures.remove(&peer);
        }
        inner.live.retain(|_, ends| *ends > now);
        if inner.live.len() >= MAX_SESSIONS {
            if let Some(oldest) = inner
                .live
                .iter()
                .min_by_key(|(_, ends)| **ends)
                .map(|(hash, _)| *hash)
            {
                inner.live.remove(&oldest);
            }
        }
        inner.live.insert(hash, now + LIFETIME);
        Ok(id)
    }

    /// Whether the request's cookie names a live session.
    pub fn valid(&self, headers: &HeaderMap, now: Instant) -> bool {
        let Some(id) = cookie(headers, COOKIE) else {
            return false;
        };
        let hash = TokenHash::of(id);
        self.lock().live.get(&hash).is_some_and(|ends| *ends > now)
    }

    /// Ends the request's session, if it has one.
    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.lock().live.remove(&TokenHash::of(id));
        }
    }

    /// Ends every session (the tokens changed).
    pub fn clear(&self) {
        self.lock().live.clear();
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(id: &str, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_session_is_valid_until_it_ends_or_is_closed() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let id = sessions.open(None, now).unwrap();
        let headers = with_cookie(&format!("theme=dark; {COOKIE}={id}"));
        assert!(sessions.valid(&headers, now));
        assert!(!sessions.valid(&headers, now + LIFETIME));
        assert!(!sessions.valid(&with_cookie(&format!("{COOKIE}=x{id}")), now));
        assert!(!sessions.valid(&HeaderMap::new(), now));
        sessions.close(&headers);
        assert!(!sessions.valid(&headers, now));
        let again = sessions.open(None, now).unwrap();
        sessions.clear();
        assert!(!sessions.valid(&with_cookie(&format!("{COOKIE}={again}")), now));
    }

    #[test]
    fn failures_limit_an_address_for_the_window_only() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let peer: Option<IpAddr> = Some("192.0.2.7".parse().unwrap());
        let other: Option<IpAddr> = Some("192.0.2.8".parse().unwrap());
        for n in 1..=MAX_FAILURES {
            assert_eq!(sessions.admit(peer, now), Admission::Allowed);
            assert_eq!(sessions.failed(peer, now), n);
        }
        let later = now + Duration::from_secs(10);
        assert_eq!(
            sessions.admit(peer, later),
            Admission::Limited(FAILURE_WINDOW - Duration::from_secs(10))
        );
        assert_eq!(sessions.admit(other, later), Admission::Allowed);
        assert_eq!(
            sessions.admit(peer, now + FAILURE_WINDOW),
            Admission::Allowed
        );
        assert_eq!(sessions.failed(peer, now + FAILURE_WINDOW), 1);
    }

    #[test]
    fn cookies_are_strict_http_only_and_secure_under_tls() {
        let plain = set_cookie("abc", false);
        assert!(plain.starts_with("jaga_session=abc; Path=/; HttpOnly; SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
