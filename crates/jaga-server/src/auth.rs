//! API tokens: made by `jaga token new`, stored only as SHA-256 hashes
//! (`sha256:<64 hex digits>`), presented as `Authorization: Bearer <token>`
//! (what Prometheus sends for `bearer_token`, `bearer_token_file` and
//! `authorization: {credentials: …}`).
//!
//! With no token configured every request passes (loopback only: the agent
//! refuses another address without tokens, see [`check_exposure`]); with
//! tokens, every route but `/healthz` needs one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::api::ApiError;
use crate::listen::HttpCounters;
use crate::ServerState;

/// What a token starts with, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "jaga_";
/// What a stored hash starts with.
pub const HASH_PREFIX: &str = "sha256:";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("'{shown}' is not a token hash: write 'sha256:' and 64 hex digits, as `jaga token new` prints them, never the token itself")]
    BadHash { shown: String },
    #[error("cannot read the token file '{path}': {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file '{path}', line {line}: {source}")]
    BadLine {
        path: PathBuf,
        line: usize,
        #[source]
        source: Box<AuthError>,
    },
    #[error("refusing to serve on {listen} without authentication: anyone who reaches it would read the audit, exec commands and container labels. Make a token with `jaga token new` and add its hash to [serve.auth] tokens (or token_file) in the config, or listen on a loopback address such as 127.0.0.1")]
    ExposedWithoutTokens { listen: SocketAddr },
    #[error("the token file '{path}' now holds no token: that would open the API to anyone")]
    NoTokenLeft { path: PathBuf },
    #[error("cannot gather randomness for a token: {0}")]
    Random(String),
}

/// The SHA-256 of a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{HASH_PREFIX}{}", hex(&self.0))
    }
}

impl TokenHash {
    /// The hash of a token as a client presents it.
    pub fn of(token: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// Reads `sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let text = text.trim();
        let bad = || AuthError::BadHash { shown: shown(text) };
        let digits = text.strip_prefix(HASH_PREFIX).ok_or_else(bad)?;
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(bytes))
    }
}

/// At most the first 12 characters: a token pasted where its hash belongs
/// must not be echoed whole into logs.
fn shown(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(12).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token (256 bits) and its hash.
pub fn new_token() -> Result<(String, TokenHash), AuthError> {
    use ring::rand::SecureRandom as _;
    let mut secret = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .map_err(|e| AuthError::Random(e.to_string()))?;
    let token = format!("{TOKEN_PREFIX}{}", hex(&secret));
    let hash = TokenHash::of(&token);
    Ok((token, hash))
}

/// Hashes from a token file: one per line; blank lines and `#` comments skipped.
pub fn read_token_file(path: &Path) -> Result<Vec<TokenHash>, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .map(|(index, line)| (index, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(index, line)| {
            TokenHash::parse(line).map_err(|e| AuthError::BadLine {
                path: path.to_path_buf(),
                line: index + 1,
                source: Box::new(e),
            })
        })
        .collect()
}

/// Where the accepted hashes come from: the config's list and an optional
/// file, re-read by [`Tokens::reload`] (on SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct TokenSources {
    pub hashes: Vec<TokenHash>,
    pub file: Option<PathBuf>,
}

impl TokenSources {
    fn load(&self) -> Result<Vec<TokenHash>, AuthError> {
        let mut all = self.hashes.clone();
        if let Some(file) = &self.file {
            all.extend(read_token_file(file)?);
        }
        Ok(all)
    }
}

/// The hashes a request's token is checked against.
#[derive(Debug, Default)]
pub struct Tokens {
    sources: TokenSources,
    hashes: RwLock<Arc<Vec<TokenHash>>>,
    /// The dashboard's logins, opened with one of the tokens.
    pub sessions: crate::session::Sessions,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that matches no hash.
    Invalid,
}

impl Tokens {
    /// No tokens: every request passes.
    pub fn open() -> Self {
        Self::default()
    }

    pub fn load(sources: TokenSources) -> Result<Self, AuthError> {
        let hashes = sources.load()?;
        Ok(Self {
            sources,
            hashes: RwLock::new(Arc::new(hashes)),
            sessions: crate::session::Sessions::default(),
        })
    }

    fn current(&self) -> Arc<Vec<TokenHash>> {
        match self.hashes.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Whether any token is required.
    pub fn required(&self) -> bool {
        !self.current().is_empty()
    }

    /// Re-reads the token file. A file that cannot be read, or that would
    /// leave no token where tokens were required, is refused and the
    /// current tokens kept. Returns the number of tokens now accepted.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let fresh = self.sources.load()?;
        let mut guard = match self.hashes.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if fresh.is_empty() && !guard.is_empty() {
            return Err(AuthError::NoTokenLeft {
                path: self.sources.file.clone().unwrap_or_default(),
            });
        }
        let count = fresh.len();
        if *guard.as_ref() != fresh {
            // A revoked token must not live on in the sessions it opened.
            self.sessions.clear();
        }
        *guard = Arc::new(fresh);
        Ok(count)
    }

    /// Checks the request's bearer token, else its session cookie; `Ok`
    /// when none is required.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if !self.required() {
            return Ok(());
        }
        let Some(token) = bearer_token(headers) else {
            return if self.sessions.valid(headers, std::time::Instant::now()) {
                Ok(())
            } else {
                Err(Refusal::Missing)
            };
        };
        self.accepts(token)
    }

    /// Whether `token` is one of the configured tokens (`Ok` when none is).
    pub fn accepts(&self, token: &str) -> Result<(), Refusal> {
        let hashes = self.current();
        if hashes.is_empty() {
            return Ok(());
        }
        let presented = TokenHash::of(token);
        // Compare with every hash, in constant time, whatever matched first.
        let matched = hashes.iter().fold(subtle::Choice::from(0), |found, hash| {
            found | hash.0.ct_eq(&presented.0)
        });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(Refusal::Invalid)
        }
    }
}

/// The token of `Authorization: Bearer <token>` (scheme in any case).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Refuses a non-loopback address without tokens.
pub fn check_exposure(listen: SocketAddr, tokens: &Tokens) -> Result<(), AuthError> {
    if listen.ip().is_loopback() || tokens.required() {
        Ok(())
    } else {
        Err(AuthError::ExposedWithoutTokens { listen })
    }
}

/// Middleware: lets a request through when its token or session is
/// accepted; else sends a browser asking for the page to the login form,
/// and answers anything else 401 with `WWW-Authenticate: Bearer` and the
/// API's error shape.
pub async fn require_token(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    match state.auth.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.to_string())
                .unwrap_or_default();
            tracing::debug!(reason = ?refusal, %peer, path = %request.uri().path(), "request refused: no valid token");
            login_redirect(refusal, request.uri().path())
                .unwrap_or_else(|| unauthorized(refusal, &state.http))
        }
    }
}

/// A browser that asks for the page (`/`) without a token or session goes
/// to the login form; `None` for every other refusal.
pub fn login_redirect(refusal: Refusal, path: &str) -> Option<Response> {
    (refusal == Refusal::Missing && path == "/")
        .then(|| axum::response::Redirect::to("/login").into_response())
}

fn unauthorized(refusal: Refusal, counters: &HttpCounters) -> Response {
    counters.auth_failed(refusal);
    refused(refusal)
}

/// The 401 of a refused request: `WWW-Authenticate: Bearer` and the API's
/// error shape (also `jaga hub`'s).
pub fn refused(refusal: Refusal) -> Response {
    let (challenge, message) = match refusal {
        Refusal::Missing => (
            r#"Bearer realm="jaga""#,
            "a token is required: send 'Authorization: Bearer <token>'",
        ),
        Refusal::Invalid => (
            r#"Bearer realm="jaga", error="invalid_token""#,
            "the token is not valid",
        ),
    };
    let mut response = ApiError {
        status: StatusCode::UNAUTHORIZED,
        parameter: None,
        message: message.to_owned(),
    }
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn hash_round_trips_and_matches_sha256() {
        // sha256("abc"), from FIPS 180-2.
        let hash = TokenHash::of("abc");
        let text = hash.to_string();
        assert_eq!(
            text,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TokenHash::parse(&text).unwrap(), hash);
    }

    #[test]
    fn a_token_pasted_as_hash_is_refused_without_echoing_it() {
        let (token, _) = new_token().unwrap();
        let error = TokenHash::parse(&token).unwrap_err().to_string();
        assert!(!error.contains(&token), "{error}");
        assert!(error.starts_with("'jaga_"), "{error}");
        for bad in [
            "sha256:",
            "sha256:zz",
            &format!("sha256:{}", "g".repeat(64)),
        ] {
            assert!(TokenHash::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_tokens_differ_and_check_against_their_hash() {
        let (one, one_hash) = new_token().unwrap();
        let (two, _) = new_token().unwrap();
        assert_ne!(one, two);
        assert_eq!(one.len(), TOKEN_PREFIX.len() + 64);
        let tokens = Tokens::load(TokenSources {
            hashes: vec![one_hash],
            file: None,
        })
        .unwrap();
        assert_eq!(tokens.check(&with_auth(&format!("Bearer {one}"))), Ok(()));
        assert_eq!(tokens.check(&with_auth(&format!("bearer  {one} "))), Ok(()));
        assert_eq!(
            tokens.check(&with_auth(&format!("Bearer {two}"))),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            tokens.check(&with_auth(&format!("Basic {one}"))),
            Err(Refusal::Missing)
        );
        assert_eq!(tokens.check(&HeaderMap::new()), Err(Refusal::Missing));
        assert_eq!(Tokens::open().check(&HeaderMap::new()), Ok(()));
    }

    #[test]
    fn non_loopback_address_needs_tokens() {
        let open = Tokens::open();
        let any: SocketAddr = "0.0.0.0:9808".parse().unwrap();
        let error = check_exposure(any, &open).unwrap_err().to_string();
        assert!(
            error.starts_with("refusing to serve on 0.0.0.0:9808 without authentication"),
            "{error}"
        );
        assert!(error.contains("[serve.auth] tokens"), "{error}");
        assert!(check_exposure("127.0.0.1:9808".parse().unwrap(), &open).is_ok());
        assert!(check_exposure("[::1]:9808".parse().unwrap(), &open).is_ok());
        let guarded = Tokens::load(TokenSources {
            hashes: vec![TokenHash::of("x")],
            file: None,
        })
        .unwrap();
        assert!(check_exposure(any, &guarded).is_ok());
    }

    #[test]
    fn token_file_is_reread_and_a_bad_one_keeps_the_old_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        let first = TokenHash::of("first");
        let second = TokenHash::of("second");
        std::fs::write(&file, format!("# ops\n{first}\n\n")).unwrap();
        let tokens = Tokens::load(TokenSources {
            hashes: Vec::new(),
            file: Some(file.clone()),
        })
        .unwrap();
        assert_eq!(tokens.check(&with_auth("Bearer first")), Ok(()));

        std::fs::write(&file, format!("{second}\n")).unwrap();
        assert_eq!(tokens.reload().unwrap(), 1);
        assert_eq!(tokens.check(&with_auth("Bearer second")), Ok(()));
        assert_eq!(
            tokens.check(&with_auth("Bearer first")),
            Err(Refusal::Invalid)
        );

        std::fs::write(&file, "not a hash\n").unwrap();
        let error = tokens.reload().unwrap_err().to_string();
        assert!(error.contains("line 1"), "{error}");
        std::fs::write(&file, "").unwrap();
        assert!(
            tokens.reload().is_err(),
            "an empty file must not open the API"
        );
        assert_eq!(tokens.check(&with_auth("Bearer second")), Ok(()));
    }
}
