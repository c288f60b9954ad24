//! Decoded fields: a small ordered map from name to text.

use std::borrow::Cow;

use serde::Serialize;

/// The fields of one line. A value is borrowed from the line when the
/// decoder took it as it stands (an access log's url, query and agent),
/// so a long line is not copied: an 8 KB url was two allocations and
/// copies of its size (url and query) for each line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fields<'a> {
    /// The decoder that produced them: `nginx-combined`, `json`, ...
    pub decoder: Cow<'static, str>,
    /// Names the decoders know (`url`, `srcip`, ...) are not copied for
    /// each line; names from the line itself (JSON keys) are.
    pub values: Vec<(Cow<'static, str>, Cow<'a, str>)>,
}

/// Room for the fields of an access log line without growing.
const USUAL_FIELDS: usize = 16;

impl<'a> Fields<'a> {
    pub fn new(decoder: impl Into<Cow<'static, str>>) -> Self {
        Self {
            decoder: decoder.into(),
            values: Vec::with_capacity(USUAL_FIELDS),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Sets `name`, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'a, str>>) {
        let (name, value) = (name.into(), value.into());
        match self.values.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    /// The same fields, owning their values: to keep them past the line.
    pub fn into_owned(self) -> Fields<'static> {
        Fields {
            decoder: self.decoder,
            values: self
                .values
                .into_iter()
                .map(|(name, value)| (name, Cow::Owned(value.into_owned())))
                .collect(),
        }
    }

    /// Adds `path` and `query` split from `url`: borrowed from the line
    /// when the url is, else each part copied once.
    pub fn split_url(&mut self) {
        let Some((_, url)) = self.values.iter().find(|(k, _)| k == "url") else {
            return;
        };
        let question = memchr::memchr(b'?', url.as_bytes());
        let end = url.len();
        let part = |range: std::ops::Range<usize>| -> Cow<'a, str> {
            match url {
                Cow::Borrowed(url) => Cow::Borrowed(&url[range]),
                Cow::Owned(url) => Cow::Owned(url[range].to_owned()),
            }
        };
        let path = part(0..question.unwrap_or(end));
        let query = question.map(|at| part(at + 1..end));
        self.set("path", path);
        if let Some(query) = query {
            self.set("query", query);
        }
    }
}
