//! Secrets in environment variables, labels and image history: found by
//! name and by the shape of the value (jaga's one rule, in `jaga-redact`),
//! and never shown: evidence carries the key and the value's length only.
//! The audit reads raw values from the Engine: it must see a secret to
//! report it.

pub use jaga_redact::{looks_secret, redacted};

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
