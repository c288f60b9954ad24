//! Docker's json-file lines: `{"log":"...\n","stream":"stdout","time":"..."}`.
//! A line longer than 16 KiB arrives as several entries; all but the last
//! lack the final `\n`. [`Reassembler`] joins them, with a bound.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DockerLine {
    pub log: String,
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub time: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WrapperError {
    #[error("not a Docker json-file line: {0}")]
    NotJson(String),
}

impl DockerLine {
    pub fn parse(line: &str) -> Result<Self, WrapperError> {
        serde_json::from_str(line).map_err(|e| WrapperError::NotJson(e.to_string()))
    }

    /// Docker split this line: more of it follows.
    pub fn is_partial(&self) -> bool {
        !self.log.ends_with('\n')
    }
}

/// Joins partial entries into whole messages. A message growing past
/// `max_bytes` is cut there and flagged, so no input can hold unbounded memory.
#[derive(Debug)]
pub struct Reassembler {
    pending: String,
    pending_time: String,
    pending_stream: String,
    max_bytes: usize,
    truncated: bool,
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub stream: String,
    pub time: String,
    /// Longer than the bound: the rest was dropped.
    pub truncated: bool,
}

impl Reassembler {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            pending: String::new(),
            pending_time: String::new(),
            pending_stream: String::new(),
            max_bytes,
            truncated: false,
        }
    }

    /// Feeds one entry; a message when this entry completes one.
    pub fn push(&mut self, line: DockerLine) -> Option<Message> {
        if self.pending.is_empty() {
            self.pending_time = line.time.clone();
            self.pending_stream = line.stream.clone();
        }
        let partial = line.is_partial();
        let text = line.log.strip_suffix('\n').unwrap_or(&line.log);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let room = self.max_bytes.saturating_sub(self.pending.len());
        if text.len() > room {
            let mut cut = room;
            while cut > 0 && !text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.pending.push_str(&text[..cut]);
            self.truncated = true;
        } else {
            self.pending.push_str(text);
        }
        if partial {
            return None;
        }
        let message = Message {
            text: std::mem::take(&mut self.pending),
            stream: std::mem::take(&mut self.pending_stream),
            time: std::mem::take(&mut self.pending_time),
            truncated: self.truncated,
        };
        self.truncated = false;
        Some(message)
    }

    /// Bytes held for a message not yet complete.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_fields() {
        let line = DockerLine::parse(
            r#"{"log":"GET / 200\n","stream":"stdout","time":"2026-11-23T03:00:00.123456789Z"}"#,
        )
        .unwrap();
        assert_eq!(line.log, "GET / 200\n");
        assert!(!line.is_partial());
        assert!(DockerLine::parse("{broken").is_err());
    }

    #[test]
    fn partial_lines_are_joined() {
        let mut r = Reassembler::new(1 << 20);
        let a = "a".repeat(16384);
        let b = "b".repeat(100);
        assert_eq!(
            r.push(DockerLine {
                log: a.clone(),
                stream: "stdout".into(),
                time: "t1".into()
            }),
            None
        );
        let m = r
            .push(DockerLine {
                log: format!("{b}\n"),
                stream: "stdout".into(),
                time: "t2".into(),
            })
            .unwrap();
        assert_eq!(m.text, format!("{a}{b}"));
        assert_eq!(m.time, "t1");
        assert!(!m.truncated);
    }

    #[test]
    fn huge_messages_are_cut_at_the_bound() {
        let mut r = Reassembler::new(10);
        assert_eq!(
            r.push(DockerLine {
                log: "0123456".into(),
                stream: String::new(),
                time: String::new()
            }),
            None
        );
        let m = r
            .push(DockerLine {
                log: "789abcdef\n".into(),
                stream: String::new(),
                time: String::new(),
            })
            .unwrap();
        assert_eq!(m.text, "0123456789");
        assert!(m.truncated);
        let next = r
            .push(DockerLine {
                log: "ok\n".into(),
                stream: String::new(),
                time: String::new(),
            })
            .unwrap();
        assert_eq!(next.text, "ok");
        assert!(!next.truncated);
    }
}
