//! One rule for secrets, shared by every part of jaga: what looks like a
//! credential — by its name (`DB_PASSWORD`, `com.example.token`) or by the
//! shape of its value (an AWS key id, a GitHub token, a JWT, a URL with a
//! password) — and how it is shown: `<redacted, N chars>`, the key kept.
//!
//! The audit judges with [`looks_secret`] on raw values; everything that
//! stores or shows outside data (labels, event attributes, exec commands,
//! log alert fields) goes through a [`Redaction`] where the data enters, so
//! the store, the API, `/metrics`, `alerts.json`, the CLI and jaga's own
//! log lines all see the same redacted value.
//!
//! A crate of its own rather than part of `jaga-model`: the model stays a
//! set of plain types with serde as its only dependency, while this needs
//! compiled regular expressions.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;

/// Names that say "this is a secret".
fn secret_name() -> &'static Regex {
    static NAME: OnceLock<Regex> = OnceLock::new();
    NAME.get_or_init(|| {
        Regex::new(
            r"(?i)(secret|passw(or)?d|passwd|pwd|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth[_-]?key|client[_-]?secret|signing[_-]?key|encryption[_-]?key|dsn)",
        )
        .unwrap_or_else(|_| unreachable!("constant pattern"))
    })
}

/// Credentials recognised by their shape wherever they appear. Each match's
/// group `secret` is what is hidden; the rest (a URL's user, a header's
/// scheme) stays readable.
fn credential_shapes() -> &'static Regex {
    static SHAPES: OnceLock<Regex> = OnceLock::new();
    SHAPES.get_or_init(|| {
        Regex::new(concat!(
            r"(?s)(?P<secret>",
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",                         // AWS access key id
            r"|\bgh[pousr]_[A-Za-z0-9]{36,}",                          // GitHub token
            r"|\bgithub_pat_[A-Za-z0-9_]{40,}",                        // GitHub fine-grained token
            r"|\bxox[baprs]-[A-Za-z0-9-]{10,}",                        // Slack token
            r"|\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",            // Stripe key
            r"|\bglpat-[A-Za-z0-9_-]{20,}",                            // GitLab token
            r"|\bAIza[0-9A-Za-z_-]{35}",                               // Google API key
            r"|\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*", // JWT
            r"|-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*)", // PEM
            r")",
            // URL with a password: the password only.
            r"|\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:(?P<url_password>[^/\s@]+)@",
            // An HTTP Authorization header's credentials, after the scheme.
            // (also as a JSON or key=value field: `"authorization":"Bearer …"`).
            r#"|(?i:\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token|digest|negotiate)\s+)?)"#,
            r#"(?P<auth>[^\s"',;]+)"#,
        ))
        .unwrap_or_else(|_| unreachable!("constant pattern"))
    })
}

/// Literals one of which every shape of [`credential_shapes`] holds, in
/// their case, but for its `(?i:...authorization)`. A text without any
/// cannot hold a credential shape: a multi-literal search (SIMD) rules it
/// out, instead of the shapes' automaton reading it a byte at a time.
const SHAPE_LITERALS: [&str; 22] = [
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xoxb-",
    "xoxa-",
    "xoxp-",
    "xoxr-",
    "xoxs-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "glpat-",
    "AIza",
    "eyJ",
    "-----BEGIN",
    "://",
];

fn may_hold_credential_shape(text: &str) -> bool {
    static LITERALS: OnceLock<AhoCorasick> = OnceLock::new();
    LITERALS
        .get_or_init(|| {
            // Leftmost: the kind aho-corasick runs its SIMD (Teddy) search
            // for; the standard kind steps its automaton a byte at a time.
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .build(SHAPE_LITERALS)
                .unwrap_or_else(|_| unreachable!("constant literals"))
        })
        .is_match(text)
        || holds_authorization(text.as_bytes())
}

/// The header name the shapes' `(?i:...authorization)` looks for.
const AUTHORIZATION: &[u8] = b"authorization";

/// Whether `text` holds `authorization` in any case (none of its letters
/// has a non-ASCII case variant, so ASCII case is all the shapes' `(?i)`
/// can vary). Its `z` is rare in text: each `z` or `Z` is looked around.
/// Text dense with them (`zzzz...`) is lowercased a chunk at a time and
/// searched with `memmem` from the point where they became many.
fn holds_authorization(text: &[u8]) -> bool {
    // Where the `z` is in AUTHORIZATION.
    const Z_AT: usize = 7;
    // Past this many `z`, looking around each costs more than the chunks.
    const SPARSE_ZS: usize = 32;
    for (seen, at) in memchr::memchr2_iter(b'z', b'Z', text).enumerate() {
        if seen == SPARSE_ZS {
            return holds_authorization_by_chunks(&text[at.saturating_sub(Z_AT)..]);
        }
        let Some(start) = at.checked_sub(Z_AT) else {
            continue;
        };
        if text
            .get(start..start + AUTHORIZATION.len())
            .is_some_and(|around| around.eq_ignore_ascii_case(AUTHORIZATION))
        {
            return true;
        }
    }
    false
}

/// [`holds_authorization`] on text dense with `z`: lowercased a chunk at a
/// time (on the stack) and searched with `memmem`.
fn holds_authorization_by_chunks(text: &[u8]) -> bool {
    const CHUNK: usize = 1024;
    static FINDER: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
    let finder = FINDER.get_or_init(|| memchr::memmem::Finder::new(AUTHORIZATION));
    let mut lower = [0u8; CHUNK + AUTHORIZATION.len()];
    let mut start = 0;
    while start < text.len() {
        // Chunks overlap by the word's length less one.
        let chunk = &text[start..(start + CHUNK + AUTHORIZATION.len() - 1).min(text.len())];
        let lower = &mut lower[..chunk.len()];
        for (to, from) in lower.iter_mut().zip(chunk) {
            *to = from.to_ascii_lowercase();
        }
        if finder.find(lower).is_some() {
            return true;
        }
        start += CHUNK;
    }
    false
}

/// Values too weak to be secrets even under a secret-looking name.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || v.len() < 6
        || v.starts_with('$')
        || v.starts_with("/run/secrets/")
        || v.ends_with("_FILE")
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "changeme" | "password" | "secret" | "example" | "true" | "false" | "none" | "null"
        )
}

/// Why `key=value` looks like a secret, or `None`.
pub fn looks_secret(key: &str, value: &str) -> Option<&'static str> {
    if credential_shapes().is_match(value) {
        return Some("the value has the shape of a credential");
    }
    // `*_FILE` variables point to a file, the way secrets should be passed.
    if key.to_ascii_uppercase().ends_with("_FILE") {
        return None;
    }
    if secret_name().is_match(key) && !is_placeholder(value) {
        return Some("the name says it holds a secret");
    }
    None
}

/// `<redacted, N chars>`: all that is shown of a secret.
pub fn redacted_value(value: &str) -> String {
    format!("<redacted, {} chars>", value.chars().count())
}

/// `KEY=<redacted, N chars>`.
pub fn redacted(key: &str, value: &str) -> String {
    format!("{key}={}", redacted_value(value))
}

/// Whether secrets are hidden (the default) or kept as they came, for those
/// who want raw values (`[redaction] keep_raw = true`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Redaction {
    #[default]
    Redact,
    KeepRaw,
}

impl Redaction {
    pub fn keep_raw(keep_raw: bool) -> Self {
        if keep_raw {
            Self::KeepRaw
        } else {
            Self::Redact
        }
    }

    /// One `key=value` pair (a label, an event attribute): the value
    /// redacted when [`looks_secret`] says so.
    pub fn pair<'a>(self, key: &str, value: &'a str) -> Cow<'a, str> {
        if self == Self::Redact && looks_secret(key, value).is_some() {
            Cow::Owned(redacted_value(value))
        } else {
            Cow::Borrowed(value)
        }
    }

    /// Labels or attributes, redacted in place.
    pub fn map(self, pairs: &mut BTreeMap<String, String>) {
        if self == Self::KeepRaw {
            return;
        }
        for (key, value) in pairs.iter_mut() {
            if let Cow::Owned(hidden) = self.pair(key, value) {
                *value = hidden;
            }
        }
    }

    /// Whether [`Self::text`] may change `text`. When it may not, it
    /// changes no part of it either (what it looks for first is a literal,
    /// found in any text that holds a part holding it): the fields cut from
    /// a log line need no look of their own.
    pub fn may_change_text(self, text: &str) -> bool {
        self == Self::Redact && may_hold_credential_shape(text)
    }

    /// Free text such as a log line, which is evidence: only what has the
    /// shape of a credential is hidden (tokens, keys, a URL's password, an
    /// Authorization header), not what merely follows a secret-looking name.
    pub fn text<'a>(self, text: &'a str) -> Cow<'a, str> {
        if !self.may_change_text(text) {
            return Cow::Borrowed(text);
        }
        credential_shapes().replace_all(text, |caps: &regex::Captures<'_>| {
            let whole = caps.get(0).map_or("", |m| m.as_str());
            let secret = ["secret", "url_password", "auth"]
                .iter()
                .find_map(|name| caps.name(name));
            match (caps.get(0), secret) {
                (Some(all), Some(secret)) => {
                    let before = &whole[..secret.start() - all.start()];
                    let after = &whole[secret.end() - all.start()..];
                    format!("{before}{}{after}", redacted_value(secret.as_str()))
                }
                _ => whole.to_owned(),
            }
        })
    }

    /// A command line (an exec's command): the credential shapes of
    /// [`Redaction::text`], plus what the command's own syntax marks as a
    /// secret — `NAME=value` and `--name=value` / `--name value` under a
    /// secret-looking name (`PGPASSWORD=… psql`, `--password=…`), MySQL's
    /// `-pPASSWORD`, `sshpass -p`, `redis-cli -a`, curl's `-u user:pass`,
    /// and headers such as `X-Api-Key: …`. Such values are hidden whatever
    /// their length: a command runs with real credentials, not examples.
    pub fn command_line<'a>(self, command: &'a str) -> Cow<'a, str> {
        if self == Self::KeepRaw {
            return Cow::Borrowed(command);
        }
        let spans = command_secret_spans(command);
        if spans.is_empty() {
            return self.text(command);
        }
        let mut out = String::with_capacity(command.len() + 16 * spans.len());
        let mut at = 0;
        for (start, end) in spans {
            out.push_str(&command[at..start]);
            out.push_str(&redacted_value(&command[start..end]));
            at = end;
        }
        out.push_str(&command[at..]);
        Cow::Owned(self.text(&out).into_owned())
    }
}

/// Clients whose `-p` glued to a value is the password.
const MYSQL_CLIENTS: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlshow",
    "mysqlcheck",
    "mysqlpump",
    "mysqlsh",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
];

/// How the word after the current one is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Plain,
    /// The whole word is a secret (`--password VALUE`, `sshpass -p VALUE`).
    Secret,
    /// `user:password`: the part after the first colon is.
    UserPassword,
}

/// Byte ranges of `command` that hold secrets by the command's syntax.
fn command_secret_spans(command: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut programs: Vec<&str> = Vec::new();
    let mut next = Next::Plain;
    for (word_start, word) in words(command) {
        // Quotes around a word (`sh -c 'mysql -pX'`) are not part of it.
        let lead = word.len() - word.trim_start_matches(['\'', '"']).len();
        let core = word.trim_matches(['\'', '"']);
        let start = word_start + lead;
        let end = start + core.len();
        let seen = |names: &[&str]| programs.iter().any(|p| names.contains(p));
        let is_flag = core.starts_with('-') && core.len() > 1;
        match std::mem::replace(&mut next, Next::Plain) {
            Next::Secret if !is_flag && is_literal(core) => {
                spans.push((start, end));
                continue;
            }
            Next::UserPassword if !is_flag => {
                if let Some(colon) = core.find(':') {
                    push_literal(&mut spans, start + colon + 1, &core[colon + 1..]);
                }
                continue;
            }
            _ => {}
        }
        if let Some(eq) = core.find('=') {
            let name = core[..eq].trim_start_matches('-');
            let value = &core[eq + 1..];
            let value_start = start + eq + 1;
            if is_name(name) && secret_name().is_match(name) {
                push_literal(&mut spans, value_start, value);
            } else if is_flag && matches!(name, "user" | "proxy-user") {
                if let Some(colon) = value.find(':') {
                    push_literal(&mut spans, value_start + colon + 1, &value[colon + 1..]);
                }
            }
            continue;
        }
        if let Some(header) = core.strip_suffix(':') {
            if is_name(header) && secret_name().is_match(header) {
                next = Next::Secret;
            }
            continue;
        }
        if let Some(long) = core.strip_prefix("--") {
            if is_name(long) && secret_name().is_match(long) {
                next = Next::Secret;
            } else if matches!(long, "user" | "proxy-user") && seen(&["curl"]) {
                next = Next::UserPassword;
            }
            continue;
        }
        if let Some(short) = core.strip_prefix('-') {
            let (flag, glued) = short.split_at(short.chars().next().map_or(0, char::len_utf8));
            let glued_start = start + 2;
            match flag {
                "p" if seen(MYSQL_CLIENTS) => push_literal(&mut spans, glued_start, glued),
                "p" if seen(&["sshpass"]) => {
                    if glued.is_empty() {
                        next = Next::Secret;
                    } else {
                        push_literal(&mut spans, glued_start, glued);
                    }
                }
                "a" if seen(&["redis-cli"]) => {
                    if glued.is_empty() {
                        next = Next::Secret;
                    } else {
                        push_literal(&mut spans, glued_start, glued);
                    }
                }
                "u" | "U" if seen(&["curl"]) => {
                    if glued.is_empty() {
                        next = Next::UserPassword;
                    } else if let Some(colon) = glued.find(':') {
                        push_literal(&mut spans, glued_start + colon + 1, &glued[colon + 1..]);
                    }
                }
                _ => {}
            }
            continue;
        }
        programs.push(core.rsplit('/').next().unwrap_or(core));
    }
    spans
}

/// The words of `text` with their byte offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(char::is_whitespace)
        .scan(0usize, |offset, word| {
            let start = *offset;
            // Every separator is one whitespace char; find its width.
            let separator = text[start + word.len()..]
                .chars()
                .next()
                .map_or(0, char::len_utf8);
            *offset = start + word.len() + separator;
            Some((start, word))
        })
        .filter(|(_, word)| !word.is_empty())
}

/// A value written out, not a variable (`$PASSWORD`, `${TOKEN}`) or nothing.
fn is_literal(value: &str) -> bool {
    !value.is_empty() && !value.starts_with('$')
}

fn push_literal(spans: &mut Vec<(usize, usize)>, start: usize, value: &str) {
    let inner = value.trim_matches(['\'', '"']);
    if is_literal(inner) {
        let lead = value.len() - value.trim_start_matches(['\'', '"']).len();
        spans.push((start + lead, start + lead + inner.len()));
    }
}

/// A variable, option or header name.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Redaction = Redaction::Redact;

    #[test]
    fn names_and_shapes() {
        assert!(looks_secret(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        )
        .is_some());
        assert!(looks_secret("DB_PASSWORD", "hunter2-correct-horse").is_some());
        assert!(looks_secret("ANYTHING", "AKIAIOSFODNN7EXAMPLE").is_some());
        assert!(looks_secret("URL", "postgres://app:s3cr3tpw@db:5432/app").is_some());
        assert!(looks_secret("GH", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789").is_some());
        assert!(looks_secret("com.example.token", "tok-8f2a61c9d4e7b035").is_some());
        assert!(looks_secret("PATH", "/usr/local/bin:/usr/bin").is_none());
        assert!(looks_secret("DB_PASSWORD_FILE", "/run/secrets/db").is_none());
        assert!(looks_secret("PASSWORD", "").is_none());
        assert!(looks_secret("TOKEN", "${TOKEN}").is_none());
        assert!(looks_secret("NGINX_VERSION", "1.25.3").is_none());
        assert!(looks_secret("URL", "https://example.com/a:b@c").is_none());
    }

    #[test]
    fn redaction_keeps_the_key_and_the_length() {
        assert_eq!(redacted("API_KEY", "abcdef"), "API_KEY=<redacted, 6 chars>");
        let mut labels = BTreeMap::from([
            (
                "com.example.token".to_owned(),
                "tok-8f2a61c9d4e7b035".to_owned(),
            ),
            ("com.docker.compose.service".to_owned(), "web".to_owned()),
        ]);
        Redaction::KeepRaw.map(&mut labels);
        assert_eq!(labels["com.example.token"], "tok-8f2a61c9d4e7b035");
        R.map(&mut labels);
        assert_eq!(labels["com.example.token"], "<redacted, 20 chars>");
        assert_eq!(labels["com.docker.compose.service"], "web");
    }

    #[test]
    fn passwords_on_command_lines_are_redacted() {
        let cases = [
            (
                "sh -c mysql -uroot -pS3cretPassw0rd shop",
                "sh -c mysql -uroot -p<redacted, 14 chars> shop",
            ),
            (
                "sh -c 'mysql -pS3cretPassw0rd -e \"select 1\"'",
                "sh -c 'mysql -p<redacted, 14 chars> -e \"select 1\"'",
            ),
            (
                "mysqldump --password=S3cret db",
                "mysqldump --password=<redacted, 6 chars> db",
            ),
            (
                "PGPASSWORD=hunter2 psql -h db",
                "PGPASSWORD=<redacted, 7 chars> psql -h db",
            ),
            (
                "app --api-key abcdef123 --verbose",
                "app --api-key <redacted, 9 chars> --verbose",
            ),
            (
                "curl -u admin:pa55word http://x/",
                "curl -u admin:<redacted, 8 chars> http://x/",
            ),
            (
                "curl -uadmin:pa55 --user=bob:pw http://x/",
                "curl -uadmin:<redacted, 4 chars> --user=bob:<redacted, 2 chars> http://x/",
            ),
            (
                "wget https://bob:hunter22@example.com/file",
                "wget https://bob:<redacted, 8 chars>@example.com/file",
            ),
            (
                "curl -H 'Authorization: Bearer abc.def.ghi' http://x/",
                "curl -H 'Authorization: Bearer <redacted, 11 chars>' http://x/",
            ),
            (
                "curl -H 'X-Api-Key: k3y' http://x/",
                "curl -H 'X-Api-Key: <redacted, 3 chars>' http://x/",
            ),
            (
                "sshpass -p hunter2 ssh host",
                "sshpass -p <redacted, 7 chars> ssh host",
            ),
            (
                "redis-cli -a s3cret ping",
                "redis-cli -a <redacted, 6 chars> ping",
            ),
            (
                "git clone https://x:ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789@github.com/a/b",
                "git clone https://x:<redacted, 40 chars>@github.com/a/b",
            ),
            (
                "env TOKEN=ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 run",
                "env TOKEN=<redacted, 40 chars> run",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(R.command_line(raw), want, "{raw}");
            assert_eq!(Redaction::KeepRaw.command_line(raw), raw);
        }
    }

    #[test]
    fn ordinary_commands_are_left_alone() {
        for raw in [
            "sh -c 'cat /etc/shadow'",
            "mkdir -p /tmp/x",
            "docker run -p 80:80 -u root nginx",
            "mysql -p shop",
            "psql -U postgres",
            "PGPASSWORD=$PW psql",
            "ls --color=auto",
            "echo 'a  b'  \t c",
        ] {
            assert_eq!(R.command_line(raw), raw);
        }
    }

    #[test]
    fn log_lines_lose_only_credential_shapes() {
        assert_eq!(
            R.text(
                "GET /?id=1' OR '1'='1&password=x HTTP/1.1 Authorization: Basic YWRtaW46cGFzcw=="
            ),
            "GET /?id=1' OR '1'='1&password=x HTTP/1.1 Authorization: Basic <redacted, 16 chars>"
        );
        assert_eq!(
            R.text("key AKIAIOSFODNN7EXAMPLE used"),
            "key <redacted, 20 chars> used"
        );
        assert_eq!(
            R.text("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done"),
            "<redacted, 66 chars> done"
        );
        assert_eq!(
            R.text(r#"{"authorization":"Bearer abc123","path":"/"}"#),
            r#"{"authorization":"Bearer <redacted, 6 chars>","path":"/"}"#
        );
        let plain = "GET /index.html HTTP/1.1 200";
        assert!(matches!(R.text(plain), Cow::Borrowed(_)));
    }

    #[test]
    fn every_credential_shape_holds_one_of_the_literals_looked_for_first() {
        for shape in [
            "AKIAIOSFODNN7EXAMPLE",
            "ASIAIOSFODNN7EXAMPLE",
            "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "ghs_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "github_pat_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "xoxb-1234567890",
            "sk_live_aaaaaaaaaaaaaaaa",
            "rk_test_aaaaaaaaaaaaaaaa",
            "glpat-aaaaaaaaaaaaaaaaaaaa",
            "AIzaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "eyJaaaaaaaaaaaa.eyJaaaaaaaaaaaa.sig",
            "-----BEGIN PRIVATE KEY----- x",
            "https://user:pw@host/",
            "AUTHORIZATION: Bearer abcdef",
            "Proxy-Authorization: Basic abcdef",
        ] {
            assert!(credential_shapes().is_match(shape), "{shape}");
            assert!(may_hold_credential_shape(shape), "{shape}");
            assert!(matches!(R.text(shape), Cow::Owned(_)), "{shape}");
        }
        assert!(!may_hold_credential_shape("/search?q=../../../etc/passwd"));
        assert!(!may_hold_credential_shape("akia ghp- eyj"));
        // `authorization` among few `z` (looked around) and among many
        // (chunks), across the place where two chunks overlap.
        for filler in ["x", "z", "zx"] {
            for at in [0, 6, 7, 1016, 1020, 1024, 4095, 5000, 9000 - 13] {
                let mut text = filler.repeat(9000 / filler.len());
                text.replace_range(at..at + 13, "AuThOrIzAtIoN");
                assert!(may_hold_credential_shape(&text), "{filler} {at}");
            }
            let mut text = filler.repeat(9000 / filler.len());
            text.replace_range(9000 - 12.., "authorizatio");
            assert!(!may_hold_credential_shape(&text), "{filler} at the end");
        }
        // The `z` after which they are many is the word's own.
        for before in [31, 32, 33] {
            let text = format!("{}Authorization", "z".repeat(before));
            assert!(may_hold_credential_shape(&text), "{before}");
        }
        assert!(!may_hold_credential_shape(&"authorizatio ".repeat(700)));
        assert!(!may_hold_credential_shape(&"uthorization ".repeat(700)));
        assert!(!may_hold_credential_shape("zation"));
    }
}
