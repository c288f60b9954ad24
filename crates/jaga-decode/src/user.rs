//! User-defined decoders, declared in a rule file: chosen by a prematch
//! regex, fields taken from a regex's named captures, optionally as a child
//! of another decoder (tried only when the parent's prematch matched).

use regex::Regex;
use serde::Deserialize;

use crate::Fields;

/// A decoder as written in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDecoderSpec {
    pub name: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub prematch: Option<String>,
    /// Named captures become fields: `(?P<srcip>\S+)`.
    #[serde(default)]
    pub regex: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UserDecoder {
    pub name: String,
    parent: Option<usize>,
    prematch: Option<Regex>,
    regex: Option<Regex>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserDecoderError {
    #[error("decoder '{name}': invalid {what}: {reason}")]
    Regex {
        name: String,
        what: &'static str,
        reason: String,
    },
    #[error("decoder '{name}': unknown parent '{parent}' (parents must come first)")]
    UnknownParent { name: String, parent: String },
    #[error("decoder '{name}': needs a prematch or a regex")]
    Empty { name: String },
}

impl UserDecoderError {
    /// The decoder the error is about.
    pub fn decoder(&self) -> &str {
        match self {
            Self::Regex { name, .. } | Self::UnknownParent { name, .. } | Self::Empty { name } => {
                name
            }
        }
    }
}

/// The user's decoders, in file order.
#[derive(Debug, Clone, Default)]
pub struct UserDecoders {
    decoders: Vec<UserDecoder>,
}

impl UserDecoders {
    pub fn compile(specs: &[UserDecoderSpec]) -> Result<Self, UserDecoderError> {
        let mut decoders: Vec<UserDecoder> = Vec::new();
        for spec in specs {
            let compile = |what: &'static str,
                           pattern: &Option<String>|
             -> Result<Option<Regex>, UserDecoderError> {
                pattern
                    .as_deref()
                    .map(|p| {
                        crate::pattern::build_regex(p).map_err(|reason| UserDecoderError::Regex {
                            name: spec.name.clone(),
                            what,
                            reason,
                        })
                    })
                    .transpose()
            };
            let prematch = compile("prematch", &spec.prematch)?;
            let regex = compile("regex", &spec.regex)?;
            if prematch.is_none() && regex.is_none() {
                return Err(UserDecoderError::Empty {
                    name: spec.name.clone(),
                });
            }
            let parent = match &spec.parent {
                Some(parent) => Some(decoders.iter().position(|d| &d.name == parent).ok_or_else(
                    || UserDecoderError::UnknownParent {
                        name: spec.name.clone(),
                        parent: parent.clone(),
                    },
                )?),
                None => None,
            };
            decoders.push(UserDecoder {
                name: spec.name.clone(),
                parent,
                prematch,
                regex,
            });
        }
        Ok(Self { decoders })
    }

    pub fn is_empty(&self) -> bool {
        self.decoders.is_empty()
    }

    /// The first root decoder whose prematch matches, refined by the first
    /// of its children that matches.
    pub fn decode<'a>(&self, line: &'a str) -> Option<Fields<'a>> {
        let root = self
            .decoders
            .iter()
            .enumerate()
            .find(|(_, d)| d.parent.is_none() && d.matches(line))?;
        let chosen = self
            .decoders
            .iter()
            .find(|d| d.parent == Some(root.0) && d.matches(line))
            .unwrap_or(root.1);
        let mut fields = Fields::new(chosen.name.clone());
        for decoder in [root.1, chosen] {
            if let Some(regex) = &decoder.regex {
                if let Some(captures) = regex.captures(line) {
                    for name in regex.capture_names().flatten() {
                        if let Some(m) = captures.name(name) {
                            fields.set(name.to_owned(), m.as_str());
                        }
                    }
                }
            }
        }
        if fields.get("path").is_none() {
            fields.split_url();
        }
        Some(fields)
    }
}

impl UserDecoder {
    fn matches(&self, line: &str) -> bool {
        match (&self.prematch, &self.regex) {
            (Some(p), _) => p.is_match(line),
            (None, Some(r)) => r.is_match(line),
            (None, None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        name: &str,
        parent: Option<&str>,
        prematch: Option<&str>,
        regex: Option<&str>,
    ) -> UserDecoderSpec {
        UserDecoderSpec {
            name: name.into(),
            parent: parent.map(Into::into),
            prematch: prematch.map(Into::into),
            regex: regex.map(Into::into),
        }
    }

    #[test]
    fn parent_and_child() {
        let decoders = UserDecoders::compile(&[
            spec("myapp", None, Some(r"^myapp\["), None),
            spec(
                "myapp-login",
                Some("myapp"),
                Some("login"),
                Some(r"login (?P<result>\w+) user=(?P<user>\S+) from=(?P<srcip>\S+)"),
            ),
        ])
        .unwrap();
        let f = decoders
            .decode("myapp[1]: login failed user=root from=10.0.0.8")
            .unwrap();
        assert_eq!(f.decoder, "myapp-login");
        assert_eq!(f.get("srcip"), Some("10.0.0.8"));
        assert_eq!(f.get("result"), Some("failed"));
        let f = decoders.decode("myapp[1]: started").unwrap();
        assert_eq!(f.decoder, "myapp");
        assert!(decoders.decode("other").is_none());
    }

    #[test]
    fn errors_name_the_decoder() {
        let err = UserDecoders::compile(&[spec("bad", None, Some("("), None)]).unwrap_err();
        assert!(matches!(err, UserDecoderError::Regex { ref name, .. } if name == "bad"));
        let err = UserDecoders::compile(&[spec("huge", None, None, Some(&"x".repeat(20_000)))])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "decoder 'huge': invalid regex: the pattern is 20000 bytes long, more than \
             the limit of 16384"
        );
        let err =
            UserDecoders::compile(&[spec("orphan", Some("nobody"), Some("x"), None)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "decoder 'orphan': unknown parent 'nobody' (parents must come first)"
        );
    }
}
