//! Secrets an output needs (webhook signing keys, SMTP passwords, URLs
//! with tokens in them), given in the config by reference rather than
//! inline: `{ file = "/run/secrets/slack" }` or `{ env = "SLACK_URL" }`.
//! An inline string works too, for tests and throwaway setups.

use std::fmt;
use std::path::PathBuf;

use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};

/// Where a secret is read from. Neither `Debug` nor `Serialize` (what
/// `jaga config show` prints) ever shows an inline value: it is written as
/// `<redacted, N chars>`, as every other secret jaga shows.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    Inline(String),
    File { file: PathBuf },
    Env { env: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret file '{path}': {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret file '{path}' is empty")]
    EmptyFile { path: PathBuf },
    #[error("the environment variable {name} holding a secret is not set or not UTF-8")]
    Env { name: String },
    #[error("the environment variable {name} holding a secret is empty")]
    EmptyEnv { name: String },
}

impl Secret {
    /// The value, read now (so a rotated file is picked up by a reload).
    /// A trailing newline in a file is not part of the secret.
    pub fn reveal(&self) -> Result<String, SecretError> {
        match self {
            Secret::Inline(value) => Ok(value.clone()),
            Secret::File { file } => {
                let text = std::fs::read_to_string(file).map_err(|source| SecretError::File {
                    path: file.clone(),
                    source,
                })?;
                let value = text.trim_end_matches(['\n', '\r']).to_string();
                if value.is_empty() {
                    return Err(SecretError::EmptyFile { path: file.clone() });
                }
                Ok(value)
            }
            Secret::Env { env } => {
                let value =
                    std::env::var(env).map_err(|_| SecretError::Env { name: env.clone() })?;
                if value.is_empty() {
                    return Err(SecretError::EmptyEnv { name: env.clone() });
                }
                Ok(value)
            }
        }
    }

    /// Where it comes from, safe to print.
    pub fn describe(&self) -> String {
        match self {
            Secret::Inline(_) => "inline value".to_string(),
            Secret::File { file } => format!("file '{}'", file.display()),
            Secret::Env { env } => format!("environment variable {env}"),
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Secret::Inline(value) => serializer.serialize_str(&jaga_redact::redacted_value(value)),
            Secret::File { file } => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("file", file)?;
                map.end()
            }
            Secret::Env { env } => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("env", env)?;
                map.end()
            }
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        secret: Secret,
    }

    fn parse(text: &str) -> Secret {
        match toml::from_str::<Holder>(text) {
            Ok(holder) => holder.secret,
            Err(error) => panic!("cannot parse {text:?}: {error}"),
        }
    }

    #[test]
    fn a_secret_file_is_read_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").unwrap();
        let secret = parse(&format!(
            "secret = {{ file = {:?} }}",
            path.display().to_string()
        ));
        assert_eq!(secret.reveal().unwrap(), "s3cret");
    }

    #[test]
    fn a_missing_secret_file_says_which_file() {
        let secret = parse("secret = { file = \"/nonexistent/jaga-key\" }");
        let message = secret.reveal().unwrap_err().to_string();
        assert!(message.contains("/nonexistent/jaga-key"), "{message}");
    }

    #[test]
    fn an_unset_environment_variable_is_named_in_the_error() {
        let secret = parse("secret = { env = \"JAGA_TEST_UNSET_SECRET_VAR\" }");
        let message = secret.reveal().unwrap_err().to_string();
        assert!(message.contains("JAGA_TEST_UNSET_SECRET_VAR"), "{message}");
    }

    #[test]
    fn serializing_redacts_an_inline_value_and_keeps_references() {
        #[derive(Serialize)]
        struct Shown {
            inline: Secret,
            file: Secret,
            env: Secret,
        }
        let shown = Shown {
            inline: parse("secret = \"hunter2\""),
            file: parse("secret = { file = \"/run/secrets/key\" }"),
            env: parse("secret = { env = \"HOOK_URL\" }"),
        };
        let text = toml::to_string(&shown).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("inline = \"<redacted, 7 chars>\""), "{text}");
        let again: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(again["file"]["file"].as_str(), Some("/run/secrets/key"));
        assert_eq!(again["env"]["env"].as_str(), Some("HOOK_URL"));
    }

    #[test]
    fn debug_never_shows_an_inline_value() {
        let secret = parse("secret = \"hunter2\"");
        assert_eq!(secret.reveal().unwrap(), "hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
