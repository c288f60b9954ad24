//! What attackers do to slip past a pattern, undone before matching:
//! repeated percent-encoding, `+` for space, `%uXXXX`, case, SQL comments,
//! runs of whitespace.

/// Decodes percent-escapes up to three times over, `+` to space and
/// `%uXXXX`, lowercases, blanks SQL comments and collapses whitespace.
pub fn normalize(input: &str) -> String {
    let mut text = input.to_owned();
    for _ in 0..3 {
        let decoded = percent_decode(&text);
        if decoded == text {
            break;
        }
        text = decoded;
    }
    let lower = text.to_lowercase();
    let without_comments = strip_sql_comments(&lower);
    collapse_whitespace(&without_comments)
}

fn hex(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                // %uXXXX (IIS-style unicode escape)
                if matches!(bytes.get(i + 1), Some(b'u' | b'U')) {
                    let digits = bytes.get(i + 2..i + 6);
                    if let Some(code) = digits.and_then(|d| {
                        d.iter()
                            .try_fold(0u32, |acc, b| hex(*b).map(|h| acc * 16 + h))
                    }) {
                        let c = char::from_u32(code).unwrap_or('\u{fffd}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        i += 6;
                        continue;
                    }
                }
                match (
                    bytes.get(i + 1).and_then(|b| hex(*b)),
                    bytes.get(i + 2).and_then(|b| hex(*b)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/*…*/` becomes a space (`UNION/**/SELECT`); an unclosed one runs to the end.
fn strip_sql_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        out.push(' ');
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() || c == '\0' {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undoes_evasions() {
        assert_eq!(
            normalize("/users/?id=SELECT+*+FROM+users"),
            "/users/?id=select * from users"
        );
        assert_eq!(normalize("%2527%2520OR%25201%3D1"), "' or 1=1");
        assert_eq!(
            normalize("UNION/**/SELECT/*x*/password"),
            "union select password"
        );
        assert_eq!(normalize("%u003cscript%u003e"), "<script>");
        assert_eq!(normalize("a \t\n  b"), "a b");
        assert_eq!(normalize("100%"), "100%");
        assert_eq!(normalize("%zz"), "%zz");
    }
}
