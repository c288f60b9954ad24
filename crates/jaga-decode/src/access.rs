//! nginx and apache access logs, `combined` and `common`:
//! `1.2.3.4 - user [23/Nov/2026:10:00:00 +0000] "GET /a?b=c HTTP/1.1" 200 612 "ref" "agent"`.
//! Parsed by hand: faster than a regex, and it accepts what servers write
//! (escaped quotes in the request, `-` for a missing size).

use std::borrow::Cow;

use crate::Fields;

pub fn decode(line: &str) -> Option<Fields<'_>> {
    let mut rest = line.trim_end();
    let srcip = take_until(&mut rest, ' ')?;
    if !looks_like_address(srcip) {
        return None;
    }
    let ident = take_until(&mut rest, ' ')?;
    let user = take_until(&mut rest, ' ')?;
    rest = rest.strip_prefix('[')?;
    let (timestamp, after) = rest.split_once("] ")?;
    rest = after;
    let request = take_quoted(&mut rest)?;
    rest = rest.trim_start();
    let status = take_until(&mut rest, ' ').or_else(|| {
        let s = rest;
        rest = "";
        Some(s)
    })?;
    if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest = rest.trim_start();
    let bytes = if rest.is_empty() {
        "-"
    } else {
        take_until(&mut rest, ' ').unwrap_or_else(|| {
            let s = rest;
            rest = "";
            s
        })
    };
    rest = rest.trim_start();
    let (decoder, referer, agent) = if rest.starts_with('"') {
        let referer = take_quoted(&mut rest)?;
        rest = rest.trim_start();
        let agent = if rest.starts_with('"') {
            take_quoted(&mut rest)?
        } else {
            Cow::Borrowed("")
        };
        ("access-combined", Some(referer), Some(agent))
    } else {
        ("access-common", None, None)
    };
    let mut fields = Fields::new(decoder);
    fields.set("srcip", srcip);
    if ident != "-" {
        fields.set("ident", ident);
    }
    if user != "-" {
        fields.set("user", user);
    }
    fields.set("timestamp", timestamp);
    // The request's parts are borrowed from the line unless an escape
    // in it made the request a copy.
    let owned_parts = |parts: RequestLine<'_>| RequestLine {
        method: Cow::Owned(parts.method.into_owned()),
        target: Cow::Owned(parts.target.into_owned()),
        protocol: parts.protocol.map(|p| Cow::Owned(p.into_owned())),
    };
    let parts = match &request {
        Cow::Borrowed(request) => split_request(request),
        Cow::Owned(request) => split_request(request).map(owned_parts),
    };
    match parts {
        Some(parts) => {
            // `memchr`: `str::contains` reads the whole target a word at a time.
            let raw_space = memchr::memchr(b' ', parts.target.as_bytes()).is_some();
            fields.set("method", parts.method);
            fields.set("url", parts.target);
            if let Some(protocol) = parts.protocol {
                fields.set("protocol", protocol);
            }
            if raw_space {
                fields.set("request_anomaly", RAW_SPACE);
            }
            fields.split_url();
        }
        // Not a request line (TLS bytes, junk from scanners): kept whole.
        None => fields.set("request", request),
    }
    fields.set("status", status);
    fields.set("bytes", if bytes == "-" { "0" } else { bytes });
    if let Some(referer) = referer.filter(|r| r != "-") {
        fields.set("referer", referer);
    }
    if let Some(agent) = agent.filter(|a| a != "-") {
        fields.set("user_agent", agent);
    }
    Some(fields)
}

/// `request_anomaly` of a request line whose target holds a raw space.
/// Clients encode spaces; scanners do not (`GET /a?id=1 union select 1
/// HTTP/1.1`), and older nginx serves such lines while newer nginx answers
/// 400 but logs them whole.
pub const RAW_SPACE: &str = "raw_space";

struct RequestLine<'a> {
    method: Cow<'a, str>,
    target: Cow<'a, str>,
    protocol: Option<Cow<'a, str>>,
}

/// `METHOD target [HTTP/x.y]`: the target is everything between the
/// method and the protocol, raw spaces included.
fn split_request(request: &str) -> Option<RequestLine<'_>> {
    let (method, rest) = request.split_once(' ')?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let (target, protocol) = match rest.rsplit_once(' ') {
        Some((target, protocol)) if is_protocol(protocol) => (target, Some(protocol)),
        _ if is_protocol(rest) => return None,
        _ => (rest, None),
    };
    (!target.is_empty()).then_some(RequestLine {
        method: Cow::Borrowed(method),
        target: Cow::Borrowed(target),
        protocol: protocol.map(Cow::Borrowed),
    })
}

/// `HTTP/1.1`, `HTTP/2.0`, `HTTP/1`.
fn is_protocol(text: &str) -> bool {
    text.strip_prefix("HTTP/").is_some_and(|version| {
        !version.is_empty()
            && version.len() <= 4
            && version.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    })
}

fn take_until<'a>(rest: &mut &'a str, separator: char) -> Option<&'a str> {
    let (head, tail) = rest.split_once(separator)?;
    *rest = tail;
    Some(head)
}

/// A `"..."` field with `\"` and `\\` escapes as apache writes them, and
/// nginx's `\xHH` for a quote, a backslash and bytes past ASCII (kept as
/// text for control bytes, so they never reach a field raw). Runs without
/// an escape are copied whole, as text: escapes end and start on ASCII
/// bytes, so the field is valid UTF-8 without a check unless an escape
/// gives a byte past ASCII ([`take_quoted_bytes`] then). A field without
/// an escape, as most are, is not copied.
fn take_quoted<'a>(rest: &mut &'a str) -> Option<Cow<'a, str>> {
    let body = rest.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let first = memchr::memchr2(b'"', b'\\', bytes)?;
    if bytes[first] == b'"' {
        *rest = &body[first + 1..];
        return Some(Cow::Borrowed(&body[..first]));
    }
    let mut out = String::with_capacity(bytes.len().min(1 << 16));
    let mut i = 0;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', &bytes[i..])?;
        out.push_str(&body[i..at]);
        if bytes[at] == b'"' {
            *rest = &body[at + 1..];
            return Some(Cow::Owned(out));
        }
        let (byte, next) = quoted_escape(bytes, at)?;
        if !byte.is_ascii() {
            return take_quoted_bytes(rest).map(Cow::Owned);
        }
        out.push(char::from(byte));
        i = next;
    }
}

/// The byte the escape at `at` (a `\`) in a quoted field stands for, and
/// where the text after it starts; `None` at the end of the text.
fn quoted_escape(bytes: &[u8], at: usize) -> Option<(u8, usize)> {
    Some(match bytes.get(at + 1)? {
        b'"' => (b'"', at + 2),
        b'\\' => (b'\\', at + 2),
        b'x' => match nginx_escape(bytes.get(at + 2..at + 4)) {
            Some(byte) => (byte, at + 4),
            None => (b'\\', at + 1),
        },
        _ => (b'\\', at + 1),
    })
}

/// [`take_quoted`] for a field whose escapes give bytes past ASCII: built
/// as bytes, then checked as UTF-8 (invalid sequences replaced).
fn take_quoted_bytes(rest: &mut &str) -> Option<String> {
    let body = rest.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len().min(1 << 16));
    let mut i = 0;
    loop {
        let at = i + memchr::memchr2(b'"', b'\\', &bytes[i..])?;
        out.extend_from_slice(&bytes[i..at]);
        if bytes[at] == b'"' {
            *rest = &body[at + 1..];
            return Some(match String::from_utf8(out) {
                Ok(text) => text,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            });
        }
        let (byte, next) = quoted_escape(bytes, at)?;
        out.push(byte);
        i = next;
    }
}

/// The byte of nginx's `\xHH` when it is a printable ASCII character or
/// part of a UTF-8 sequence; control bytes stay escaped.
fn nginx_escape(digits: Option<&[u8]>) -> Option<u8> {
    let text = std::str::from_utf8(digits?).ok()?;
    let byte = u8::from_str_radix(text, 16).ok()?;
    (byte == b' ' || byte.is_ascii_graphic() || byte >= 0x80).then_some(byte)
}

fn looks_like_address(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
        && (text.contains('.') || text.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined() {
        let f = decode(r#"172.17.0.1 - - [23/Nov/2026:03:24:25 +0000] "GET /users/?id=SELECT+*+FROM+users HTTP/1.1" 200 612 "-" "curl/7.88.1""#).unwrap();
        assert_eq!(f.decoder, "access-combined");
        assert_eq!(f.get("srcip"), Some("172.17.0.1"));
        assert_eq!(f.get("method"), Some("GET"));
        assert_eq!(f.get("url"), Some("/users/?id=SELECT+*+FROM+users"));
        assert_eq!(f.get("path"), Some("/users/"));
        assert_eq!(f.get("query"), Some("id=SELECT+*+FROM+users"));
        assert_eq!(f.get("protocol"), Some("HTTP/1.1"));
        assert_eq!(f.get("status"), Some("200"));
        assert_eq!(f.get("bytes"), Some("612"));
        assert_eq!(f.get("referer"), None);
        assert_eq!(f.get("user_agent"), Some("curl/7.88.1"));
        assert_eq!(f.get("timestamp"), Some("23/Nov/2026:03:24:25 +0000"));
    }

    #[test]
    fn common_and_escapes_and_garbage() {
        let f =
            decode(r#"::1 - bob [01/Jan/2026:00:00:00 +0000] "POST /a HTTP/1.0" 404 -"#).unwrap();
        assert_eq!(f.decoder, "access-common");
        assert_eq!(f.get("user"), Some("bob"));
        assert_eq!(f.get("bytes"), Some("0"));
        let f = decode(r#"10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /?q=\"x\" HTTP/1.1" 200 1 "-" "a \"b\"""#).unwrap();
        assert_eq!(f.get("url"), Some(r#"/?q="x""#));
        assert_eq!(f.get("user_agent"), Some(r#"a "b""#));
        let f =
            decode(r#"10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "\x16\x03\x01" 400 157 "-" "-""#)
                .unwrap();
        assert_eq!(f.get("request"), Some(r"\x16\x03\x01"));
        let f = decode(r#"10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /?ua=\x22x\x5C\xD0\x9F\x01 HTTP/1.1" 200 1 "-" "\x22; id""#).unwrap();
        assert_eq!(f.get("url"), Some("/?ua=\"x\\\u{41f}\\x01"));
        assert_eq!(f.get("user_agent"), Some("\"; id"));
        assert!(decode("hello world").is_none());
        assert!(decode("").is_none());
    }

    #[test]
    fn quoted_fields_read_as_text_equal_those_read_as_bytes() {
        let pieces = [
            "a",
            "\\\"",
            "\\\\",
            "\\x22",
            "\\x5C",
            "\\x41",
            "\\x01",
            "\\x",
            "\\x4",
            "\\q",
            "\\",
            "привет",
            "%D0%9F",
            " ",
            "\\xD0\\x9F",
            "\\xD0",
            "\\xFF",
        ];
        for first in pieces {
            for second in pieces {
                for third in ["", "\\x22", "\\xD0", "\\"] {
                    let line = format!("\"{first}{second}{third}{first}\" rest");
                    let (mut text, mut bytes) = (line.as_str(), line.as_str());
                    assert_eq!(
                        take_quoted(&mut text).map(Cow::into_owned),
                        take_quoted_bytes(&mut bytes),
                        "{line}"
                    );
                    assert_eq!(text, bytes, "{line}");
                }
            }
        }
    }

    #[test]
    fn raw_spaces_in_the_request_target_are_kept_and_marked() {
        let line = |request: &str| {
            decode(&format!(
                r#"10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "{request}" 400 150 "-" "x""#
            ))
            .unwrap()
            .into_owned()
        };
        let f = line("GET /a.php?id=1 union select 1,2-- HTTP/1.1");
        assert_eq!(f.get("url"), Some("/a.php?id=1 union select 1,2--"));
        assert_eq!(f.get("query"), Some("id=1 union select 1,2--"));
        assert_eq!(f.get("protocol"), Some("HTTP/1.1"));
        assert_eq!(f.get("request_anomaly"), Some(RAW_SPACE));
        let f = line("GET /a b c");
        assert_eq!(f.get("url"), Some("/a b c"));
        assert_eq!(f.get("protocol"), None);
        assert_eq!(f.get("request_anomaly"), Some(RAW_SPACE));
        let f = line("GET /plain HTTP/1.0");
        assert_eq!(f.get("url"), Some("/plain"));
        assert_eq!(f.get("request_anomaly"), None);
        let f = line("GET HTTP/1.1");
        assert_eq!(f.get("request"), Some("GET HTTP/1.1"));
        assert_eq!(f.get("url"), None);
    }

    /// Whether each of `names` is borrowed from the line, in order.
    fn borrowed(fields: &Fields<'_>, names: &[&str]) -> Vec<bool> {
        names
            .iter()
            .map(|name| {
                fields
                    .values
                    .iter()
                    .find(|(k, _)| k == name)
                    .is_some_and(|(_, v)| matches!(v, Cow::Borrowed(_)))
            })
            .collect()
    }

    #[test]
    fn a_long_url_is_borrowed_from_the_line_not_copied() {
        let names = ["url", "path", "query", "user_agent", "referer"];
        let url = format!("/search?q={}", "a".repeat(8_000));
        let line = format!(
            r#"10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET {url} HTTP/1.1" 200 1 "https://r/" "agent""#
        );
        let f = decode(&line).unwrap();
        assert_eq!(borrowed(&f, &names), [true; 5]);
        assert_eq!(f.get("url"), Some(url.as_str()));
        assert_eq!(f.get("path"), Some("/search"));
        assert_eq!(f.get("query"), Some(&url[8..]));
        // An escape in the request makes it a copy: its parts are then
        // owned, and split the same.
        let line = r#"10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET /a?q=\"x\" HTTP/1.1" 200 1 "-" "agent""#;
        let f = decode(line).unwrap();
        assert_eq!(
            borrowed(&f, &["url", "path", "query", "user_agent"]),
            [false, false, false, true]
        );
        assert_eq!(f.get("url"), Some(r#"/a?q="x""#));
        assert_eq!(f.get("query"), Some(r#"q="x""#));
        assert_eq!(f.get("path"), Some("/a"));
        // Kept past the line, the fields own their values.
        let kept: Fields<'static> = f.into_owned();
        assert_eq!(borrowed(&kept, &["user_agent"]), [false]);
        assert_eq!(kept.get("user_agent"), Some("agent"));
    }
}
