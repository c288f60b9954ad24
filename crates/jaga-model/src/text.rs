//! Text from outside (container names, labels, exec commands, log lines)
//! made safe to print on a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character made visible, so that printing it
/// cannot move the cursor, clear the screen, set the window title or start
/// a fake line: `\n`, `\r` and `\t` as those two-character escapes, other C0
/// controls and DEL as `\x1b`, C1 controls and the bidirectional overrides
/// that reorder a line on screen as `\u{9b}`. Borrowed when there is nothing
/// to escape. Backslashes are left alone: a literal `\x1b` then reads like
/// an escaped ESC, which costs less than doubling every backslash of every
/// command line shown.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text (as serde writes it, with C0 controls in strings escaped) with
/// the other characters [`escape_control`] makes visible written as
/// `\u009b`: still the same JSON value, but safe on a terminal.
pub fn escape_control_json(json: &str) -> Cow<'_, str> {
    // C0 controls outside strings are the whitespace of pretty JSON.
    let needs = |c: char| needs_escape(c) && u32::from(c) >= 0x20;
    if !json.chars().any(needs) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if needs(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `*` any run of characters, `?` one character, the rest literal; the
/// whole text must match. Greedy with one backtrack point: linear in
/// practice, quadratic at worst on short names.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let pattern: Vec<char> = glob.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escape_sequences_are_made_visible() {
        assert_eq!(
            escape_control("\x1b]0;pwned\x07title"),
            "\\x1b]0;pwned\\x07title"
        );
        assert_eq!(escape_control("\x1b[2J\x1b[H"), "\\x1b[2J\\x1b[H");
        assert_eq!(
            escape_control("ok\nfake line\r\tx"),
            "ok\\nfake line\\r\\tx"
        );
        assert_eq!(escape_control("a\x7fb\u{9b}c\u{0}"), "a\\x7fb\\u{9b}c\\x00");
        assert_eq!(escape_control("abc\u{202e}cba"), "abc\\u{202e}cba");
    }

    #[test]
    fn json_keeps_its_value_and_loses_raw_c1_and_del() {
        let json = "{\n  \"a\": \"x\u{9b}2J\u{7f}\\u001b\"\n}";
        assert_eq!(
            escape_control_json(json),
            "{\n  \"a\": \"x\\u009b2J\\u007f\\u001b\"\n}"
        );
        let pretty = "{\n\t\"plain\": 1\r\n}";
        assert!(matches!(escape_control_json(pretty), Cow::Borrowed(_)));
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["nginx:1.25", "sh -c 'echo a\\ b'", "café ☕", ""] {
            assert!(matches!(escape_control(text), Cow::Borrowed(t) if t == text));
        }
    }
}
