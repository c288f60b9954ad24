//! JSON application logs, syslog lines and key=value pairs.

use crate::Fields;

/// A JSON object: its scalar members as fields (nested objects flattened
/// with dots, one level of arrays joined).
pub fn json(line: &str) -> Option<Fields<'static>> {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(trimmed).ok()?;
    let object = value.as_object()?;
    let mut fields = Fields::new("json");
    flatten("", object, &mut fields, 0);
    // Common names of access-log-like JSON (nginx, ECS, pino, express
    // loggers) onto jaga's fields; the first one present wins.
    for (from, to) in [
        ("remote_addr", "srcip"),
        ("client_ip", "srcip"),
        ("ip", "srcip"),
        ("req.remoteAddress", "srcip"),
        ("source.ip", "srcip"),
        ("request_method", "method"),
        ("req.method", "method"),
        ("http.request.method", "method"),
        ("request_uri", "url"),
        ("uri", "url"),
        ("req.url", "url"),
        ("request.url", "url"),
        ("url.original", "url"),
        ("request.uri", "url"),
        ("url.path", "path"),
        ("request.path", "path"),
        ("url.query", "query"),
        ("query_string", "query"),
        ("args", "query"),
        ("request.query", "query"),
        ("http_user_agent", "user_agent"),
        ("user_agent.original", "user_agent"),
        ("useragent", "user_agent"),
        ("http_referer", "referer"),
        ("http.request.referrer", "referer"),
        ("referrer", "referer"),
        ("time", "timestamp"),
        ("msg", "message"),
    ] {
        if fields.get(to).is_none() {
            if let Some(v) = fields.get(from).map(str::to_owned) {
                fields.set(to, v);
            }
        }
    }
    take_headers(object, &mut fields);
    take_body(object, &mut fields);
    if fields.get("path").is_none() {
        fields.split_url();
    }
    Some(fields)
}

/// Where applications log request headers.
const HEADER_OBJECTS: [&str; 5] = [
    "headers",
    "req.headers",
    "request.headers",
    "http.request.headers",
    "request_headers",
];

/// Where applications log the request body.
const BODY_MEMBERS: [&str; 6] = [
    "body",
    "request_body",
    "req.body",
    "request.body",
    "http.request.body.content",
    "payload",
];

/// The member at a dotted path.
fn member<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    path: &str,
) -> Option<&'a serde_json::Value> {
    let mut parts = path.split('.');
    let mut value = object.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The value of a header, whichever case it was logged in.
fn header<'a>(
    headers: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// `user_agent` and `referer` from a logged header object, and every other
/// header as `headers`, one `name: value` a line (what an attacker sends in
/// `X-Forwarded-For` or a cookie is matched there).
fn take_headers(object: &serde_json::Map<String, serde_json::Value>, fields: &mut Fields<'_>) {
    let Some(headers) = HEADER_OBJECTS
        .iter()
        .find_map(|path| member(object, path)?.as_object())
    else {
        return;
    };
    for (name, to) in [("user-agent", "user_agent"), ("referer", "referer")] {
        if fields.get(to).is_none() {
            if let Some(value) = header(headers, name) {
                fields.set(to, value.to_owned());
            }
        }
    }
    let mut joined = String::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("user-agent") || name.eq_ignore_ascii_case("referer") {
            continue;
        }
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        joined.push_str(name);
        joined.push_str(": ");
        joined.push_str(&text);
        joined.push('\n');
    }
    if !joined.is_empty() {
        fields.set("headers", joined);
    }
}

/// The request body as one text: a string as it is, an object or array as
/// its JSON (`{"user":{"$ne":null}}`).
fn take_body(object: &serde_json::Map<String, serde_json::Value>, fields: &mut Fields<'_>) {
    let Some(body) = BODY_MEMBERS.iter().find_map(|path| member(object, path)) else {
        return;
    };
    match body {
        serde_json::Value::String(s) => fields.set("body", s.clone()),
        serde_json::Value::Null => {}
        other => fields.set("body", other.to_string()),
    }
}

fn flatten(
    prefix: &str,
    object: &serde_json::Map<String, serde_json::Value>,
    fields: &mut Fields<'_>,
    depth: usize,
) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            serde_json::Value::Object(inner) if depth < 4 => {
                flatten(&name, inner, fields, depth + 1)
            }
            serde_json::Value::String(s) => fields.set(name, s.clone()),
            serde_json::Value::Null => {}
            other => fields.set(name, other.to_string()),
        }
    }
}

/// RFC 3164 `<34>Nov 23 10:00:00 host prog[123]: message`, the priority optional.
pub fn syslog(line: &str) -> Option<Fields<'_>> {
    let mut rest = line;
    if let Some(after) = rest.strip_prefix('<') {
        let (pri, tail) = after.split_once('>')?;
        if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest = tail;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if rest.len() < 16 || !MONTHS.iter().any(|m| rest.starts_with(m)) {
        return None;
    }
    let timestamp = rest.get(..15)?;
    let time_part = timestamp.get(7..15)?;
    if time_part.as_bytes().get(2) != Some(&b':') || time_part.as_bytes().get(5) != Some(&b':') {
        return None;
    }
    let rest = rest.get(16..)?;
    let (host, rest) = rest.split_once(' ')?;
    let (tag, message) = rest.split_once(": ")?;
    let (program, pid) = match tag.split_once('[') {
        Some((p, pid)) => (p, Some(pid.trim_end_matches(']'))),
        None => (tag, None),
    };
    if program.is_empty() || program.contains(' ') {
        return None;
    }
    let mut fields = Fields::new("syslog");
    fields.set("timestamp", timestamp);
    fields.set("hostname", host);
    fields.set("program", program);
    if let Some(pid) = pid {
        fields.set("pid", pid);
    }
    fields.set("message", message);
    Some(fields)
}

/// `level=info msg="user logged in" user=bob ip=10.0.0.1`: at least two pairs.
pub fn key_value(line: &str) -> Option<Fields<'_>> {
    let mut fields = Fields::new("key-value");
    let mut rest = line.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        if key.is_empty() || key.contains(' ') || key.len() > 64 {
            return None;
        }
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], quoted[end + 1..].trim_start())
        } else {
            match after.split_once(' ') {
                Some((v, t)) => (v, t.trim_start()),
                None => (after, ""),
            }
        };
        fields.set(key.to_owned(), value);
        rest = tail;
    }
    if fields.values.len() < 2 {
        return None;
    }
    if fields.get("srcip").is_none() {
        if let Some(ip) = fields
            .get("ip")
            .or_else(|| fields.get("client"))
            .map(str::to_owned)
        {
            fields.set("srcip", ip);
        }
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_logs() {
        let f = json(r#"{"time":"2026-11-23T03:00:00Z","remote_addr":"10.1.2.3","request_uri":"/a?b=1","status":404,"req":{"ua":"x"}}"#).unwrap();
        assert_eq!(f.get("srcip"), Some("10.1.2.3"));
        assert_eq!(f.get("url"), Some("/a?b=1"));
        assert_eq!(f.get("query"), Some("b=1"));
        assert_eq!(f.get("status"), Some("404"));
        assert_eq!(f.get("req.ua"), Some("x"));
        assert!(json("{not json").is_none());
        let f = json(r#"{"req":{"method":"POST","url":"/login?a=1","headers":{"User-Agent":"ua","referer":"r","x-forwarded-for":"1.2.3.4","cookie":"s=1"},"body":{"user":{"$ne":null}}}}"#).unwrap();
        assert_eq!(f.get("method"), Some("POST"));
        assert_eq!(f.get("url"), Some("/login?a=1"));
        assert_eq!(f.get("query"), Some("a=1"));
        assert_eq!(f.get("user_agent"), Some("ua"));
        assert_eq!(f.get("referer"), Some("r"));
        assert_eq!(
            f.get("headers"),
            Some("cookie: s=1\nx-forwarded-for: 1.2.3.4\n")
        );
        assert_eq!(f.get("body"), Some(r#"{"user":{"$ne":null}}"#));
        let f = json(r#"{"url":{"original":"/a?b=c","path":"/a","query":"b=c"},"user_agent":{"original":"curl"},"http":{"request":{"body":{"content":"x=1"}}}}"#).unwrap();
        assert_eq!(f.get("url"), Some("/a?b=c"));
        assert_eq!(f.get("path"), Some("/a"));
        assert_eq!(f.get("user_agent"), Some("curl"));
        assert_eq!(f.get("body"), Some("x=1"));
        assert!(json("[1,2]").is_none());
    }

    #[test]
    fn syslog_lines() {
        let f =
            syslog("<34>Nov 23 03:00:00 web1 sshd[812]: Failed password for root from 10.0.0.9")
                .unwrap();
        assert_eq!(f.get("program"), Some("sshd"));
        assert_eq!(f.get("pid"), Some("812"));
        assert_eq!(f.get("hostname"), Some("web1"));
        assert_eq!(
            f.get("message"),
            Some("Failed password for root from 10.0.0.9")
        );
        assert!(syslog("Nov is a month").is_none());
    }

    #[test]
    fn key_value_pairs() {
        let f = key_value(r#"level=warn msg="login failed" user=bob ip=10.0.0.1"#).unwrap();
        assert_eq!(f.get("msg"), Some("login failed"));
        assert_eq!(f.get("srcip"), Some("10.0.0.1"));
        assert!(key_value("just=one").is_none());
        assert!(key_value("no pairs here").is_none());
    }
}
