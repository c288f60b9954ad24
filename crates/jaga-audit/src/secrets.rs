//! Secrets in environment variables, labels and image history: found by
//! name and by the shape of the value, and never shown: evidence carries the
//! key and the value's length only.

use std::sync::OnceLock;

use regex::{Regex, RegexSet};

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

/// Values that look like a secret whatever their name.
fn secret_value() -> &'static RegexSet {
    static VALUE: OnceLock<RegexSet> = OnceLock::new();
    VALUE.get_or_init(|| {
        RegexSet::new([
            r"^(AKIA|ASIA)[0-9A-Z]{16}$",                       // AWS access key id
            r"^gh[pousr]_[A-Za-z0-9]{36,}$",                    // GitHub token
            r"^github_pat_[A-Za-z0-9_]{40,}$",                  // GitHub fine-grained token
            r"^xox[baprs]-[A-Za-z0-9-]{10,}$",                  // Slack token
            r"^(sk|rk)_(live|test)_[A-Za-z0-9]{16,}$",          // Stripe key
            r"^glpat-[A-Za-z0-9_-]{20,}$",                      // GitLab token
            r"^AIza[0-9A-Za-z_-]{35}$",                         // Google API key
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----",              // PEM private key
            r"^eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.", // JWT
            r"^[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@",        // URL with a password
        ])
        .unwrap_or_else(|_| unreachable!("constant patterns"))
    })
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
    if secret_value().is_match(value.trim()) {
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

/// `KEY=<redacted, N chars>`: all that evidence may say of a secret.
pub fn redacted(key: &str, value: &str) -> String {
    format!("{key}=<redacted, {} chars>", value.chars().count())
}

/// `ENV`/`ARG` instructions in an image history line (`ENV A=b C=d`,
/// `ARG TOKEN=x`, the `|2 A=b /bin/sh -c` form of RUN with build args) as
/// key/value pairs.
pub fn history_assignments(created_by: &str) -> Vec<(String, String)> {
    let text = created_by
        .trim()
        .trim_start_matches("/bin/sh -c #(nop)")
        .trim();
    let body = if let Some(rest) = text
        .strip_prefix("ENV ")
        .or_else(|| text.strip_prefix("ARG "))
    {
        rest
    } else if let Some(rest) = text.strip_prefix('|') {
        // `|2 TOKEN=abc OTHER=x /bin/sh -c …`: the build args of a RUN.
        rest.split_once(' ').map_or("", |(_, args)| args)
    } else {
        return Vec::new();
    };
    body.split_whitespace()
        .take_while(|word| word.contains('='))
        .filter_map(|word| word.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(looks_secret("PATH", "/usr/local/bin:/usr/bin").is_none());
        assert!(looks_secret("DB_PASSWORD_FILE", "/run/secrets/db").is_none());
        assert!(looks_secret("PASSWORD", "").is_none());
        assert!(looks_secret("TOKEN", "${TOKEN}").is_none());
        assert!(looks_secret("NGINX_VERSION", "1.25.3").is_none());
    }

    #[test]
    fn redaction_keeps_only_the_length() {
        assert_eq!(redacted("API_KEY", "abcdef"), "API_KEY=<redacted, 6 chars>");
    }

    #[test]
    fn history_lines() {
        assert_eq!(
            history_assignments("/bin/sh -c #(nop)  ENV API_TOKEN=abc123 MODE=prod"),
            vec![
                ("API_TOKEN".into(), "abc123".into()),
                ("MODE".into(), "prod".into())
            ]
        );
        assert_eq!(
            history_assignments("|1 NPM_TOKEN=xyz /bin/sh -c npm ci"),
            vec![("NPM_TOKEN".into(), "xyz".into())]
        );
        assert!(history_assignments("/bin/sh -c apt-get update").is_empty());
    }
}
