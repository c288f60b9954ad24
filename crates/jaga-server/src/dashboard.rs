//! The web dashboard: one page at `/` and its assets under `/assets/`,
//! embedded in the binary, served with a Content-Security-Policy that
//! allows this origin only and no inline script or style; the login form
//! at `/login` that opens a browser session (see [`crate::session`]).
//!
//! The page reads the REST API and `/api/v1/stream`; it changes nothing.
//! `jaga hub` serves the same page, assets and login through the `*_for`
//! functions and [`hub_index`]: its script, `hub.js`, shows the fleet.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::Tokens;
use crate::listen::Transport;
use crate::session::{self, Admission};
use crate::ServerState;

/// Everything the page may load: this origin only, nothing inline, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// An embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The page's files, as served under `/assets/` (`index.html` at `/`).
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../assets/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/app.js"),
    },
    Asset {
        name: "ui.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/ui.js"),
    },
    Asset {
        name: "hub.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/hub.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/chart.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/style.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../assets/icon.svg"),
    },
];

const LOGIN_HTML: &str = include_str!("../assets/login.html");
/// Where the login page says why the last attempt failed.
const LOGIN_MESSAGE: &str = "<!--message-->";
/// Largest login form read.
const MAX_FORM_BYTES: usize = 4096;

/// Each asset gzipped once, on first use.
fn gzipped(index: usize) -> Option<&'static [u8]> {
    static CACHE: OnceLock<Vec<Option<Vec<u8>>>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            ASSETS
                .iter()
                .map(|asset| gzip(asset.body.as_bytes()))
                .collect()
        })
        .get(index)
        .and_then(|zipped| zipped.as_deref())
}

/// The gzip of `bytes`; `None` if compression fails (served plain then).
pub fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.replace(' ', "").as_str(), "q=0" | "q=0.0"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// Headers every page and asset carries.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Small files, changed with the binary: revalidate rather than guess.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn serve_asset(index: usize, headers: &HeaderMap) -> Response {
    match ASSETS.get(index) {
        Some(asset) => send(asset.content_type, asset.body, gzipped(index), headers),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A file, gzipped when the client takes it and a gzip is at hand.
fn send(
    content_type: &'static str,
    body: &'static str,
    zipped: Option<&'static [u8]>,
    headers: &HeaderMap,
) -> Response {
    let content_type = (header::CONTENT_TYPE, content_type);
    let response = match zipped.filter(|_| accepts_gzip(headers)) {
        Some(body) => (
            [
                content_type,
                (header::CONTENT_ENCODING, "gzip"),
                (header::VARY, "accept-encoding"),
            ],
            body,
        )
            .into_response(),
        None => ([content_type, (header::VARY, "accept-encoding")], body).into_response(),
    };
    secured(response)
}

/// `/`: the page (behind the API's authentication).
pub async fn index(headers: HeaderMap) -> Response {
    serve_asset(0, &headers)
}

/// What the agent's page loads; `jaga hub` serves the same page loading
/// [`HUB_SCRIPT`], which gives it the hub's links and pages.
const APP_SCRIPT: &str = "src=\"/assets/app.js\"";
const HUB_SCRIPT: &str = "src=\"/assets/hub.js\"";

/// The hub's page and its gzip, made once.
fn hub_page() -> &'static (String, Option<Vec<u8>>) {
    static PAGE: OnceLock<(String, Option<Vec<u8>>)> = OnceLock::new();
    PAGE.get_or_init(|| {
        let page = ASSETS[0].body.replace(APP_SCRIPT, HUB_SCRIPT);
        let zipped = gzip(page.as_bytes());
        (page, zipped)
    })
}

/// `/` of `jaga hub`: the same page, its script `hub.js` (behind the
/// hub's authentication).
pub async fn hub_index(headers: HeaderMap) -> Response {
    let (page, zipped) = hub_page();
    send(ASSETS[0].content_type, page, zipped.as_deref(), &headers)
}

/// `/assets/{name}`: code and style, public (they hold no data).
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|asset| asset.name == name) {
        Some(index) => serve_asset(index, &headers),
        None => crate::api::ApiError::not_found(format!(
            "no such asset: '{}'",
            jaga_model::escape_control(&name)
        ))
        .into_response(),
    }
}

fn login_page(status: StatusCode, message: &str) -> Response {
    let body = LOGIN_HTML.replace(LOGIN_MESSAGE, message);
    secured(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

/// `GET /login`: the form; straight to the page when no token is needed.
pub async fn login_form(State(state): State<Arc<ServerState>>) -> Response {
    login_form_for(&state.auth)
}

/// The login form of a server that takes `auth`'s tokens (the agent's or
/// the hub's).
pub fn login_form_for(auth: &Tokens) -> Response {
    if !auth.required() {
        return Redirect::to("/").into_response();
    }
    login_page(StatusCode::OK, "")
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /login`: a configured token in, a session cookie out. Failures
/// are logged with the client's address and limited per address.
pub async fn login(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let counters = Arc::clone(&state.http);
    login_for(
        &state.auth,
        move || counters.auth_failed(crate::auth::Refusal::Invalid),
        request,
    )
    .await
}

/// `POST /login` of a server that takes `auth`'s tokens; `refused` counts
/// a token that is not valid.
pub async fn login_for(auth: &Tokens, refused: impl FnOnce(), request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let tls = request
        .extensions()
        .get::<Transport>()
        .is_some_and(|t| t.tls);
    let sessions = &auth.sessions;
    let now = Instant::now();
    if let Admission::Limited(wait) = sessions.admit(peer.map(|p| p.ip()), now) {
        tracing::warn!(peer = ?peer, "login refused: too many failed logins from this address");
        let mut response = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "<p class=\"error\" role=\"alert\">Too many failed logins: try again in {} s.</p>",
                wait.as_secs().max(1)
            ),
        );
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return login_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "<p class=\"error\" role=\"alert\">The form was too large.</p>",
            )
        }
    };
    let token = serde_urlencoded::from_bytes::<LoginForm>(&body)
        .map(|form| form.token)
        .unwrap_or_default();
    let accepted = !token.trim().is_empty() && auth.accepts(token.trim()).is_ok();
    if !accepted {
        refused();
        let failures = sessions.failed(peer.map(|p| p.ip()), now);
        tracing::warn!(peer = ?peer, failures, "dashboard login failed: the token is not valid");
        return login_page(
            StatusCode::UNAUTHORIZED,
            "<p class=\"error\" role=\"alert\">That token is not valid.</p>",
        );
    }
    let id = match sessions.open(peer.map(|p| p.ip()), now) {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "cannot open a dashboard session");
            return login_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<p class=\"error\" role=\"alert\">Cannot open a session now: see the server's log.</p>",
            );
        }
    };
    tracing::info!(peer = ?peer, "dashboard login");
    let mut response = Redirect::to("/").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(&id, tls)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /logout`: ends the session and goes back to the form.
pub async fn logout(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    logout_for(&state.auth, &request)
}

/// `POST /logout` of a server that takes `auth`'s tokens.
pub fn logout_for(auth: &Tokens, request: &Request) -> Response {
    let tls = request
        .extensions()
        .get::<Transport>()
        .is_some_and(|t| t.tls);
    auth.sessions.close(request.headers());
    let mut response = Redirect::to("/login").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::clear_cookie(tls)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_styles_fit_in_100_kb_gzipped() {
        let total: usize = ASSETS
            .iter()
            .filter(|a| a.name.ends_with(".js") || a.name.ends_with(".css"))
            .map(|a| gzip(a.body.as_bytes()).unwrap().len())
            .sum();
        assert!(total > 1000, "the assets are empty: {total} bytes");
        assert!(total <= 100 * 1024, "{total} bytes gzipped");
    }

    #[test]
    fn nothing_inline_and_nothing_from_another_origin() {
        for asset in ASSETS
            .iter()
            .map(|a| (a.name, a.body))
            .chain([("login.html", LOGIN_HTML)])
        {
            let (name, body) = asset;
            assert!(
                !body.contains("http://") && !body.contains("https://") || name == "icon.svg",
                "{name} names another origin"
            );
            if name.ends_with(".html") {
                assert!(!body.contains("<script>"), "{name} has an inline script");
                assert!(!body.contains("<style"), "{name} has an inline style");
                assert!(!body.contains("style=\""), "{name} has a style attribute");
                for handler in ["onclick=", "onload=", "onerror=", "onsubmit=", "oninput="] {
                    assert!(!body.contains(handler), "{name} has an inline {handler}");
                }
            }
        }
    }

    #[test]
    fn the_hubs_page_is_the_agents_page_running_hub_js() {
        let (page, zipped) = hub_page();
        assert!(
            ASSETS[0].body.contains(APP_SCRIPT),
            "index.html loads app.js"
        );
        assert!(page.contains(HUB_SCRIPT), "{page}");
        assert!(!page.contains("app.js"), "{page}");
        assert_eq!(
            page.len(),
            ASSETS[0].body.len() + HUB_SCRIPT.len() - APP_SCRIPT.len()
        );
        assert!(zipped.as_ref().is_some_and(|z| !z.is_empty()));
        for name in ["hub.js", "ui.js", "chart.js"] {
            assert!(ASSETS.iter().any(|a| a.name == name), "{name} is served");
        }
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        assert!(accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&headers));
    }
}
