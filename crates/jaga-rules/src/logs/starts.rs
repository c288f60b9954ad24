//! Patterns read from each place where a match can start, one anchored
//! reading each: how the scanner reads text that keeps its DFAs building
//! states (see [`super::scan::Scanner`]).
//!
//! The state of an unanchored DFA is the set of every match in progress.
//! On random text those sets are new all the time (random printable text
//! built about a byte of states per byte of text), and building a state
//! costs a hundred times a step. A reading anchored at one place follows
//! one start: its states are the patterns' prefixes, soon all known, and
//! on such text it dies within a few bytes.
//!
//! The places are found by a table of which first two bytes, after which
//! byte (what `\b` and `^` read), can begin a match: built from the DFA
//! itself, so a place it passes over cannot start one. On random
//! printable text about 1 place in 7 passes; of those, 1 in 3 passes a
//! second table, of the third bytes after which the reading is not dead
//! ([`Thirds`]), and is read.
//!
//! A branch whose first two bytes can be almost anything (`[^/]+\.bat`)
//! would pass nearly every place, and one that reads on to the end of a
//! broad class after a likely start (`<a[^>]*`) would read far from each:
//! such branches are left to the unanchored DFAs ([`starts_anywhere`],
//! [`runs_long`]), unless cutting the run they begin with leaves a branch
//! that can be read from its starts (`[^/]\.bat`, `\b\w+\.bat` as
//! `\w\.bat`: see [`from_starts`]). A text whose readings still take
//! more steps than its [budget](STEPS_PER_BYTE) (a long word for
//! `[a-z][a-z.]*@`, each of whose places starts a reading to its end) is
//! read the other way.

use super::scan::Automaton;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchError};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, ClassBytes, ClassBytesRange, Hir, HirKind, Look};
use std::collections::HashMap;

/// Steps a text may take, per byte and per text (a reading from a place
/// costs one step more than the bytes it reads): random printable text
/// took about 1.2 a byte.
const STEPS_PER_BYTE: usize = 4;
const STEPS_PER_TEXT: usize = 1024;
/// How many two-byte starts a branch may have before it is left to the
/// unanchored DFAs (of 65,536; `select` has 4, `[;|]\s*id` a few dozen,
/// `\b\w+\.bat` 16,128).
const DENSE_STARTS: usize = 4096;
/// Index of "no byte before" (the text's start) in [`Starts::kind_of`].
const NO_BYTE: usize = 256;

/// Why [`Starts::matches`] stopped before the end of a text.
pub(super) enum Stop {
    /// The text took more steps than its budget.
    Budget,
    /// The DFA gave up (a Unicode word boundary met non-ASCII).
    GaveUp(MatchError),
}

/// The branches of some patterns as one anchored lazy DFA, and the table
/// of the places a reading of it can start.
pub(super) struct Starts {
    automaton: Automaton,
    /// The kind of start (an index in `looks_behind`) the byte before a
    /// place makes: for each byte, and [`NO_BYTE`].
    kind_of: [u8; 257],
    /// A byte before that makes each kind; `None`: the text's start.
    looks_behind: Vec<Option<u8>>,
    /// Bit `kind << 16 | first << 8 | second`: whether a reading from a
    /// place after a byte of that kind, with those two bytes, may match.
    pairs: Vec<u64>,
    /// The third bytes with which each pair that passes may still match;
    /// `None`: every third byte passes.
    thirds: Option<Thirds>,
    /// For each branch, whether its readings tell no place where its
    /// matches start (it was [`shortened`]).
    placeless: Vec<bool>,
}

/// The third bytes after which a reading from a place whose pair passes
/// is not dead. On random printable text 2 in 3 of the places that pass
/// their pair die on their third byte: a reading costs a few steps on
/// states spread over megabytes, a look here a few lookups in kilobytes.
struct Thirds {
    /// For each word of the pairs, how many pairs pass in the words
    /// before it: with the bits below a pair's in its own word, its rank.
    ranks: Vec<u32>,
    /// The row in `rows` of each pair that passes, by rank.
    row_of: Vec<u16>,
    /// A bit for each third byte that passes; row 0 passes them all.
    rows: Vec<[u64; 4]>,
}

impl std::fmt::Debug for Starts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let passing: u32 = self.pairs.iter().map(|word| word.count_ones()).sum();
        let third_rows = self.thirds.as_ref().map(|thirds| thirds.rows.len());
        f.debug_struct("Starts")
            .field("kinds", &self.looks_behind.len())
            .field("passing", &passing)
            .field("third_rows", &third_rows)
            .finish_non_exhaustive()
    }
}

/// A thread's cache of a [`Starts`]' DFA, and the start state of each
/// kind (state ids hold until the cache is cleared).
pub(super) struct StartsCache {
    cache: Cache,
    clears: usize,
    starts: Vec<Option<LazyStateID>>,
    /// The places of a text that pass, kept for the next.
    places: Vec<usize>,
}

impl Starts {
    /// `branches` (the index in the field's patterns of each in `owners`)
    /// as an anchored DFA whose NFA takes at most `limit` bytes and cache
    /// `capacity`.
    pub(super) fn new(
        branches: &[Hir],
        owners: Vec<usize>,
        placeless: Vec<bool>,
        limit: usize,
        capacity: usize,
    ) -> Result<Self, String> {
        let automaton = Automaton::new(branches, owners, None, limit, capacity)?;
        let dfa = &automaton.dfa;
        let mut cache = dfa.create_cache();
        // Bytes before a place that give the same start state make the
        // same kind. A byte the DFA quits on (non-ASCII before a Unicode
        // `\b`) makes a kind of its own, every place after it passing: the
        // reading then gives up, as the caller must know.
        let mut looks_behind: Vec<Option<u8>> = Vec::new();
        let mut firsts: Vec<Option<LazyStateID>> = Vec::new();
        let mut kind_of = [0u8; 257];
        for (behind, kind) in kind_of.iter_mut().enumerate() {
            let look_behind = u8::try_from(behind).ok();
            let first = dfa
                .start_state(&mut cache, &anchored_after(look_behind))
                .ok();
            let index = match firsts.iter().position(|known| *known == first) {
                Some(index) => index,
                None => {
                    firsts.push(first);
                    looks_behind.push(look_behind);
                    firsts.len() - 1
                }
            };
            *kind = u8::try_from(index).map_err(|_| "too many kinds of start".to_owned())?;
        }
        if cache.clear_count() > 0 {
            return Err("the cache cannot hold the start states".to_owned());
        }
        let mut pairs = Vec::with_capacity((firsts.len() << 16) / 64);
        for (first, look_behind) in firsts.iter().zip(&looks_behind) {
            for byte in 0..=255u8 {
                let seconds = match first {
                    Some(_) => passing_seconds(dfa, &mut cache, *look_behind, byte)?,
                    None => [u64::MAX; 4],
                };
                pairs.extend(seconds);
            }
        }
        let thirds = Thirds::new(dfa, &looks_behind, &pairs);
        Ok(Self {
            automaton,
            kind_of,
            looks_behind,
            pairs,
            thirds,
            placeless,
        })
    }

    pub(super) fn create_cache(&self) -> StartsCache {
        StartsCache {
            cache: self.automaton.dfa.create_cache(),
            clears: 0,
            starts: vec![None; self.looks_behind.len()],
            places: Vec::new(),
        }
    }

    /// Marks in `found` (by index in the field's patterns) those of its
    /// patterns that match `text`, and `any` when one does, and lowers
    /// each one's `from` to the first place it matched from; stops when
    /// the text took more steps than its budget (what it marked then is
    /// matched) or the DFA gave up.
    pub(super) fn matches(
        &self,
        cache: &mut StartsCache,
        text: &[u8],
        found: &mut [bool],
        any: &mut bool,
        from: &mut [usize],
    ) -> Result<(), Stop> {
        let mut budget = text.len() * STEPS_PER_BYTE + STEPS_PER_TEXT;
        cache.cache.search_start(0);
        let mut marks = Marks { found, any, from };
        let result = self.read(cache, text, &mut budget, &mut marks);
        cache.cache.search_finish(text.len());
        result
    }

    fn read(
        &self,
        cache: &mut StartsCache,
        text: &[u8],
        budget: &mut usize,
        marks: &mut Marks<'_>,
    ) -> Result<(), Stop> {
        // The places that pass, noted without a branch (on random text
        // whether one passes cannot be foretold), then read.
        // Each place is written before it is counted: only grown, never
        // cleared.
        let mut places = std::mem::take(&mut cache.places);
        if places.len() < text.len() {
            places.resize(text.len(), 0);
        }
        let mut passed = 0;
        let mut kind = self.kind_of[NO_BYTE];
        for (at, pair) in text.windows(2).enumerate() {
            let bit = pair_bit(kind, pair[0], pair[1]);
            let passes = self
                .pairs
                .get(bit / 64)
                .map_or(1, |word| word >> (bit % 64) & 1);
            places[passed] = at;
            passed += passes as usize;
            kind = self.kind_of[usize::from(pair[0])];
        }
        if let Some(thirds) = &self.thirds {
            passed = self.by_thirds(thirds, text, &mut places[..passed]);
        }
        let result = self.read_places(cache, text, &places[..passed], budget, marks);
        cache.places = places;
        result
    }

    /// The kind of start the byte before `at` makes.
    #[inline]
    fn kind_at(&self, text: &[u8], at: usize) -> u8 {
        let behind = match at {
            0 => NO_BYTE,
            _ => usize::from(text[at - 1]),
        };
        self.kind_of[behind]
    }

    /// Keeps at the front of `places` (places whose pair passes) those
    /// whose third byte passes too, or that have none: how many.
    fn by_thirds(&self, thirds: &Thirds, text: &[u8], places: &mut [usize]) -> usize {
        let mut kept = 0;
        for index in 0..places.len() {
            let at = places[index];
            let passes = match text.get(at..at + 3) {
                Some(&[first, second, third]) => {
                    let bit = pair_bit(self.kind_at(text, at), first, second);
                    thirds.passes(&self.pairs, bit, third)
                }
                _ => true,
            };
            places[kept] = at;
            kept += usize::from(passes);
        }
        kept
    }

    /// Reads from each of `places`, then from the last byte and the end
    /// (which have no second byte).
    fn read_places(
        &self,
        cache: &mut StartsCache,
        text: &[u8],
        places: &[usize],
        budget: &mut usize,
        marks: &mut Marks<'_>,
    ) -> Result<(), Stop> {
        let last = text.len().saturating_sub(1);
        for at in places.iter().copied().chain(last..=text.len()) {
            self.read_from(cache, text, at, self.kind_at(text, at), budget, marks)?;
        }
        Ok(())
    }

    /// One reading, anchored at `from`, the byte before which makes start
    /// `kind`, until the DFA is dead or the text ends; each byte read and
    /// the reading itself cost a step of the budget.
    fn read_from(
        &self,
        cache: &mut StartsCache,
        text: &[u8],
        from: usize,
        kind: u8,
        budget: &mut usize,
        marks: &mut Marks<'_>,
    ) -> Result<(), Stop> {
        let dfa = &self.automaton.dfa;
        *budget = budget.checked_sub(1).ok_or(Stop::Budget)?;
        let stop = text.len().min(from.saturating_add(*budget));
        let mut sid = cache.start(self, kind, from)?;
        let mut at = from;
        while at < stop {
            let byte = text[at];
            let mut next = LazyStateID::default();
            if !sid.is_tagged() {
                next = dfa.next_state_untagged(&cache.cache, sid, byte);
            }
            // Leaving a match state, or a transition not computed yet.
            if sid.is_tagged() || next.is_unknown() {
                cache.cache.search_update(at);
                next = dfa
                    .next_state(&mut cache.cache, sid, byte)
                    .map_err(|_| Stop::GaveUp(MatchError::gave_up(at)))?;
            }
            at += 1;
            if next.is_tagged() {
                if next.is_dead() {
                    *budget -= at - from;
                    return Ok(());
                }
                if next.is_match() {
                    self.record(&cache.cache, next, from, marks);
                } else if next.is_quit() {
                    return Err(Stop::GaveUp(MatchError::quit(byte, at - 1)));
                }
            }
            sid = next;
        }
        if at < text.len() {
            return Err(Stop::Budget);
        }
        *budget = budget.saturating_sub(at - from);
        let last = dfa
            .next_eoi_state(&mut cache.cache, sid)
            .map_err(|_| Stop::GaveUp(MatchError::gave_up(text.len())))?;
        if last.is_match() {
            self.record(&cache.cache, last, from, marks);
        }
        Ok(())
    }

    /// The patterns match state `sid` reports, matched from `place`.
    fn record(&self, cache: &Cache, sid: LazyStateID, place: usize, marks: &mut Marks<'_>) {
        for (branch, index) in self.automaton.matched_branches(cache, sid) {
            if let Some(slot) = marks.found.get_mut(index) {
                *slot = true;
                *marks.any = true;
            }
            let place = match self.placeless.get(branch) {
                Some(false) => place,
                _ => 0,
            };
            if let Some(from) = marks.from.get_mut(index) {
                *from = (*from).min(place);
            }
        }
    }
}

/// Where a reading marks what it matched.
struct Marks<'a> {
    found: &'a mut [bool],
    any: &'a mut bool,
    from: &'a mut [usize],
}

impl StartsCache {
    /// The start state of `kind`, for a reading from `at`.
    fn start(&mut self, starts: &Starts, kind: u8, at: usize) -> Result<LazyStateID, Stop> {
        let clears = self.cache.clear_count();
        if clears != self.clears {
            self.starts.fill(None);
            self.clears = clears;
        }
        let kind = usize::from(kind);
        if let Some(Some(sid)) = self.starts.get(kind) {
            return Ok(*sid);
        }
        let look_behind = starts.looks_behind.get(kind).copied().flatten();
        let sid = starts
            .automaton
            .dfa
            .start_state(&mut self.cache, &anchored_after(look_behind))
            .map_err(|_| Stop::GaveUp(MatchError::gave_up(at)))?;
        // Computing it may have cleared the cache: the others are stale.
        if self.cache.clear_count() != self.clears {
            self.starts.fill(None);
            self.clears = self.cache.clear_count();
        }
        if let Some(slot) = self.starts.get_mut(kind) {
            *slot = Some(sid);
        }
        Ok(sid)
    }
}

impl Thirds {
    /// The third bytes of each of `pairs` that passes, for the kinds of
    /// start `looks_behind`; `None` when they took more states than the
    /// DFA's cache holds, or more rows than a `u16` tells.
    fn new(dfa: &DFA, looks_behind: &[Option<u8>], pairs: &[u64]) -> Option<Self> {
        let mut ranks = Vec::with_capacity(pairs.len());
        let mut passing = 0u32;
        for word in pairs {
            ranks.push(passing);
            passing += word.count_ones();
        }
        let mut cache = dfa.create_cache();
        // A cleared cache makes the state ids held point nowhere (a step
        // from one reads past the cache's table): the table is not built.
        let step = |cache: &mut Cache, sid: LazyStateID, byte: u8| {
            let next = dfa.next_state(cache, sid, byte).ok()?;
            (cache.clear_count() == 0).then_some(next)
        };
        let mut rows = vec![[u64::MAX; 4]];
        let mut row_by_bits = HashMap::from([([u64::MAX; 4], 0u16)]);
        let mut row_by_state: HashMap<LazyStateID, u16> = HashMap::new();
        let mut row_of = Vec::with_capacity(passing as usize);
        let mut bit = 0usize;
        for look_behind in looks_behind {
            let start = dfa
                .start_state(&mut cache, &anchored_after(*look_behind))
                .ok()
                .filter(|_| cache.clear_count() == 0);
            for first in 0..=255u8 {
                let after_first = match start {
                    Some(start) => Some(step(&mut cache, start, first)?),
                    None => None,
                };
                for second in 0..=255u8 {
                    let passes = pairs.get(bit / 64)? >> (bit % 64) & 1 == 1;
                    bit += 1;
                    if !passes {
                        continue;
                    }
                    // A reading that may have matched by its second byte,
                    // or that gives up, is read whatever follows.
                    let Some(after_first) = after_first.filter(|sid| !sid.is_tagged()) else {
                        row_of.push(0);
                        continue;
                    };
                    let after_second = step(&mut cache, after_first, second)?;
                    if after_second.is_tagged() {
                        row_of.push(0);
                        continue;
                    }
                    let row = match row_by_state.get(&after_second) {
                        Some(row) => *row,
                        None => {
                            let mut bits = [0u64; 4];
                            for third in 0..=255u8 {
                                if !step(&mut cache, after_second, third)?.is_dead() {
                                    bits[usize::from(third / 64)] |= 1 << (third % 64);
                                }
                            }
                            let next = u16::try_from(rows.len()).ok()?;
                            let row = *row_by_bits.entry(bits).or_insert(next);
                            if row == next {
                                rows.push(bits);
                            }
                            row_by_state.insert(after_second, row);
                            row
                        }
                    };
                    row_of.push(row);
                }
            }
        }
        Some(Self {
            ranks,
            row_of,
            rows,
        })
    }

    /// Whether a reading of the pair at `bit` (which passes) may match
    /// with `third` after it.
    #[inline]
    fn passes(&self, pairs: &[u64], bit: usize, third: u8) -> bool {
        let word = bit / 64;
        let (Some(below), Some(before)) = (pairs.get(word), self.ranks.get(word)) else {
            return true;
        };
        let below = below & ((1u64 << (bit % 64)) - 1);
        let rank = *before as usize + below.count_ones() as usize;
        let row = self.row_of.get(rank).copied().unwrap_or(0);
        self.rows
            .get(usize::from(row))
            .is_none_or(|bits| bits[usize::from(third / 64)] >> (third % 64) & 1 == 1)
    }
}

/// The bit of the pairs for a place after a byte of `kind` whose first
/// two bytes are `first` and `second`.
#[inline]
fn pair_bit(kind: u8, first: u8, second: u8) -> usize {
    usize::from(kind) << 16 | usize::from(first) << 8 | usize::from(second)
}

/// A search anchored at a place after `look_behind` (`None`: the start).
fn anchored_after(look_behind: Option<u8>) -> start::Config {
    start::Config::new()
        .anchored(Anchored::Yes)
        .look_behind(look_behind)
}

/// The second bytes (a bit each) after which a reading from a place after
/// `look_behind` whose first byte is `byte` is not dead without a match
/// on the way: those with which the place passes.
fn passing_seconds(
    dfa: &DFA,
    cache: &mut Cache,
    look_behind: Option<u8>,
    byte: u8,
) -> Result<[u64; 4], String> {
    let after_first = |cache: &mut Cache| -> Result<LazyStateID, String> {
        let start = dfa
            .start_state(cache, &anchored_after(look_behind))
            .map_err(|e| e.to_string())?;
        dfa.next_state(cache, start, byte)
            .map_err(|e| e.to_string())
    };
    let mut after = after_first(cache)?;
    if after.is_dead() {
        return Ok([0; 4]);
    }
    if after.is_match() || after.is_quit() {
        return Ok([u64::MAX; 4]);
    }
    let mut seconds = [0u64; 4];
    for second in 0..=255u8 {
        let clears = cache.clear_count();
        let then = dfa
            .next_state(cache, after, second)
            .map_err(|e| e.to_string())?;
        if !then.is_dead() {
            seconds[usize::from(second / 64)] |= 1 << (second % 64);
        }
        // A cleared cache makes `after` point nowhere.
        if cache.clear_count() != clears {
            after = after_first(cache)?;
        }
    }
    Ok(seconds)
}

/// The branches of `hir`: its alternatives, and theirs, through groups.
pub(super) fn branches(hir: &Hir) -> Vec<Hir> {
    match hir.kind() {
        HirKind::Alternation(parts) => parts.iter().flat_map(branches).collect(),
        HirKind::Capture(capture) => branches(&capture.sub),
        _ => vec![hir.clone()],
    }
}

/// Whether readings of `branch` may go on long on text of any kind: it
/// reaches a class of most bytes repeated without end (`[^>]*`, `\S*`)
/// after a start likely in random printable text (more than
/// [`LONG_START`] a place: `<a`, `${`), and a reading from each such
/// place would go on to that class's end.
pub(super) fn runs_long(branch: &Hir) -> bool {
    reach(branch).1 > LONG_START
}

/// How likely a place of random printable text is to start a reading
/// that reaches an endless repetition of a broad class: about once a line
/// of 8 KB.
const LONG_START: f64 = 1e-4;

/// For random printable text (95 characters, each as likely): how likely
/// it is to match `hir` at a place, and to reach a broad class repeated
/// without end inside it (0: it has none).
fn reach(hir: &Hir) -> (f64, f64) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => (1.0, 0.0),
        HirKind::Literal(literal) => (PRINTABLE_SHARE.powi(literal.0.len() as i32), 0.0),
        HirKind::Class(class) => (printable_share(class), 0.0),
        HirKind::Capture(capture) => reach(&capture.sub),
        HirKind::Repetition(repetition) => {
            let (through, long) = reach(&repetition.sub);
            // `[^>]`, `\S`: all but one or two characters.
            let broad = repetition.max.is_none() && through >= BROAD;
            let through = through.powi(repetition.min.min(8) as i32);
            (through, if broad { through.max(long) } else { long })
        }
        HirKind::Concat(parts) => {
            let (mut through, mut long) = (1.0f64, 0.0f64);
            for part in parts {
                let (part_through, part_long) = reach(part);
                long = long.max(through * part_long);
                through *= part_through;
            }
            (through, long)
        }
        HirKind::Alternation(parts) => parts
            .iter()
            .map(reach)
            .fold((0.0, 0.0), |(a, b), (c, d)| ((a + c).min(1.0), b.max(d))),
    }
}

/// The share of printable characters a class holds to be broad.
const BROAD: f64 = 0.95;

/// How likely one random printable character is to be a given one.
const PRINTABLE_SHARE: f64 = 1.0 / 95.0;

/// How many of the 95 printable characters `class` holds, as a share.
fn printable_share(class: &Class) -> f64 {
    let held = (b' '..=b'~')
        .filter(|byte| match class {
            Class::Bytes(bytes) => bytes
                .ranges()
                .iter()
                .any(|range| (range.start()..=range.end()).contains(byte)),
            Class::Unicode(unicode) => {
                let c = char::from(*byte);
                unicode
                    .ranges()
                    .iter()
                    .any(|range| (range.start()..=range.end()).contains(&c))
            }
        })
        .count();
    held as f64 * PRINTABLE_SHARE
}

/// How `branch` is read from its starts, if it can be: as it is, or
/// shortened (see [`shortened`]), and then whether its readings tell no
/// place where its matches start; `None`: it is left to the unanchored
/// DFAs.
pub(super) fn from_starts(branch: &Hir) -> Option<(Hir, bool)> {
    // A branch that can only start at the text's start is one reading.
    let one_place = anchored_at_start(branch);
    if one_place || !(starts_anywhere(branch) || runs_long(branch)) {
        return Some((branch.clone(), false));
    }
    let short = shortened(branch)?;
    (!(starts_anywhere(&short) || runs_long(&short))).then_some((short, true))
}

/// Whether every match of `branch` starts at the text's start (`\A`).
fn anchored_at_start(branch: &Hir) -> bool {
    match branch.kind() {
        HirKind::Look(Look::Start) => true,
        HirKind::Capture(capture) => anchored_at_start(&capture.sub),
        HirKind::Concat(parts) => parts.first().is_some_and(anchored_at_start),
        _ => false,
    }
}

/// `branch` without the run its matches begin with, when that changes
/// only where they start, not whether one is found: `\b\w+\.bat` as
/// `\w\.bat` (a word character before `.bat` ends a run of them, which
/// `\b` begins), `x+y` as `xy`. Its readings then start at the run's last
/// byte, not at its first.
fn shortened(branch: &Hir) -> Option<Hir> {
    let HirKind::Concat(parts) = branch.kind() else {
        return None;
    };
    let (boundary, rest) = match parts.first().map(Hir::kind) {
        Some(HirKind::Look(Look::WordAscii)) => (true, &parts[1..]),
        _ => (false, &parts[..]),
    };
    let (first, after) = rest.split_first()?;
    let HirKind::Repetition(run) = first.kind() else {
        return None;
    };
    let HirKind::Class(class) = run.sub.kind() else {
        return None;
    };
    if run.min != 1 || run.max.is_some() || (boundary && !is_word_class(class)) {
        return None;
    }
    let mut short = vec![run.sub.as_ref().clone()];
    short.extend(after.iter().cloned());
    Some(Hir::concat(short))
}

/// Whether `class` is ASCII's `\w`, the class `\b` reads.
fn is_word_class(class: &Class) -> bool {
    let word = ClassBytes::new([
        ClassBytesRange::new(b'0', b'9'),
        ClassBytesRange::new(b'A', b'Z'),
        ClassBytesRange::new(b'_', b'_'),
        ClassBytesRange::new(b'a', b'z'),
    ]);
    matches!(class, Class::Bytes(bytes) if *bytes == word)
}

/// Whether almost any two bytes can begin a match of `branch` (more than
/// [`DENSE_STARTS`] two-byte starts, or a match of fewer than two bytes):
/// a reading from each place would then cost more than one unanchored
/// DFA.
pub(super) fn starts_anywhere(branch: &Hir) -> bool {
    let prefixes = Extractor::new()
        .kind(ExtractKind::Prefix)
        .limit_literal_len(2)
        .limit_class(256)
        .limit_total(DENSE_STARTS * 2)
        .extract(branch);
    let Some(literals) = prefixes.literals() else {
        return true;
    };
    let starts = literals
        .iter()
        .try_fold(0usize, |starts, literal| match literal.len() {
            0 => None,
            1 => starts.checked_add(256),
            _ => starts.checked_add(1),
        });
    starts.is_none_or(|starts| starts > DENSE_STARTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::scan::tests::scrambled;
    use regex_automata::util::syntax;

    /// Whether a reading from `at` is over, with nothing matched, on the
    /// third byte: stepped with a cache of its own.
    fn dies_on_third_byte(starts: &Starts, text: &[u8], at: usize) -> bool {
        let dfa = &starts.automaton.dfa;
        let mut cache = dfa.create_cache();
        let behind = at.checked_sub(1).map(|before| text[before]);
        let mut sid = dfa
            .start_state(&mut cache, &anchored_after(behind))
            .unwrap();
        for (step, byte) in text[at..at + 3].iter().enumerate() {
            sid = dfa.next_state(&mut cache, sid, *byte).unwrap();
            if sid.is_match() || sid.is_quit() {
                return false;
            }
            if sid.is_dead() {
                return step == 2;
            }
        }
        false
    }

    #[test]
    fn a_branch_that_starts_anywhere_is_read_from_its_starts_once_its_first_run_is_cut() {
        let syntax = syntax::Config::new().unicode(false).utf8(false);
        let parse = |pattern: &str| syntax::parse_with(pattern, &syntax).unwrap();
        let read = |pattern: &str| {
            from_starts(&parse(pattern))
                .map(|(hir, tells_no_place)| (hir.to_string(), tells_no_place))
        };
        assert_eq!(
            read(r"(?i)select"),
            Some((parse(r"(?i)select").to_string(), false))
        );
        assert_eq!(
            read(r"\b\w+\.bat"),
            Some((parse(r"\w\.bat").to_string(), true))
        );
        assert_eq!(
            read(r"[^/]+\.bat"),
            Some((parse(r"[^/]\.bat").to_string(), true))
        );
        // `\b` before a run of other characters than `\w` does not begin it.
        assert_eq!(read(r"\b[^/]+\.bat"), None);
        assert_eq!(read(r"<[a-z]+[^>]*\sstyle"), None);
        // One reading, from the text's start.
        assert_eq!(
            read(r"\A[^?]*~"),
            Some((parse(r"\A[^?]*~").to_string(), false))
        );
    }

    #[test]
    fn a_cache_cleared_while_the_thirds_are_built_leaves_them_off_without_a_panic() {
        // Built on, the ids of states held before the clear read past the
        // cache's table (a panic in regex-automata's next_state).
        let syntax = syntax::Config::new().unicode(false).utf8(false);
        let branches: Vec<Hir> = [
            r"(?i)\bunion\s+select\b",
            r"[;|&]\s*(id|ls|cat|whoami)(\s|$)",
            r"(?i)<\s*(script|svg|img|iframe|object)\b",
            r"'\s*(or|and)\s+\d",
        ]
        .iter()
        .map(|pattern| syntax::parse_with(pattern, &syntax).unwrap())
        .collect();
        let built = |capacity: usize| {
            let owners = (0..branches.len()).collect();
            let placeless = vec![false; branches.len()];
            let starts = Starts::new(&branches, owners, placeless, 1 << 24, capacity).unwrap();
            starts.thirds.is_some()
        };
        assert!(!built(8 << 10));
        assert!(built(1 << 24));
    }

    #[test]
    fn a_place_whose_third_byte_ends_the_reading_is_not_read() {
        let patterns = [
            r"(?i)\bunion\s+select\b",
            r"[;|&]\s*(id|ls|cat|whoami)(\s|$)",
            r"(?i)<\s*(script|svg|img)\b",
            r"[a-z]\[[a-z0-9]{1,3}\][a-z]",
            r"\$\{\s*jndi:",
            r"'\s*(or|and)\s+\d",
            r"\.\./",
            r"ab",
        ];
        let syntax = syntax::Config::new().unicode(false).utf8(false);
        let branches: Vec<Hir> = patterns
            .iter()
            .map(|pattern| syntax::parse_with(pattern, &syntax).unwrap())
            .collect();
        let owners = (0..branches.len()).collect();
        let placeless = vec![false; branches.len()];
        let starts = Starts::new(&branches, owners, placeless, 1 << 24, 1 << 24).unwrap();
        let thirds = starts.thirds.as_ref().expect("the thirds were built");
        let alphabet: Vec<&str> = "abcdijlnorstuxz0123456789 '()<>;|&$`{}[]*/.=-#+"
            .split("")
            .filter(|c| !c.is_empty())
            .collect();
        let (mut read, mut passed_over) = (0, 0);
        for seed in 0..20 {
            let text = scrambled(&alphabet, 2_000, seed, "", 0);
            for at in 0..text.len() - 2 {
                let bit = pair_bit(starts.kind_at(&text, at), text[at], text[at + 1]);
                if starts.pairs[bit / 64] >> (bit % 64) & 1 == 0 {
                    continue;
                }
                let passes = thirds.passes(&starts.pairs, bit, text[at + 2]);
                assert_eq!(
                    passes,
                    !dies_on_third_byte(&starts, &text, at),
                    "{:?}",
                    String::from_utf8_lossy(&text[at..at + 3])
                );
                match passes {
                    true => read += 1,
                    false => passed_over += 1,
                }
            }
        }
        // Both kinds of place were met: the test tells something.
        assert!(
            read > 100 && passed_over > 100,
            "{read} read, {passed_over} passed over"
        );
    }
}
