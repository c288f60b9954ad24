//! Decoded fields: a small ordered map from name to text.

use std::borrow::Cow;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fields {
    /// The decoder that produced them: `nginx-combined`, `json`, ...
    pub decoder: String,
    /// Names the decoders know (`url`, `srcip`, ...) are not copied for
    /// each line; names from the line itself (JSON keys) are.
    pub values: Vec<(Cow<'static, str>, String)>,
}

/// Room for the fields of an access log line without growing.
const USUAL_FIELDS: usize = 16;

impl Fields {
    pub fn new(decoder: &str) -> Self {
        Self {
            decoder: decoder.to_owned(),
            values: Vec::with_capacity(USUAL_FIELDS),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name`, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        match self.values.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    /// Adds `path` and `query` split from `url`.
    pub fn split_url(&mut self) {
        let Some(url) = self.get("url") else {
            return;
        };
        // Each part copied once (a long url is up to a few kilobytes).
        let (path, query) = match memchr::memchr(b'?', url.as_bytes()) {
            Some(at) => (url[..at].to_owned(), Some(url[at + 1..].to_owned())),
            None => (url.to_owned(), None),
        };
        self.set("path", path);
        if let Some(query) = query {
            self.set("query", query);
        }
    }
}
