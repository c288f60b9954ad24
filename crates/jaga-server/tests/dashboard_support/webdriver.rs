//! Just enough of the W3C WebDriver protocol to drive Debian's headless
//! Chromium through `chromedriver`: navigate, run a script, type, click,
//! resize, screenshot, read the console. crates/jaga/tests/
//! dashboard_browser_engine.rs includes this file too (`#[path]`), for the
//! real agent's dashboard.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Console entries that are errors (the log also holds the page's own info
/// lines).
pub fn console_errors(entries: &[(String, String)]) -> Vec<&(String, String)> {
    entries
        .iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect()
}

/// The requested URLs that went anywhere but `base` (inline `data:` aside).
pub fn other_origins<'a>(urls: &'a [String], base: &str) -> Vec<&'a String> {
    let own = format!("{base}/");
    urls.iter()
        .filter(|u| !u.starts_with(&own) && !u.starts_with("data:"))
        .collect()
}

/// A page to screenshot: its name, its hash route, the element that
/// shows it is drawn, and one to scroll into view first.
pub struct Shot<'a> {
    pub name: &'a str,
    pub hash: &'a str,
    pub ready: &'a str,
    pub scroll_to: Option<&'a str>,
}

impl<'a> Shot<'a> {
    pub fn new(name: &'a str, hash: &'a str, ready: &'a str) -> Self {
        Self {
            name,
            hash,
            ready,
            scroll_to: None,
        }
    }

    pub fn scrolled_to(self, view: &'a str) -> Self {
        Self {
            scroll_to: Some(view),
            ..self
        }
    }
}

pub struct Browser {
    http: reqwest::Client,
    session: String,
    /// The last address navigated to, loaded again after a network error.
    last_url: std::sync::Mutex<String>,
    _driver: tokio::process::Child,
}

/// Where Chromium and its driver are, if installed.
pub fn installed() -> Option<(&'static str, &'static str)> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    Some((chromium, driver))
}

/// Chromium and chromedriver, or: under CI a failure, elsewhere `None`
/// with one clear line (the test then stops).
pub fn required() -> Option<(&'static str, &'static str)> {
    match installed() {
        Some(found) => Some(found),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("chromium and chromedriver are required under CI: apt-get install chromium chromium-driver (scripts/test.sh does)")
        }
        None => {
            eprintln!("SKIPPED: chromium or chromedriver is not installed (apt-get install chromium chromium-driver; scripts/test.sh installs them)");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    pub async fn start(chromium: &str, driver: &str, width: u32, height: u32) -> Browser {
        let port = free_port();
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver answers within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--no-first-run",
                             format!("--window-size={width},{height}")],
                },
                "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a WebDriver session: {answer}"))
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            last_url: std::sync::Mutex::new(String::new()),
            _driver: child,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"].get("error").is_some() {
            panic!("WebDriver {path}: {answer}");
        }
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        *self.last_url.lock().unwrap() = url.to_owned();
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Chromium shows an error page when the host's interfaces change
    /// (other containers starting on a shared test machine): load again.
    async fn recover(&self) {
        let error_page = self
            .run("return location.protocol === 'chrome-error:'")
            .await;
        if error_page == Value::Bool(true) {
            let url = self.last_url.lock().unwrap().clone();
            eprintln!("the browser showed a network error page: loading {url} again");
            self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
                .await;
        }
    }

    pub async fn run(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Runs a script that calls its last argument with the result.
    pub async fn run_async(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Waits until `expression` is truthy in the page; its value.
    pub async fn wait_for(&self, what: &str, expression: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.run(&format!("return ({expression});")).await;
            let truthy = !matches!(value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            self.recover().await;
            if tokio::time::Instant::now() >= deadline {
                let shown = self
                    .run("return document.body ? document.body.innerText.slice(0, 2000) : ''")
                    .await;
                panic!("waited 60 s for {what} ({expression}); the page shows: {shown}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("element {css}: {found}"))
            .to_owned()
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Entries of a chromedriver log (`browser`, `performance`) since the last read.
    async fn log(&self, kind: &str) -> Vec<Value> {
        self.call(
            reqwest::Method::POST,
            "/se/log",
            Some(json!({ "type": kind })),
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// The console's entries since the last call: (level, message).
    pub async fn console(&self) -> Vec<(String, String)> {
        self.log("browser")
            .await
            .iter()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Every URL the page requested, from the network log.
    pub async fn requested_urls(&self) -> Vec<String> {
        self.log("performance")
            .await
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|m| {
                m["message"]["params"]["request"]["url"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// At `base`/ with a token required: the page sends the browser to the
    /// login form, a wrong token is refused, `token` opens the page. The
    /// refused login's 401 is the one console error it leaves.
    pub async fn log_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/")).await;
        self.wait_for(
            "the login form",
            "location.pathname === '/login' && document.querySelector('#token')",
        )
        .await;
        self.type_into("#token", "jaga_wrong").await;
        self.click("button[type=submit]").await;
        self.wait_for(
            "the refusal",
            "document.body.textContent.includes('That token is not valid')",
        )
        .await;
        self.type_into("#token", token).await;
        self.click("button[type=submit]").await;
        self.wait_for("the page after login", "location.pathname === '/'")
            .await;
        let console = self.console().await;
        let errors = console_errors(&console);
        assert!(
            errors
                .iter()
                .all(|(_, m)| m.contains("/login") && m.contains("401")),
            "{errors:?}"
        );
    }

    /// A screenshot of each page, desktop and 390 px, light and dark, as
    /// `dir/<name>-<width>-<theme>.png`; at 390 px no page scrolls sideways.
    pub async fn screenshot_pages(&self, base: &str, pages: &[Shot<'_>], dir: &Path) {
        for (theme, width, height) in [
            ("light", 1280, 900),
            ("dark", 1280, 900),
            ("light", 390, 844),
            ("dark", 390, 844),
        ] {
            self.resize(width, height).await;
            self.run(&format!(
                "localStorage.setItem('jaga-theme', '{theme}'); return true"
            ))
            .await;
            for shot in pages {
                let Shot {
                    name, hash, ready, ..
                } = shot;
                // Each shot of a freshly loaded page, in the new theme.
                self.goto(&format!("{base}/{hash}")).await;
                self.goto(&format!("{base}/?v={theme}{width}{hash}")).await;
                self.wait_for(name, &format!("document.querySelector('{ready}') && document.documentElement.dataset.theme === '{theme}'"))
                    .await;
                if let Some(view) = shot.scroll_to {
                    self.run(&format!(
                        "document.querySelector('{view}').scrollIntoView(); return true"
                    ))
                    .await;
                }
                // Let charts and sparklines draw.
                tokio::time::sleep(Duration::from_millis(300)).await;
                if width < 500 {
                    let overflow = self
                        .run("return document.documentElement.scrollWidth - window.innerWidth")
                        .await;
                    assert!(
                        overflow.as_i64().unwrap() <= 0,
                        "{name} scrolls sideways at {width} px: {overflow}"
                    );
                }
                self.screenshot(&dir.join(format!("{name}-{width}-{theme}.png")))
                    .await;
            }
        }
    }

    /// No console error and no request to another origin than `base` since
    /// the last read of the logs; the URLs requested.
    pub async fn assert_clean(&self, base: &str) -> Vec<String> {
        let console = self.console().await;
        let errors = console_errors(&console);
        assert!(errors.is_empty(), "console errors: {errors:?}");
        let urls = self.requested_urls().await;
        let foreign = other_origins(&urls, base);
        assert!(
            foreign.is_empty(),
            "requests to another origin: {foreign:?}"
        );
        urls
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}
