//! The literals one of which every match of a field's patterns holds, in
//! ASCII lower case: a text that holds none of them is not read by the
//! field's DFAs at all.
//!
//! The prefilters of the DFAs look for where a match can *start*. Some
//! patterns start with what ordinary text is full of: CRLF injection
//! starts with `%25`, every escape of a text percent-encoded twice, and
//! the DFA then read each 8 KB of such text, a nanosecond a byte. The
//! same pattern holds a header name further on (`set-cookie`,
//! `location`, ...), which such text never holds: a search for those,
//! once over the text, rules it out.
//!
//! Each pattern's syntax tree gives, for each part, the strings the part
//! matches when they are few and short ("exact"), and a set of literals
//! one of which every match of the part holds ("required"): a sequence
//! takes the best of the literals made by its runs of exact parts and of
//! its parts' own, an alternation the union of its branches'.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Literals are cut to this many bytes (a prefix of a literal a match
/// holds is held too).
const MAX_LEN: usize = 8;
/// The most literals a part's set may have.
const MAX_SET: usize = 32;
/// The most byte values a class may stand for in a literal.
const MAX_CLASS: usize = 4;
/// The most literals a field's search may look for.
const MAX_SEARCHED: usize = 64;

/// Literals in ASCII lower case, sorted, without duplicates.
type Literals = Vec<Vec<u8>>;

/// What a part of a pattern tells about the text of its matches.
#[derive(Debug, Default)]
struct Facts {
    /// The strings its matches are (a literal of [`MAX_LEN`] bytes: that
    /// its matches start with); `None` when they are many or unbounded.
    exact: Option<Literals>,
    /// Literals one of which each of its matches holds; `None`: none known.
    required: Option<Literals>,
}

/// The literals, in ASCII lower case, one of which a match of any of
/// `patterns` holds; `None` when a pattern has no such set (it may match
/// text of any bytes, or the set is too large to be worth a search).
pub(super) fn field_literals(patterns: &[Hir]) -> Option<Literals> {
    let mut all = Vec::new();
    for pattern in patterns {
        all.extend(facts(pattern).required?);
    }
    let all = without_longer(all);
    (all.len() <= MAX_SEARCHED).then_some(all)
}

fn facts(hir: &Hir) -> Facts {
    let facts = match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Facts {
            exact: Some(vec![Vec::new()]),
            required: None,
        },
        HirKind::Literal(literal) => Facts {
            exact: Some(vec![lowered(&literal.0[..literal.0.len().min(MAX_LEN)])]),
            required: None,
        },
        HirKind::Class(class) => Facts {
            exact: class_bytes(class).map(|bytes| bytes.into_iter().map(|b| vec![b]).collect()),
            required: None,
        },
        HirKind::Repetition(repetition) => match (repetition.min, repetition.max) {
            (0, Some(0)) => Facts {
                exact: Some(vec![Vec::new()]),
                required: None,
            },
            (0, _) => Facts::default(),
            (min, max) => {
                let part = facts(&repetition.sub);
                Facts {
                    exact: part.exact.filter(|_| min == 1 && max == Some(1)),
                    required: part.required,
                }
            }
        },
        HirKind::Capture(capture) => facts(&capture.sub),
        HirKind::Concat(parts) => sequence(parts),
        HirKind::Alternation(branches) => {
            let branches: Vec<Facts> = branches.iter().map(facts).collect();
            let union = |each: &dyn Fn(&Facts) -> Option<&Literals>| -> Option<Literals> {
                let mut all = Vec::new();
                for branch in &branches {
                    all.extend(each(branch)?.iter().cloned());
                }
                all.sort();
                all.dedup();
                (all.len() <= MAX_SET).then_some(all)
            };
            Facts {
                exact: union(&|branch| branch.exact.as_ref()),
                required: union(&|branch| branch.required.as_ref()),
            }
        }
    };
    // Exact strings, none empty, are literals a match holds too.
    let exact_required = facts.exact.clone().filter(holds_text);
    Facts {
        required: better(facts.required, exact_required),
        exact: facts.exact,
    }
}

/// A sequence of parts: its runs of exact parts make literals (every
/// string of one part after every string of the one before), each run a
/// set of which a match holds one, as is each part's own.
fn sequence(parts: &[Hir]) -> Facts {
    let mut run: Option<Literals> = Some(vec![Vec::new()]);
    let mut best: Option<Literals> = None;
    let mut all_exact = true;
    for part in parts {
        let part = facts(part);
        match part.exact {
            Some(exact) => {
                run = match run.as_ref().and_then(|run| followed(run, &exact)) {
                    Some(longer) => Some(longer),
                    None => {
                        best = better(best, run.filter(holds_text));
                        all_exact = false;
                        Some(exact)
                    }
                };
            }
            None => {
                best = better(best, run.filter(holds_text));
                all_exact = false;
                run = Some(vec![Vec::new()]);
            }
        }
        best = better(best, part.required);
    }
    let exact = run.clone().filter(|_| all_exact);
    Facts {
        exact,
        required: better(best, run.filter(holds_text)),
    }
}

/// Each of `first` followed by each of `then` (a literal already cut to
/// [`MAX_LEN`] left as it is); `None` when they make too many.
fn followed(first: &Literals, then: &Literals) -> Option<Literals> {
    if first.len().saturating_mul(then.len()) > MAX_SET * MAX_SET {
        return None;
    }
    let mut all = Vec::new();
    for head in first {
        for tail in then {
            let mut literal = head.clone();
            if literal.len() < MAX_LEN {
                literal.extend_from_slice(tail);
                literal.truncate(MAX_LEN);
            }
            all.push(literal);
        }
    }
    all.sort();
    all.dedup();
    (all.len() <= MAX_SET).then_some(all)
}

/// The better of two sets to search for: the one whose shortest literal
/// is longer (rarer), then the smaller.
fn better(a: Option<Literals>, b: Option<Literals>) -> Option<Literals> {
    let score = |set: &Literals| {
        let shortest = set.iter().map(Vec::len).min().unwrap_or(0);
        (shortest, std::cmp::Reverse(set.len()))
    };
    match (a, b) {
        (Some(a), Some(b)) => Some(if score(&b) > score(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Whether every literal of `set` holds a byte (an empty one is held by
/// any text: no help).
fn holds_text(set: &Literals) -> bool {
    !set.is_empty() && set.iter().all(|literal| !literal.is_empty())
}

/// `literals` without those that hold another of them (a text that holds
/// the longer holds the shorter), sorted.
fn without_longer(mut literals: Literals) -> Literals {
    literals.sort_by_key(Vec::len);
    literals.dedup();
    let mut kept: Literals = Vec::new();
    for literal in literals {
        let held = kept.iter().any(|shorter| {
            literal
                .windows(shorter.len())
                .any(|window| window == shorter.as_slice())
        });
        if !held {
            kept.push(literal);
        }
    }
    kept.sort();
    kept
}

fn lowered(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(u8::to_ascii_lowercase).collect()
}

/// The bytes, in lower case, a class of few ASCII bytes matches (`[aA]`,
/// `[14]`); `None` for a larger class or one with non-ASCII.
fn class_bytes(class: &Class) -> Option<Vec<u8>> {
    let ranges: Vec<(u32, u32)> = match class {
        Class::Bytes(bytes) => bytes
            .ranges()
            .iter()
            .map(|range| (u32::from(range.start()), u32::from(range.end())))
            .collect(),
        Class::Unicode(unicode) => unicode
            .ranges()
            .iter()
            .map(|range| (u32::from(range.start()), u32::from(range.end())))
            .collect(),
    };
    let mut bytes = Vec::new();
    for (start, end) in ranges {
        if end > 0x7f || end - start >= 2 * MAX_CLASS as u32 {
            return None;
        }
        bytes.extend((start..=end).filter_map(|code| u8::try_from(code).ok()));
    }
    let mut bytes = lowered(&bytes);
    bytes.sort_unstable();
    bytes.dedup();
    (bytes.len() <= MAX_CLASS).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::util::syntax;

    fn literals_of(patterns: &[&str]) -> Option<Vec<String>> {
        let config = syntax::Config::new().unicode(false).utf8(false);
        let hirs = syntax::parse_many_with(patterns, &config).unwrap();
        field_literals(&hirs).map(|set| {
            set.into_iter()
                .map(|literal| String::from_utf8(literal).unwrap())
                .collect()
        })
    }

    #[test]
    fn a_pattern_that_starts_with_common_text_is_searched_by_a_rarer_literal_it_holds() {
        // CRLF injection: its start (`%25`) is in every escape of a text
        // encoded twice; the header names after it are not.
        let found = literals_of(&[
            r"(?i)(%(25)*0[ad]|%u000[ad])\s*(set-cookie|location|refresh)\s*(:|%3a)",
        ])
        .unwrap();
        assert_eq!(found, ["location", "refresh", "set-cook"]);
    }

    #[test]
    fn the_literals_of_a_field_are_those_of_each_pattern_without_the_ones_that_hold_another() {
        let found = literals_of(&[r"://[^@]*@", r"(?i)x-(foo|bar)://", r"ab\d+cd"]).unwrap();
        // `x-foo://` holds `://`; of `ab` and `cd`, the first.
        assert_eq!(found, ["://", "ab"]);
    }

    #[test]
    fn a_field_with_a_pattern_that_holds_no_literal_is_not_searched() {
        assert_eq!(literals_of(&[r"select", r"[a-z]+\d"]), None);
        assert_eq!(literals_of(&[r"select", r"(union)?"]), None);
        assert_eq!(literals_of(&[r"select", r"a|\w"]), None);
        // Non-ASCII is searched as it is, not folded: a class of it
        // (`[éÉ]`) makes no literal.
        assert_eq!(literals_of(&[r"(?u:é)"]).unwrap(), ["é"]);
        assert_eq!(literals_of(&[r"(?iu:é)"]), None);
    }

    #[test]
    fn repetitions_lookarounds_and_classes_give_what_every_match_holds() {
        assert_eq!(literals_of(&[r"\bselect\b"]).unwrap(), ["select"]);
        assert_eq!(literals_of(&[r"(ab){2,}"]).unwrap(), ["ab"]);
        assert_eq!(literals_of(&[r"(?i)0[ad]"]).unwrap(), ["0a", "0d"]);
        // A literal longer than eight bytes is searched by its start.
        assert_eq!(literals_of(&[r"transfer-encoding"]).unwrap(), ["transfer"]);
        // A large class ends a run; the longer run wins.
        assert_eq!(literals_of(&[r"ab[a-z]cdef"]).unwrap(), ["cdef"]);
    }
}
