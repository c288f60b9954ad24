//! The patterns of one field as one lazy DFA that tells which of them
//! match, in one pass over the text (repetitions counted far read as if
//! uncounted; and, on text that keeps the DFA building states, DFAs of
//! fewer patterns each: see [`Scanner`]).
//!
//! A step of a DFA is a table lookup that waits for the one before, about
//! a nanosecond a byte whatever the text. Two things cut that, neither of
//! which can change the answer:
//!
//! - repeated text: when the DFA is in the same state at two points
//!   `period` bytes apart and the text from the first repeats on
//!   (`../../../`, `''''`, `a=1&a=1&`), each later repetition takes it
//!   through the same states back to that state, so it is skipped whole
//!   (a compare of bytes, not a step per byte);
//! - lanes: a long text is read as two or three parts at once (each after
//!   the first from a fresh start), so that the core overlaps their steps;
//!   each part's start is then read again from where the part before
//!   ended, until the two readings are in the same state at the same place.
//!
//! When the lazy DFA gives up (its cache thrashed, or a Unicode word
//! boundary met a non-ASCII byte) the caller runs the patterns one by one.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::pool::Pool;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchError, MatchKind, Span};
use regex_syntax::hir::{Hir, HirKind};
use std::ops::Range;
use std::sync::OnceLock;

use super::required;
use super::starts::{self, Starts, StartsCache};

/// Bytes read between two looks for a repetition.
const BLOCK: usize = 64;
/// The shortest part of a text read in a lane of its own: a text is read
/// in as many lanes (2 or 3) as it holds such parts.
const MIN_LANE: usize = 512;
/// Blocks between two looks for a repetition after one found none; it
/// doubles with each look that finds none, up to the most (1 KB: text
/// that starts to repeat after that long is still skipped from there).
const LOOK_EVERY: usize = 4;
const LOOK_AT_MOST_EVERY: usize = 16;
/// The longest repeated unit looked for: any a block's states can show (a
/// long User-Agent repeats `Mozilla/5.0 (X11; Linux) `, 25 bytes; a phrase
/// of two Devanagari or Thai words is about 38 bytes of UTF-8, and at 32
/// its percent-encoded text was read a byte at a time, 95k lines/s where
/// Cyrillic and Hebrew ran at 130k).
const MAX_PERIOD: usize = BLOCK - 1;
/// Texts shorter than this are read by the DFAs without a search for the
/// literals the patterns require first (a url of ordinary traffic is
/// read in about as long as the search would take).
const SEARCHED_FROM: usize = 256;

/// Bytes of new states a node of the tree may build before its halves
/// read for it (at first, and at most): a cold DFA builds its first states
/// on the first lines (all of a url's patterns: from 230 KB to 1 MB on the
/// first 2,000 of 151,185 urls from Debian's documentation), and a burst
/// of new text may build more.
const CREDIT: usize = 1 << 20;
/// Credit a node regains for each line it reads: a 64th of the line and
/// 64 bytes. A new state of all of a url's patterns costs about 100 ns a
/// byte of it, a pass of a DFA about 1 ns a byte of text: its halves, one
/// pass more each, cost less once it builds more than a few bytes of
/// states for each 64 of text. Real urls build less (the 151,185 above,
/// 36 bytes a line, about half a line's credit), random printable text
/// far more (1.2 bytes a byte).
const REFILL_SHARE: usize = 64;
const REFILL_LINE: usize = 64;
/// Credit of a node tried again after its halves read for it: on text
/// that still keeps it hot (random printable text) a try costs what it
/// builds, about 3 ms for 16 KB of a url's states (15 ms for 128 KB).
const RETRY_CREDIT: usize = 16 << 10;
/// Lines its halves read for a node that was hot, before it is tried
/// again: doubles each time it is hot again, up to the most, and halves
/// after as many calm lines.
const MIN_HOLD: u32 = 64;
const MAX_HOLD: u32 = 1 << 16;

type StateFn = Box<dyn Fn() -> ScanState + Send + Sync>;

/// The patterns of one field in lazy DFAs that together tell every
/// pattern that matches (not only the leftmost).
///
/// A repetition counted far (`[^}]{0,60}`) is read as if it had no most
/// (`[^}]*`): each place such a repetition may have reached is a state of
/// its own, and every combination of them too. Log4Shell's pattern built
/// states without end on random printable text (6.7 KB of them a line);
/// its first alternative alone took 20 us a line, 8 us with its counts
/// relaxed. Such a pattern then matches more than it says: the caller
/// confirms its matches with the pattern itself ([`Self::relaxed`]).
///
/// The patterns are read by one DFA, the root of a tree whose nodes each
/// have two halves of its patterns' DFA as children. One DFA is one pass
/// over the text, but its states are sets of its patterns' states: on
/// text that keeps making new sets (a new line of random printable text
/// each time) it builds states all the time, and a state of all of a
/// url's 14 patterns costs about 12 us (1.1 ms a line of 8 KB). Apart,
/// each pattern soon has all the states such text meets. A node that
/// builds more states than its credit allows (see [`Heat`]) is left for
/// a while, its halves reading instead, and they split in turn when they
/// are hot; on text whose states are known the root reads alone.
pub(crate) struct Scanner {
    nodes: Vec<Node>,
    root: Option<usize>,
    states: Pool<ScanState, StateFn>,
    /// The patterns as the DFAs read them (counts relaxed): what the
    /// nodes below the root are built from when first read.
    hirs: Vec<Hir>,
    /// Which patterns had their counts relaxed.
    relaxed: Vec<bool>,
    /// The bytes each NFA may take.
    limit: usize,
    /// Whether the patterns are parted when the root is hot (not in the
    /// scanner of the parted patterns' rest).
    parts: bool,
    /// Built the first time the root is hot; `None`: they could not be.
    parted: OnceLock<Option<Parted>>,
    /// A search for the literals, in ASCII lower case, one of which every
    /// match holds (see [`required`]); `None`: the patterns have none.
    required: Option<Prefilter>,
}

/// The patterns parted for text that keeps the root hot: the branches
/// that can start at few places, read from each of them ([`Starts`]), and
/// the rest, with the index in the field's patterns of each.
struct Parted {
    starts: Starts,
    rest: Option<(Box<Scanner>, Vec<usize>)>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("patterns", &self.hirs.len())
            .field("parted", &self.parted.get().map(|parted| parted.is_some()))
            .field("nodes", &self.nodes.len())
            .field(
                "built",
                &self
                    .nodes
                    .iter()
                    .filter(|node| node.automaton.get().is_some())
                    .count(),
            )
            .finish_non_exhaustive()
    }
}

/// A DFA of some of the patterns, and the nodes of its halves when it
/// has more than one.
struct Node {
    /// Its patterns, by index in the field's.
    indices: Vec<usize>,
    /// The bytes its DFA's cache may take.
    capacity: usize,
    /// Built when first read (the root at once): the NFAs of the whole
    /// tree of a url's 13 patterns, 25 nodes, took 270 ms to build, and
    /// most of them are never read.
    /// `None`: its NFA was over the limit.
    automaton: OnceLock<Option<Automaton>>,
    halves: Option<[usize; 2]>,
}

/// Each node's DFA's cache (made when first read) and heat: a thread
/// takes one from the scanner's pool for a line (one kept for the thread
/// that made the pool, others shared by the rest).
struct ScanState {
    caches: Vec<Option<Cache>>,
    heat: Vec<Heat>,
    /// The cache of the parted patterns' readings from their starts.
    starts: Option<StartsCache>,
    /// Lines of a hot root read by its halves after a text took more
    /// than the parted patterns' budget.
    starts_off: Backoff,
    /// For each pattern, the first place the parted patterns' readings
    /// from starts matched it from (`usize::MAX`: none, or not read so).
    from: Vec<usize>,
    /// The search for the literals the root's patterns require.
    required: RequiredSearch,
}

/// A thread's search for the literals one of which every match holds:
/// its timing, and the text in lower case it searches.
///
/// The search costs about a tenth of a nanosecond a byte (a copy in lower
/// case and a vector search); the DFA reads a byte in about one, but text
/// that repeats (`/*!/*!`, `((((`) it skips a unit at a time, for less
/// than the search (8 KB of `/*!` took 6 % longer with it). So the DFA
/// reads a long text alone now and then ([`Self::probe`]), timed: while
/// it reads such text for less than the search costs, it reads it alone.
/// Only the cost depends on the clock, never the answer.
struct RequiredSearch {
    skim: Skim,
    lowered: Vec<u8>,
    /// Lines after which the DFA reads a text alone, timed: twice as many
    /// each time it was slower than the search.
    probe: Backoff,
    /// Lines the DFA reads alone, after it was faster than the search.
    alone: Backoff,
    /// What the search last cost, in nanoseconds for 1,024 bytes.
    search_cost: u128,
}

impl RequiredSearch {
    const NEW: Self = Self {
        skim: Skim::NEW,
        lowered: Vec::new(),
        probe: Backoff::NEW,
        alone: Backoff::NEW,
        search_cost: SEARCH_NANOS_PER_KB,
    };

    /// Whether `text` may hold one of the literals `literals` searches
    /// for (`true` while the search is off: it cost more than the DFA).
    fn may_hold(&mut self, literals: &Prefilter, text: &[u8]) -> bool {
        let Self {
            skim,
            lowered,
            search_cost,
            ..
        } = self;
        let (found, nanos) = skim.timed_search(text.len(), || {
            lowered.clear();
            lowered.extend(text.iter().map(u8::to_ascii_lowercase));
            let found = literals.find(lowered, Span::from(0..lowered.len()));
            found.map(|span| span.start)
        });
        // Its cost, where it went through the text.
        if let (None, Some(nanos)) = (found, nanos) {
            *search_cost = per_kb(nanos, text.len());
        }
        found.is_some()
    }

    /// Whether the DFA reads a text of `len` bytes alone this line, timed
    /// ([`Self::timed`]): while it reads alone, and on each probe.
    fn reads_alone(&mut self, len: usize) -> bool {
        if len < TIMED_PREFILTER {
            return false;
        }
        self.alone.skips_line() || !self.probe.skips_line()
    }

    /// The DFA read a text of `len` bytes alone in `nanos`: alone for more
    /// lines if it cost less than the search, else searched for again.
    fn timed(&mut self, nanos: u128, len: usize) {
        if per_kb(nanos, len) < self.search_cost {
            self.alone.start();
            self.probe.ease();
        } else {
            self.alone = Backoff::NEW;
            self.probe.start();
        }
    }
}

/// What the search for required literals is taken to cost before it is
/// first timed, in nanoseconds for 1,024 bytes (measured: about 100).
const SEARCH_NANOS_PER_KB: u128 = 128;

/// `nanos` for `len` bytes, in nanoseconds for 1,024 bytes.
fn per_kb(nanos: u128, len: usize) -> u128 {
    nanos * 1024 / len.max(1) as u128
}

/// Which patterns match a text ([`Self::found`], by index) and, for each,
/// a place no match of it starts before: where the readings from starts
/// first matched it, else 0. A search for its match then starts there.
#[derive(Debug)]
pub(crate) struct Matched {
    pub(crate) found: Vec<bool>,
    from: Vec<usize>,
    /// For each pattern whose match a search confirmed (see
    /// [`Self::confirm`]), where its first match lies: what the search
    /// for it would find again. Empty when none was.
    first: Vec<Option<Range<usize>>>,
}

impl Matched {
    /// `found`, with no place known: from the start for each.
    pub(crate) fn anywhere(found: Vec<bool>) -> Self {
        let from = vec![0; found.len()];
        Self {
            found,
            from,
            first: Vec::new(),
        }
    }

    /// The place no match of pattern `index` starts before.
    pub(crate) fn from(&self, index: usize) -> usize {
        self.from.get(index).copied().unwrap_or(0)
    }

    /// Pattern `index` matches as `first`, its first match from
    /// [`Self::from`] that a search found (`None`: it does not match).
    pub(crate) fn confirm(&mut self, index: usize, first: Option<Range<usize>>) {
        if self.first.len() < self.found.len() {
            self.first.resize(self.found.len(), None);
        }
        if let Some(found) = self.found.get_mut(index) {
            *found = first.is_some();
        }
        if let Some(slot) = self.first.get_mut(index) {
            *slot = first;
        }
    }

    /// Where the first match of pattern `index` lies, when a search
    /// confirmed it.
    pub(crate) fn first(&self, index: usize) -> Option<Range<usize>> {
        self.first.get(index).cloned().flatten()
    }
}

impl std::ops::Deref for Matched {
    type Target = [bool];

    fn deref(&self) -> &[bool] {
        &self.found
    }
}

impl ScanState {
    /// The cache of node `slot`'s DFA, its use of its prefilter, and the
    /// search for the required literals.
    fn cache_skim_and_search(
        &mut self,
        slot: usize,
        automaton: &Automaton,
    ) -> (&mut Cache, &mut Skim, &mut RequiredSearch) {
        let cache = self.caches[slot].get_or_insert_with(|| automaton.dfa.create_cache());
        (cache, &mut self.heat[slot].skim, &mut self.required)
    }
}

/// How many lines a way of reading is left off for, after it cost too
/// much on one, and for how many the next time: twice as many each time
/// (up to [`MAX_HOLD`]), half as many after it did well.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    left: u32,
    next: u32,
}

impl Backoff {
    const NEW: Self = Self {
        left: 0,
        next: MIN_HOLD,
    };

    /// Whether it is off for this line (counted).
    fn skips_line(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }

    /// It cost too much: off for the next lines, twice as many next time.
    fn start(&mut self) {
        self.left = self.next;
        self.next = (self.next * 2).min(MAX_HOLD);
    }

    /// It did well: the next time it is off for half as many lines.
    fn ease(&mut self) {
        self.next = (self.next / 2).max(MIN_HOLD);
    }
}

/// Whether a node's DFA starts where its prefilter finds the first of its
/// literals, or at the text's start. The prefilter checks each place that
/// holds a literal's first bytes: when such places are everywhere
/// (`%u0027%u0027...` for CRLF injection's `%u000a`), it took about 4 ns
/// a byte to find none, where the DFA reads a byte in about one. A text on
/// which it took longer than the DFA would have is read from its start
/// for the next lines (a [`Backoff`], as for a hot node): only the cost
/// depends on the clock, never the answer.
#[derive(Debug, Clone, Copy)]
struct Skim(Backoff);

/// A prefilter is timed on texts of at least this many bytes (reading the
/// clock costs about 25 ns).
const TIMED_PREFILTER: usize = 1024;
/// What the DFA costs a byte: a prefilter that took longer is slow.
const DFA_NANOS_PER_BYTE: u128 = 1;

impl Skim {
    const NEW: Self = Self(Backoff::NEW);

    /// The first place a match can start, by `prefilter` unless it is
    /// off; `None`: no match.
    fn first_place(&mut self, prefilter: &Prefilter, text: &[u8]) -> Option<usize> {
        let (found, _) = self.timed_search(text.len(), || {
            let found = prefilter.find(text, Span::from(0..text.len()));
            found.map(|span| span.start)
        });
        found
    }

    /// What `search` of a text of `len` bytes finds, timed, unless it is
    /// off: then `Some(0)`, the text's start. With the nanoseconds it
    /// took, when it was timed.
    fn timed_search(
        &mut self,
        len: usize,
        search: impl FnOnce() -> Option<usize>,
    ) -> (Option<usize>, Option<u128>) {
        if self.0.skips_line() {
            return (Some(0), None);
        }
        let started = (len >= TIMED_PREFILTER).then(std::time::Instant::now);
        let found = search();
        let nanos = started.map(|started| started.elapsed().as_nanos());
        if let Some(nanos) = nanos {
            self.timed(nanos > len as u128 * DFA_NANOS_PER_BYTE);
        }
        (found, nanos)
    }

    /// The prefilter was timed on a text: off for the next lines if it
    /// was `slow`; else off for fewer the next time.
    fn timed(&mut self, slow: bool) {
        match slow {
            true => self.0.start(),
            false => self.0.ease(),
        }
    }
}

/// How many new states a node of the tree may still build, and whether
/// its halves read for it now. Lines are counted as the node is asked to
/// read them: a node below one that reads alone is not asked.
#[derive(Debug, Clone, Copy)]
struct Heat {
    /// Bytes of new states it may build before its halves read instead.
    credit: usize,
    /// Lines its halves still read for it, and the next time it is hot.
    split: Backoff,
    /// Lines it read since it was last hot or its hold halved.
    calm: u32,
    skim: Skim,
}

impl Heat {
    fn new(credit: usize) -> Self {
        Self {
            credit,
            split: Backoff::NEW,
            calm: 0,
            skim: Skim::NEW,
        }
    }

    /// Whether the node's halves read a line of `len` bytes for it; when
    /// not, its credit grows by the line's share.
    fn split(&mut self, len: usize) -> bool {
        if self.split.skips_line() {
            return true;
        }
        self.credit = (self.credit + len / REFILL_SHARE + REFILL_LINE).min(CREDIT);
        false
    }

    /// The node read a line and built `built` bytes of states on it.
    fn read(&mut self, built: usize) {
        self.credit = self.credit.saturating_sub(built);
        self.calm += 1;
        if self.calm >= self.split.next {
            self.split.ease();
            self.calm = 0;
        }
    }

    /// The node built more than its credit on a line: its halves read
    /// for it the next lines.
    fn overheated(&mut self) {
        self.credit = RETRY_CREDIT;
        self.split.start();
        self.calm = 0;
    }
}

/// Why a DFA stopped before the end of a text.
enum Stop {
    /// It built more states than its credit allowed.
    Hot,
    /// It gave up (cache thrashed, a Unicode word boundary met non-ASCII).
    GaveUp(MatchError),
}

impl From<MatchError> for Stop {
    fn from(error: MatchError) -> Self {
        Stop::GaveUp(error)
    }
}

impl Scanner {
    /// `patterns` in the dialect of rules (bytes, Unicode off unless a
    /// pattern turns it on), `limit` the bytes each NFA and the root
    /// DFA's cache may take.
    pub(crate) fn new(patterns: &[&str], limit: usize) -> Result<Self, String> {
        Self::with_credit(patterns, limit, CREDIT)
    }

    /// As [`Self::new`], every node of the tree hot on its first new
    /// states.
    #[cfg(test)]
    pub(crate) fn always_hot(patterns: &[&str], limit: usize) -> Result<Self, String> {
        Self::with_credit(patterns, limit, 0)
    }

    /// As [`Self::new`], each node of the tree starting with `credit`.
    fn with_credit(patterns: &[&str], limit: usize, credit: usize) -> Result<Self, String> {
        let syntax = syntax::Config::new().unicode(false).utf8(false);
        let parsed = syntax::parse_many_with(patterns, &syntax).map_err(|e| e.to_string())?;
        let (hirs, relaxed): (Vec<Hir>, Vec<bool>) = parsed
            .into_iter()
            .map(|hir| match relax(&hir) {
                Some(relaxed) => (relaxed, true),
                None => (hir, false),
            })
            .unzip();
        Self::from_hirs(hirs, relaxed, limit, credit, true)
    }

    /// As [`Self::with_credit`], of patterns parsed and relaxed; parted
    /// when the root is hot if `parts`.
    fn from_hirs(
        hirs: Vec<Hir>,
        relaxed: Vec<bool>,
        limit: usize,
        credit: usize,
        parts: bool,
    ) -> Result<Self, String> {
        // The heaviest first: they are what makes a DFA hot, and halving
        // then parts them from the light ones, which stay together (on
        // random printable text, a url's patterns were then read by 6
        // DFAs, 99 us a line, instead of 8, 125 us; measured while
        // Log4Shell's had a DFA of its own, before counts were relaxed).
        let mut all: Vec<usize> = (0..hirs.len()).collect();
        all.sort_by_key(|index| std::cmp::Reverse(weight(&hirs[*index])));
        let mut nodes = Vec::new();
        let root = match all.is_empty() {
            true => None,
            false => Some(grow(all, limit, &mut nodes)),
        };
        let count = nodes.len();
        let create: StateFn = Box::new(move || ScanState {
            caches: (0..count).map(|_| None).collect(),
            heat: vec![Heat::new(credit); count],
            starts: None,
            starts_off: Backoff::NEW,
            from: Vec::new(),
            required: RequiredSearch::NEW,
        });
        let required = required::field_literals(&hirs)
            .and_then(|literals| Prefilter::new(MatchKind::LeftmostFirst, &literals));
        let scanner = Self {
            nodes,
            root,
            states: Pool::new(create),
            hirs,
            relaxed,
            limit,
            parts,
            parted: OnceLock::new(),
            required,
        };
        // The root's errors are the patterns' errors: told when loading.
        if let Some(root) = scanner.root {
            let automaton = scanner.build(&scanner.nodes[root])?;
            let _ = scanner.nodes[root].automaton.set(Some(automaton));
        }
        Ok(scanner)
    }

    /// Whether pattern `index` was read with its counts relaxed: a match
    /// the scanner tells for it is to be confirmed by the pattern itself.
    pub(crate) fn relaxed(&self, index: usize) -> bool {
        self.relaxed.get(index).copied().unwrap_or(false)
    }

    /// The DFA of node `index`, built when first asked for.
    fn automaton(&self, index: usize) -> Option<&Automaton> {
        let node = &self.nodes[index];
        node.automaton
            .get_or_init(|| self.build(node).ok())
            .as_ref()
    }

    fn build(&self, node: &Node) -> Result<Automaton, String> {
        let own: Vec<Hir> = node
            .indices
            .iter()
            .map(|index| self.hirs[*index].clone())
            .collect();
        let prefilter =
            Prefilter::from_hirs_prefix(MatchKind::All, &own).filter(Prefilter::is_fast);
        Automaton::new(
            &own,
            node.indices.clone(),
            prefilter,
            self.limit,
            node.capacity,
        )
    }

    /// The halves of node `index` and their DFAs; `None` when it has none
    /// or one could not be built.
    fn halves(&self, index: usize) -> Option<[(usize, &Automaton); 2]> {
        let [first, second] = self.nodes[index].halves?;
        Some([
            (first, self.automaton(first)?),
            (second, self.automaton(second)?),
        ])
    }

    /// Which patterns match `text`, by index (`None`: none does); for a
    /// [relaxed](Self::relaxed) pattern, that it may. An error when a lazy
    /// DFA gave up on this text.
    pub(crate) fn matches(&self, text: &[u8]) -> Result<Option<Vec<bool>>, MatchError> {
        Ok(self.matches_with_places(text)?.map(|matched| matched.found))
    }

    /// As [`Self::matches`], with a place for each pattern that no match
    /// of it starts before.
    pub(crate) fn matches_with_places(&self, text: &[u8]) -> Result<Option<Matched>, MatchError> {
        let mut found = vec![false; self.hirs.len()];
        let mut any = false;
        let mut state = self.states.get();
        state.from.clear();
        state.from.resize(self.hirs.len(), usize::MAX);
        if let Some(root) = self.root {
            if let Some(automaton) = self.automaton(root) {
                self.read(root, automaton, &mut state, text, &mut found, &mut any)?;
            }
        }
        // Only the readings from starts tell a place.
        Ok(any.then(|| Matched {
            found,
            first: Vec::new(),
            from: state
                .from
                .iter()
                .map(|from| match *from {
                    usize::MAX => 0,
                    from => from,
                })
                .collect(),
        }))
    }

    /// The literals one of which every match holds (see [`required`]), and
    /// the search for them, when node `index` is the root: the others
    /// read only some of the patterns.
    fn required_at<'s>(
        &self,
        index: usize,
        search: &'s mut RequiredSearch,
    ) -> Option<(&Prefilter, &'s mut RequiredSearch)> {
        let literals = self.required.as_ref()?;
        (self.root == Some(index)).then_some((literals, search))
    }

    /// Node `index`, whose DFA is `automaton`, reads `text`; or its halves
    /// do, when it is hot.
    fn read(
        &self,
        index: usize,
        automaton: &Automaton,
        state: &mut ScanState,
        text: &[u8],
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<(), MatchError> {
        let halves = if self.nodes[index].halves.is_none() {
            None
        } else if state.heat[index].split(text.len()) {
            if self.root == Some(index) {
                return self.read_hot_root(index, automaton, state, text, found, any);
            }
            self.halves(index)
        } else {
            let credit = state.heat[index].credit;
            let (cache, skim, search) = state.cache_skim_and_search(index, automaton);
            let required = self.required_at(index, search);
            let (before, clears) = (cache.memory_usage(), cache.clear_count());
            let limit = before.saturating_add(credit);
            let result = automaton.matches(cache, skim, required, text, found, any, limit);
            // A cache that filled up was cleared: what it held then was
            // built too.
            let built = match cache.clear_count() == clears {
                true => cache.memory_usage().saturating_sub(before),
                false => {
                    let capacity = self.nodes[index].capacity;
                    capacity.saturating_sub(before) + cache.memory_usage()
                }
            };
            match result {
                Ok(()) => {
                    state.heat[index].read(built);
                    return Ok(());
                }
                // What it matched before it stopped is matched; the halves
                // read the whole text again.
                Err(Stop::Hot) => {
                    state.heat[index].overheated();
                    if self.root == Some(index) {
                        return self.read_hot_root(index, automaton, state, text, found, any);
                    }
                    self.halves(index)
                }
                Err(Stop::GaveUp(error)) => return Err(error),
            }
        };
        self.read_halves(index, automaton, halves, state, text, found, any)
    }

    /// The `halves` of node `index` read `text`; or, without halves, the
    /// node on its own.
    #[allow(clippy::too_many_arguments)]
    fn read_halves(
        &self,
        index: usize,
        automaton: &Automaton,
        halves: Option<[(usize, &Automaton); 2]>,
        state: &mut ScanState,
        text: &[u8],
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<(), MatchError> {
        match halves {
            Some(halves) => {
                for (half, automaton) in halves {
                    self.read(half, automaton, state, text, found, any)?;
                }
                Ok(())
            }
            // One pattern, or a half's NFA over the limit: the node reads
            // on its own.
            None => {
                let (cache, skim, search) = state.cache_skim_and_search(index, automaton);
                let required = self.required_at(index, search);
                automaton.matches_unlimited(cache, skim, required, text, found, any)
            }
        }
    }

    /// A hot root's text read by the parted patterns, or by its halves
    /// when they cannot.
    fn read_hot_root(
        &self,
        index: usize,
        automaton: &Automaton,
        state: &mut ScanState,
        text: &[u8],
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<(), MatchError> {
        if self.read_parted(state, text, found, any)? {
            return Ok(());
        }
        let halves = self.halves(index);
        self.read_halves(index, automaton, halves, state, text, found, any)
    }

    /// The parted patterns read `text` for a hot root: `false` when they
    /// cannot (not built, or the text took more than their budget, or did
    /// on a line not long ago), and the root's halves are to read it.
    fn read_parted(
        &self,
        state: &mut ScanState,
        text: &[u8],
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<bool, MatchError> {
        if !self.parts {
            return Ok(false);
        }
        if state.starts_off.skips_line() {
            return Ok(false);
        }
        let Some(parted) = self.parted.get_or_init(|| self.part()) else {
            return Ok(false);
        };
        let cache = state
            .starts
            .get_or_insert_with(|| parted.starts.create_cache());
        match parted
            .starts
            .matches(cache, text, found, any, &mut state.from)
        {
            Ok(()) => {}
            // What it matched is matched; the halves read the whole text.
            Err(starts::Stop::Budget) => {
                // The halves tell no place.
                state.from.fill(usize::MAX);
                state.starts_off.start();
                return Ok(false);
            }
            Err(starts::Stop::GaveUp(error)) => return Err(error),
        }
        if let Some((rest, owners)) = &parted.rest {
            if let Some(hits) = rest.matches(text)? {
                for (_, owner) in hits.iter().zip(owners).filter(|(hit, _)| **hit) {
                    if let Some(slot) = found.get_mut(*owner) {
                        *slot = true;
                        *any = true;
                    }
                    // Its match may start anywhere.
                    if let Some(from) = state.from.get_mut(*owner) {
                        *from = 0;
                    }
                }
            }
        }
        Ok(true)
    }

    /// The branches of the patterns parted by where they can start (see
    /// [`starts::from_starts`]); `None` when none can be read from its
    /// starts, or a DFA could not be built.
    fn part(&self) -> Option<Parted> {
        let (mut few, mut few_owners, mut placeless) = (Vec::new(), Vec::new(), Vec::new());
        let (mut anywhere, mut anywhere_owners) = (Vec::new(), Vec::new());
        for (index, hir) in self.hirs.iter().enumerate() {
            for branch in starts::branches(hir) {
                match starts::from_starts(&branch) {
                    Some((branch, tells_no_place)) => {
                        few.push(branch);
                        few_owners.push(index);
                        placeless.push(tells_no_place);
                    }
                    None => {
                        anywhere.push(branch);
                        anywhere_owners.push(index);
                    }
                }
            }
        }
        if few.is_empty() {
            return None;
        }
        let capacity = halve(self.limit);
        let starts = Starts::new(&few, few_owners, placeless, self.limit, capacity).ok()?;
        let rest = match anywhere.is_empty() {
            true => None,
            false => {
                let relaxed = vec![false; anywhere.len()];
                let rest = Self::from_hirs(anywhere, relaxed, self.limit, CREDIT, false).ok()?;
                Some((Box::new(rest), anywhere_owners))
            }
        };
        Some(Parted { starts, rest })
    }

    /// The patterns as the DFAs read them.
    #[cfg(test)]
    fn read_as(&self) -> Vec<String> {
        self.hirs.iter().map(Hir::to_string).collect()
    }

    /// How many nodes of the tree this thread reads with their halves now.
    #[cfg(test)]
    pub(crate) fn split_nodes(&self) -> usize {
        let state = self.states.get();
        state.heat.iter().filter(|heat| heat.split.left > 0).count()
    }
}

/// The node of the tree for the patterns at `indices` (and the nodes
/// below it), pushed on `nodes` unbuilt: its index there.
fn grow(indices: Vec<usize>, capacity: usize, nodes: &mut Vec<Node>) -> usize {
    let halves = match indices.len() {
        0 | 1 => None,
        len => {
            let (first, second) = indices.split_at(len / 2);
            Some([
                grow(first.to_vec(), halve(capacity), nodes),
                grow(second.to_vec(), halve(capacity), nodes),
            ])
        }
    };
    nodes.push(Node {
        indices,
        capacity,
        automaton: OnceLock::new(),
        halves,
    });
    nodes.len() - 1
}

/// The cache a half may take: a quarter of its node's, at least 2 MB
/// (one pattern alone kept every state of 8,000 lines of random printable
/// text in 950 KB at most).
fn halve(capacity: usize) -> usize {
    (capacity / 4).max(2 << 20)
}

/// About the size of `hir`'s NFA: how heavy a pattern is.
fn weight(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Literal(literal) => literal.0.len(),
        HirKind::Empty | HirKind::Class(_) | HirKind::Look(_) => 1,
        HirKind::Repetition(repetition) => {
            weight(&repetition.sub) * repetition.max.unwrap_or(repetition.min).max(1) as usize
        }
        HirKind::Capture(capture) => weight(&capture.sub),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts.iter().map(weight).sum(),
    }
}

/// A repetition counted this far beyond its least is relaxed.
const FAR_COUNT: u32 = 16;

/// `hir` with every repetition counted [`FAR_COUNT`] or more beyond its
/// least (`{0,60}`, `{1,20}`; not `*` or `+`, which count nothing) given
/// no most; `None` when it has none. What `hir` matches, its relaxed form
/// matches.
fn relax(hir: &Hir) -> Option<Hir> {
    match hir.kind() {
        HirKind::Repetition(repetition) => {
            let far = repetition
                .max
                .is_some_and(|max| max - repetition.min >= FAR_COUNT);
            let sub = relax(&repetition.sub);
            if !far && sub.is_none() {
                return None;
            }
            let mut relaxed = repetition.clone();
            if far {
                relaxed.max = None;
            }
            if let Some(sub) = sub {
                relaxed.sub = Box::new(sub);
            }
            Some(Hir::repetition(relaxed))
        }
        HirKind::Capture(capture) => relax(&capture.sub).map(|sub| {
            let mut relaxed = capture.clone();
            relaxed.sub = Box::new(sub);
            Hir::capture(relaxed)
        }),
        HirKind::Concat(parts) => relax_all(parts).map(Hir::concat),
        HirKind::Alternation(parts) => relax_all(parts).map(Hir::alternation),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => None,
    }
}

/// `parts` with each relaxed, `None` when none needs it.
fn relax_all(parts: &[Hir]) -> Option<Vec<Hir>> {
    let relaxed: Vec<Option<Hir>> = parts.iter().map(relax).collect();
    if relaxed.iter().all(Option::is_none) {
        return None;
    }
    Some(
        relaxed
            .into_iter()
            .zip(parts)
            .map(|(relaxed, part)| relaxed.unwrap_or_else(|| part.clone()))
            .collect(),
    )
}

/// Patterns compiled into one lazy DFA that reports every one that
/// matches.
pub(super) struct Automaton {
    pub(super) dfa: DFA,
    /// The index in the field's patterns of each of its own.
    indices: Vec<usize>,
    /// When every match starts with one of a few literals (`://`): finds
    /// the first, where the reading starts (none: nothing matches).
    prefilter: Option<Prefilter>,
}

impl Automaton {
    /// The DFA of `patterns` (those at `indices` in the field's), its
    /// NFA within `limit` bytes and its cache within `capacity`.
    pub(super) fn new(
        patterns: &[Hir],
        indices: Vec<usize>,
        prefilter: Option<Prefilter>,
        limit: usize,
        capacity: usize,
    ) -> Result<Self, String> {
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .which_captures(WhichCaptures::None)
                    .nfa_size_limit(Some(limit)),
            )
            .build_many_from_hir(patterns)
            .map_err(|e| e.to_string())?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(capacity)
                    .skip_cache_capacity_check(true)
                    // Patterns may put `\b` in `(?u:...)`: the DFA quits on
                    // non-ASCII text there and the caller falls back.
                    .unicode_word_boundary(true),
            )
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            dfa,
            indices,
            prefilter,
        })
    }

    /// Marks in `found` (by index in the field's patterns) those of its
    /// patterns that match `text`, and `any` when one does; stops when
    /// the lazy DFA gave up on this text, or when its cache grew past
    /// `limit` bytes. Its prefilter, if any, is used as `skim` says.
    #[allow(clippy::too_many_arguments)]
    fn matches(
        &self,
        cache: &mut Cache,
        skim: &mut Skim,
        required: Option<(&Prefilter, &mut RequiredSearch)>,
        text: &[u8],
        found: &mut [bool],
        any: &mut bool,
        limit: usize,
    ) -> Result<(), Stop> {
        let from = match &self.prefilter {
            Some(prefilter) => match skim.first_place(prefilter, text) {
                Some(from) => from,
                None => return Ok(()),
            },
            None => 0,
        };
        // A match starts at `from` or after, and holds one of the
        // literals: a long rest without one has none (`%25D0%25BF...`,
        // which CRLF injection's `%25` starts at every escape).
        let mut alone = None;
        if let Some((literals, search)) = required {
            let rest = &text[from..];
            if search.reads_alone(rest.len()) {
                alone = Some((search, std::time::Instant::now()));
            } else if rest.len() >= SEARCHED_FROM && !search.may_hold(literals, rest) {
                return Ok(());
            }
        }
        cache.search_start(0);
        let result = self.scan(cache, text, from, found, any, limit);
        cache.search_finish(text.len());
        if let Some((search, started)) = alone {
            search.timed(started.elapsed().as_nanos(), text.len() - from);
        }
        result
    }

    /// As [`Self::matches`] with no limit on the cache: it never stops hot.
    fn matches_unlimited(
        &self,
        cache: &mut Cache,
        skim: &mut Skim,
        required: Option<(&Prefilter, &mut RequiredSearch)>,
        text: &[u8],
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<(), MatchError> {
        match self.matches(cache, skim, required, text, found, any, usize::MAX) {
            Ok(()) => Ok(()),
            Err(Stop::GaveUp(error)) => Err(error),
            // A cache's size is never past usize::MAX.
            Err(Stop::Hot) => Err(MatchError::gave_up(0)),
        }
    }

    /// The patterns match state `sid` reports, marked in `found`.
    fn record(&self, cache: &Cache, sid: LazyStateID, found: &mut [bool], any: &mut bool) {
        for index in self.matched(cache, sid) {
            if let Some(slot) = found.get_mut(index) {
                *slot = true;
                *any = true;
            }
        }
    }

    /// The index in the field's patterns of each pattern match state
    /// `sid` reports.
    pub(super) fn matched<'a>(
        &'a self,
        cache: &'a Cache,
        sid: LazyStateID,
    ) -> impl Iterator<Item = usize> + 'a {
        self.matched_branches(cache, sid).map(|(_, index)| index)
    }

    /// As [`Self::matched`], each with the pattern's own index in this
    /// DFA.
    pub(super) fn matched_branches<'a>(
        &'a self,
        cache: &'a Cache,
        sid: LazyStateID,
    ) -> impl Iterator<Item = (usize, usize)> + 'a {
        (0..self.dfa.match_len(cache, sid)).filter_map(move |match_index| {
            let own = self.dfa.match_pattern(cache, sid, match_index).as_usize();
            self.indices.get(own).map(|index| (own, *index))
        })
    }

    /// Reads `text` from `from`, where the first match can start.
    fn scan(
        &self,
        cache: &mut Cache,
        text: &[u8],
        from: usize,
        found: &mut [bool],
        any: &mut bool,
        limit: usize,
    ) -> Result<(), Stop> {
        let last = match (text.len() - from) / MIN_LANE {
            0 | 1 => None,
            2 => self.scan_lanes::<2>(cache, text, from, limit, found, any)?,
            _ => self.scan_lanes::<3>(cache, text, from, limit, found, any)?,
        };
        if let Some(last) = last {
            return self.finish(cache, text, last, found, any);
        }
        // One lane: short texts, and any text whose lanes were cut short
        // by a cleared cache.
        let mut lane = Lane {
            base: from,
            at: from,
            end: text.len(),
            limit,
            wait: 0,
            gap: 0,
            sid: self
                .dfa
                .start_state_forward(cache, &Input::new(text).range(from..))?,
        };
        let mut after = [LazyStateID::default(); BLOCK];
        while lane.at < lane.end {
            let clears = cache.clear_count();
            let steps = self.block(cache, text, &mut lane, &mut after, found, any)?;
            if cache.clear_count() == clears {
                lane.skip(&after[..steps], text);
            }
        }
        self.finish(cache, text, lane.sid, found, any)
    }

    /// The text read in `LANES` lanes at once, each from its own start
    /// (the DFA's steps in one lane wait for the step before, so several
    /// lanes keep the core busy); then each lane's start is read again
    /// from the state the lane before it ended in, until that reading
    /// meets a state the lane had at the same place (from there on the
    /// lane was right). The state at the end of the text; `None` when the
    /// cache was cleared on the way (its state ids then say nothing).
    ///
    /// A lane started afresh holds a subset of the threads the true state
    /// there holds (the DFA reports every match, it drops no thread), so
    /// what it matched is matched; what a match across its start adds is
    /// found by the second reading.
    fn scan_lanes<const LANES: usize>(
        &self,
        cache: &mut Cache,
        text: &[u8],
        from: usize,
        limit: usize,
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<Option<LazyStateID>, Stop> {
        let clears = cache.clear_count();
        let stride = (text.len() - from) / LANES / BLOCK * BLOCK;
        let mut lanes = [Lane::default(); LANES];
        for (index, lane) in lanes.iter_mut().enumerate() {
            let at = from + index * stride;
            let end = match index + 1 == LANES {
                true => text.len(),
                false => at + stride,
            };
            let input = Input::new(text).range(at..);
            *lane = Lane {
                base: from,
                at,
                end,
                limit,
                wait: 0,
                gap: 0,
                sid: self.dfa.start_state_forward(cache, &input)?,
            };
        }
        // A cleared cache makes the other lanes' state ids point nowhere:
        // stepping one of them would index past the cache's table.
        if cache.clear_count() != clears {
            return Ok(None);
        }
        // The state of each lane at its start and at each multiple of
        // BLOCK it stepped on before its end (the end is the next lane's).
        let mut marks: Vec<Option<LazyStateID>> = vec![None; (text.len() - from) / BLOCK + 1];
        for lane in &lanes[1..] {
            marks[lane.block()] = Some(lane.sid);
        }
        let mut after = [[LazyStateID::default(); BLOCK]; LANES];
        loop {
            let mut steps = [BLOCK; LANES];
            // Only a lane that looks for a repetition after this block
            // reads the states it went through.
            let together = match lanes.iter().any(|lane| lane.wait == 0) {
                true => self.blocks_together::<LANES, true>(
                    cache, text, &mut lanes, &mut after, found, any,
                )?,
                false => self.blocks_together::<LANES, false>(
                    cache, text, &mut lanes, &mut after, found, any,
                )?,
            };
            if !together {
                let mut left = false;
                for ((lane, after), steps) in lanes.iter_mut().zip(after.iter_mut()).zip(&mut steps)
                {
                    *steps = 0;
                    if lane.at < lane.end {
                        *steps = self.block(cache, text, lane, after, found, any)?;
                        left = true;
                    }
                    if cache.clear_count() != clears {
                        return Ok(None);
                    }
                }
                if !left {
                    break;
                }
            }
            if cache.clear_count() != clears {
                return Ok(None);
            }
            for ((lane, after), steps) in lanes.iter_mut().zip(&after).zip(steps) {
                if lane.aligned() && lane.at < lane.end {
                    if let Some(mark) = marks.get_mut(lane.block()) {
                        *mark = Some(lane.sid);
                    }
                }
                lane.skip(&after[..steps], text);
            }
        }
        // Lane 0 started at the start of the text: it is right throughout.
        let mut sid = lanes[0].sid;
        let mut next = 1;
        while next < LANES {
            let mut walker = Lane {
                base: from,
                at: from + next * stride,
                end: text.len(),
                limit,
                wait: 0,
                gap: 0,
                sid,
            };
            let met = self.join(cache, text, &mut walker, &marks, found, any)?;
            if cache.clear_count() != clears {
                return Ok(None);
            }
            match met {
                // The lane whose part holds the place met is right from
                // there to its end.
                Some(at) => {
                    let index = ((at - from) / stride).min(LANES - 1);
                    sid = lanes[index].sid;
                    next = index + 1;
                }
                None => return Ok(Some(walker.sid)),
            }
        }
        Ok(Some(sid))
    }

    /// One block of every lane, noting the state after each byte in
    /// `after` when `NOTE`; `false` (nothing read) unless every lane is at
    /// the start of a whole block.
    ///
    /// The lanes' states are kept in locals, not in the lanes: a step
    /// waits for the one before in its lane, and a state stored and loaded
    /// again between two steps adds that wait to every step. The loop does
    /// little besides the steps (no bounds checks on the text, no stores
    /// unless noted): on text that never repeats it is most of the time
    /// spent on a line. A byte that meets a tagged state (a transition not
    /// computed yet, a match, a quit) takes [`Self::step`] in every lane;
    /// when that clears the cache, the other lanes' states point nowhere
    /// and the blocks stop there (the caller sees the clear).
    fn blocks_together<const LANES: usize, const NOTE: bool>(
        &self,
        cache: &mut Cache,
        text: &[u8],
        lanes: &mut [Lane; LANES],
        after: &mut [[LazyStateID; BLOCK]; LANES],
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<bool, Stop> {
        let Some(blocks) = whole_blocks(text, lanes) else {
            return Ok(false);
        };
        let starts = lanes.map(|lane| lane.at);
        let mut sids = lanes.map(|lane| lane.sid);
        let mut i = 0;
        while i < BLOCK {
            if sids.iter().all(|sid| !sid.is_tagged()) {
                while i < BLOCK {
                    let next: [LazyStateID; LANES] = std::array::from_fn(|lane| {
                        self.dfa
                            .next_state_untagged(cache, sids[lane], blocks[lane][i])
                    });
                    if next.iter().any(|sid| sid.is_tagged()) {
                        break;
                    }
                    if NOTE {
                        for (after, sid) in after.iter_mut().zip(next) {
                            after[i] = sid;
                        }
                    }
                    sids = next;
                    i += 1;
                }
                if i == BLOCK {
                    break;
                }
            }
            for (lane, ((state, start), after)) in lanes
                .iter_mut()
                .zip(sids.iter_mut().zip(starts).zip(after.iter_mut()))
            {
                lane.sid = *state;
                lane.at = start + i;
                let clears = cache.clear_count();
                self.step(cache, text, lane, found, any)?;
                if cache.clear_count() != clears {
                    return Ok(true);
                }
                *state = lane.sid;
                after[i] = lane.sid;
            }
            i += 1;
        }
        for (lane, (sid, start)) in lanes.iter_mut().zip(sids.into_iter().zip(starts)) {
            lane.sid = sid;
            lane.at = start + BLOCK;
        }
        Ok(true)
    }

    /// Reads from `walker` on until, at a multiple of BLOCK, its state is
    /// the one marked there: that place; `None` when it read to the end.
    fn join(
        &self,
        cache: &mut Cache,
        text: &[u8],
        walker: &mut Lane,
        marks: &[Option<LazyStateID>],
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<Option<usize>, Stop> {
        if marks.get(walker.block()) == Some(&Some(walker.sid)) {
            return Ok(Some(walker.at));
        }
        let mut after = [LazyStateID::default(); BLOCK];
        while walker.at < walker.end {
            let clears = cache.clear_count();
            let steps = self.block(cache, text, walker, &mut after, found, any)?;
            if cache.clear_count() != clears {
                return Ok(None);
            }
            if walker.aligned() && marks.get(walker.block()) == Some(&Some(walker.sid)) {
                return Ok(Some(walker.at));
            }
            walker.skip(&after[..steps], text);
        }
        Ok(None)
    }

    /// Steps `lane` up to the next multiple of BLOCK (or its end), noting
    /// the state after each byte in `after`: the bytes read.
    fn block(
        &self,
        cache: &mut Cache,
        text: &[u8],
        lane: &mut Lane,
        after: &mut [LazyStateID; BLOCK],
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<usize, Stop> {
        let stop = (lane.base + (lane.block() + 1) * BLOCK).min(lane.end);
        let start = lane.at;
        while lane.at < stop {
            self.step(cache, text, lane, found, any)?;
            after[lane.at - 1 - start] = lane.sid;
        }
        Ok(stop - start)
    }

    /// One byte of `lane`.
    #[inline(always)]
    fn step(
        &self,
        cache: &mut Cache,
        text: &[u8],
        lane: &mut Lane,
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<(), Stop> {
        let dfa = &self.dfa;
        let (at, sid) = (lane.at, lane.sid);
        let byte = text[at];
        let known = match sid.is_tagged() {
            true => None,
            false => Some(dfa.next_state_untagged(cache, sid, byte)),
        };
        let next = match known.filter(|n| !n.is_unknown()) {
            Some(next) => next,
            // Leaving a match state, or a transition not computed yet.
            None => {
                cache.search_update(at);
                let next = dfa
                    .next_state(cache, sid, byte)
                    .map_err(|_| MatchError::gave_up(at))?;
                if cache.memory_usage() > lane.limit {
                    return Err(Stop::Hot);
                }
                next
            }
        };
        if next.is_tagged() {
            if next.is_match() {
                self.record(cache, next, found, any);
            } else if next.is_quit() {
                return Err(MatchError::quit(byte, at).into());
            }
        }
        lane.sid = next;
        lane.at = at + 1;
        Ok(())
    }

    /// The end of the text: a match that needs it (`$`, a `\b` after the
    /// last byte) is reported on the step past the last byte.
    fn finish(
        &self,
        cache: &mut Cache,
        text: &[u8],
        sid: LazyStateID,
        found: &mut [bool],
        any: &mut bool,
    ) -> Result<(), Stop> {
        let last = self
            .dfa
            .next_eoi_state(cache, sid)
            .map_err(|_| MatchError::gave_up(text.len()))?;
        if last.is_match() {
            self.record(cache, last, found, any);
        }
        Ok(())
    }
}

/// Where one reading of the DFA is, where it stops and its state; blocks
/// are counted from `base`, where the scan started.
#[derive(Debug, Clone, Copy, Default)]
struct Lane {
    base: usize,
    at: usize,
    end: usize,
    /// The cache's size past which the reading stops ([`Stop::Hot`]).
    limit: usize,
    sid: LazyStateID,
    /// Blocks to read before the next look for a repetition.
    wait: usize,
    /// Blocks between the last two looks (0: the last look found one).
    gap: usize,
}

impl Lane {
    /// Past the repetitions [`skip_repeats`] finds after the block whose
    /// states are `after`. After a look that found none, the next is a few
    /// blocks later, and further each time none is found: on text that
    /// does not repeat, looking after every block took up to 8 % of the
    /// time, and after every fourth block still 6 to 8 %.
    fn skip(&mut self, after: &[LazyStateID], text: &[u8]) {
        if self.wait > 0 {
            self.wait -= 1;
            return;
        }
        let at = skip_repeats(after, &text[..self.end], self.at);
        self.gap = match at == self.at {
            true => (self.gap * 2).clamp(LOOK_EVERY, LOOK_AT_MOST_EVERY),
            false => 0,
        };
        self.wait = self.gap.saturating_sub(1);
        self.at = at;
    }

    /// The block it is in.
    fn block(&self) -> usize {
        (self.at - self.base) / BLOCK
    }

    /// Whether it is at the start of a block.
    fn aligned(&self) -> bool {
        (self.at - self.base).is_multiple_of(BLOCK)
    }
}

/// Each lane's next block, when every lane is at the start of a whole one.
fn whole_blocks<'t, const LANES: usize>(
    text: &'t [u8],
    lanes: &[Lane; LANES],
) -> Option<[&'t [u8; BLOCK]; LANES]> {
    const NONE: &[u8; BLOCK] = &[0; BLOCK];
    let mut blocks = [NONE; LANES];
    for (block, lane) in blocks.iter_mut().zip(lanes) {
        if !lane.aligned() {
            return None;
        }
        *block = text.get(lane.at..lane.end)?.first_chunk()?;
    }
    Some(blocks)
}

/// Where a reading may go on from, `at` being where it is and `after` the
/// states after each of the bytes it read last: past every whole
/// repetition of a unit of `period` bytes that ends those bytes with the
/// DFA in the same state at both its ends.
///
/// The state before `at - period` equals the state before `at`, and from
/// `at - period` on the text repeats that unit; then each further unit
/// takes the DFA from that state through the same states back to it, so it
/// can match nothing the reading did not already match, and ends where it
/// began.
fn skip_repeats(after: &[LazyStateID], text: &[u8], at: usize) -> usize {
    let Some(&now) = after.last() else {
        return at;
    };
    let mut periods = repeat_candidates(after, now, text, at);
    // The shortest first.
    while periods != 0 {
        let period = periods.trailing_zeros() as usize;
        periods &= periods - 1;
        let repeated = common_prefix(&text[at..], &text[at - period..]);
        if repeated >= period {
            return at + repeated / period * period;
        }
    }
    at
}

/// The periods (bit `period`, up to [`MAX_PERIOD`]) after which the
/// state `period` bytes back is `now` and the text from `at` starts as it
/// did `period` bytes before: two bytes of it (one for a period of 1, to
/// which one is a whole unit). Every period of a whole block is looked at
/// without a branch (vectorized): on text that does not repeat, a loop
/// with a branch a period and a compare for each whose first byte agreed
/// took a tenth of the time (varied latin).
fn repeat_candidates(after: &[LazyStateID], now: LazyStateID, text: &[u8], at: usize) -> u64 {
    // Byte `j` of `behind` is `MAX_PERIOD - j` bytes before `at`.
    let whole_block = after
        .len()
        .checked_sub(MAX_PERIOD + 1)
        .map(|from| &after[from..from + MAX_PERIOD])
        .zip(
            at.checked_sub(MAX_PERIOD)
                .and_then(|from| text.get(from..at + 1)),
        )
        .zip(text.get(at..at + 2));
    let Some(((states, behind), &[first, second])) = whole_block else {
        return (1..after.len().min(MAX_PERIOD + 1))
            .filter(|period| {
                after[after.len() - 1 - period] == now && text.get(at) == text.get(at - period)
            })
            .fold(0, |periods, period| periods | 1 << period);
    };
    let mut flags = [0u8; 64];
    for j in 0..MAX_PERIOD {
        flags[j] = u8::from((states[j] == now) & (behind[j] == first) & (behind[j + 1] == second));
    }
    // Bit `j` to bit `MAX_PERIOD - j`, the period.
    let mut periods = flags_to_bits(&flags).reverse_bits();
    // A unit of one byte: its first byte is all of it.
    periods &= !0b10;
    periods |= u64::from((states[MAX_PERIOD - 1] == now) & (behind[MAX_PERIOD - 1] == first)) << 1;
    periods
}

/// Sixty-four bytes of 0 or 1 to sixty-four bits, bit `n` from byte `n`.
fn flags_to_bits(flags: &[u8; 64]) -> u64 {
    let (low, high) = flags.split_at(32);
    let half = |flags: &[u8]| <&[u8; 32]>::try_from(flags).map_or(0, super::normalize::bits_of);
    u64::from(half(low)) | u64::from(half(high)) << 32
}

/// How many bytes `a` and `b` have in common at their start; compared a
/// block at a time.
pub(super) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const CHUNK: usize = 32;
    let len = a.len().min(b.len());
    let mut at = 0;
    while at + CHUNK <= len && a[at..at + CHUNK] == b[at..at + CHUNK] {
        at += CHUNK;
    }
    at + a[at..len]
        .iter()
        .zip(&b[at..len])
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Text that never repeats: `alphabet`'s characters drawn at random
    /// (seeded) to `bytes`, with `payload` put at `at` when it fits.
    pub(crate) fn scrambled(
        alphabet: &[&str],
        bytes: usize,
        seed: u32,
        payload: &str,
        at: usize,
    ) -> Vec<u8> {
        let mut state = seed;
        let mut text = Vec::with_capacity(bytes);
        while text.len() < bytes {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            text.extend_from_slice(alphabet[(state >> 16) as usize % alphabet.len()].as_bytes());
        }
        if let Some(place) = text.get_mut(at..at + payload.len()) {
            place.copy_from_slice(payload.as_bytes());
        }
        text
    }
    use regex::bytes::RegexBuilder;

    /// Which of `patterns` match `text`, each pattern on its own (the
    /// answer the scanner must give).
    fn one_by_one(patterns: &[&str], text: &[u8]) -> Option<Vec<bool>> {
        let found: Vec<bool> = patterns
            .iter()
            .map(|p| {
                RegexBuilder::new(p)
                    .unicode(false)
                    .build()
                    .unwrap_or_else(|e| panic!("{p}: {e}"))
                    .is_match(text)
            })
            .collect();
        found.contains(&true).then_some(found)
    }

    /// The scanner of `patterns` tells of each text what the patterns
    /// it reads (counts relaxed) tell one by one.
    fn check(patterns: &[&str], texts: &[Vec<u8>]) {
        let scanner = Scanner::new(patterns, 1 << 24).unwrap();
        let read_as = scanner.read_as();
        let read_as: Vec<&str> = read_as.iter().map(String::as_str).collect();
        for text in texts {
            assert_eq!(
                scanner.matches(text).unwrap(),
                one_by_one(&read_as, text),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn a_prefilter_slower_than_the_dfa_is_left_off_for_a_while_and_the_answers_stay() {
        // CRLF injection's starts: `%u0027` holds `%u0` on every 6 bytes.
        let pattern = r"(?i)(%(25)*0[ad]|%u000[ad])\s*(set-cookie|location)\s*:";
        let syntax = syntax::Config::new().unicode(false).utf8(false);
        let hir = syntax::parse_with(pattern, &syntax).unwrap();
        let prefilter = Prefilter::from_hirs_prefix(MatchKind::All, std::slice::from_ref(&hir));
        assert!(prefilter.is_some());
        let automaton = Automaton::new(&[hir], vec![0], prefilter, 1 << 20, 1 << 20).unwrap();
        let mut cache = automaton.dfa.create_cache();
        let quotes = "%u0027".repeat(1_300);
        let texts = [
            quotes.clone(),
            format!("{quotes}%u000aLocation: http://x"),
            format!("%0d%0aSet-Cookie:a=b{quotes}"),
            "/a?b=c".to_owned(),
        ];
        let expected = [false, true, true, false];
        let mut skim = Skim::NEW;
        for slow in [false, true, true, false] {
            skim.timed(slow);
            for (text, expected) in texts.iter().zip(expected) {
                let mut found = [false];
                let mut any = false;
                let read = automaton.matches(
                    &mut cache,
                    &mut skim,
                    None,
                    text.as_bytes(),
                    &mut found,
                    &mut any,
                    usize::MAX,
                );
                assert!(read.is_ok());
                assert_eq!((found[0], any), (expected, expected), "{text:.40}");
            }
        }
        // The answers above hold whichever way the clock went; the hold
        // is told by how the prefilter was timed.
        let mut skim = Skim::NEW;
        skim.timed(true);
        assert_eq!((skim.0.left, skim.0.next), (MIN_HOLD, MIN_HOLD * 2));
        let prefilter = automaton.prefilter.as_ref().unwrap();
        assert_eq!(skim.first_place(prefilter, b"/a?b=c"), Some(0));
        assert_eq!(skim.0.left, MIN_HOLD - 1);
        skim.timed(true);
        assert_eq!(skim.0.next, MIN_HOLD * 4);
        skim.timed(false);
        assert_eq!(skim.0.next, MIN_HOLD * 2);
    }

    #[test]
    fn a_long_text_without_a_required_literal_is_not_read_and_one_with_it_is() {
        // CRLF injection and SSRF's userinfo: the header names and `://`.
        let patterns = [
            r"(?i)(%(25)*0[ad]|%u000[ad])\s*(set-cookie|location)\s*(:|%3a)",
            r"://[^/?#@\s]*(%2f|%40)[^/?#\s]*@",
        ];
        let scanner = Scanner::new(&patterns, 1 << 24).unwrap();
        assert!(scanner.required.is_some());
        // Their starts (`%`, `:`) make no prefilter: the DFA would read
        // every text from its start.
        let root = scanner.root.unwrap();
        assert!(scanner.automaton(root).unwrap().prefilter.is_none());
        // The search on, as between probes; or off, after it was slow; or
        // the DFA reading alone, after it was faster than the search.
        let mode = |mode: &str| {
            let mut state = scanner.states.get();
            state.required = RequiredSearch::NEW;
            state.required.probe.left = MAX_HOLD;
            match mode {
                "off" => state.required.skim.timed(true),
                "alone" => state.required.alone.left = MAX_HOLD,
                _ => {}
            }
        };
        let twice = "%25D0%25BF%25D1%2580".repeat(100);
        // The whole text searched, in lower case.
        mode("searched");
        assert_eq!(scanner.matches(twice.as_bytes()).unwrap(), None);
        assert_eq!(
            scanner.states.get().required.lowered,
            twice.to_lowercase().as_bytes()
        );
        let texts: Vec<Vec<u8>> = [
            twice.clone(),
            format!("{twice}%0d%0aSet-Cookie: a=b"),
            format!("{twice}%250D%250ALOCATION%3A x"),
            format!("%0d%0a location :{twice}"),
            format!("http://a%40b@c/{twice}"),
            // Literals that start no match.
            format!("{twice}location: set-cookie: ://@"),
            // Short texts are read without the search.
            "%0aLocation:".to_owned(),
            "/a?b=c".to_owned(),
        ]
        .map(String::into_bytes)
        .to_vec();
        let expected = [
            None,
            Some(vec![true, false]),
            Some(vec![true, false]),
            Some(vec![true, false]),
            Some(vec![false, true]),
            None,
            Some(vec![true, false]),
            None,
        ];
        for (text, expected) in texts.iter().zip(expected) {
            for each in ["searched", "off", "alone"] {
                mode(each);
                assert_eq!(
                    scanner.matches(text).unwrap(),
                    expected,
                    "{:.60}",
                    String::from_utf8_lossy(text)
                );
            }
        }
        check(&patterns, &texts);
    }

    #[test]
    fn the_dfa_reads_alone_while_it_costs_less_than_the_search_and_is_probed_less_often_when_more()
    {
        let mut search = RequiredSearch::NEW;
        // Short texts are never timed.
        assert!(!search.reads_alone(TIMED_PREFILTER - 1));
        // The first long text: a probe, slower than the search (12 us for
        // 8 KB), then searched for the next lines.
        assert!(search.reads_alone(8192));
        search.timed(12_000, 8192);
        for _ in 0..MIN_HOLD {
            assert!(!search.reads_alone(8192));
        }
        // The next probe, slower again: twice as many lines searched.
        assert!(search.reads_alone(8192));
        search.timed(12_000, 8192);
        assert_eq!(search.probe.left, 2 * MIN_HOLD);
        for _ in 0..2 * MIN_HOLD {
            assert!(!search.reads_alone(8192));
        }
        // A probe faster than the search: the DFA reads alone, timed each
        // time, as long as it stays faster.
        assert!(search.reads_alone(8192));
        search.timed(200, 8192);
        for _ in 0..3 * MIN_HOLD {
            assert!(search.reads_alone(8192));
            search.timed(200, 8192);
        }
        // A text it reads slower: searched again from the next line.
        assert!(search.reads_alone(8192));
        search.timed(12_000, 8192);
        assert!(!search.reads_alone(8192));
        // Against a search measured cheaper than that DFA: searched again.
        search.search_cost = 10;
        search.alone.left = 1;
        assert!(search.reads_alone(8192));
        search.timed(200, 8192);
        assert_eq!(search.alone.left, 0);
    }

    #[test]
    fn the_required_literals_are_searched_for_from_where_the_prefilter_finds_a_start() {
        // A prefilter for `x=`; `location` is the literal searched for.
        let scanner = Scanner::new(&[r"x=\d+location"], 1 << 24).unwrap();
        let root = scanner.root.unwrap();
        assert!(scanner.automaton(root).unwrap().prefilter.is_some());
        let searched = |text: &str| {
            // Each line from fresh timings: a prefilter or search found slow
            // (a debug build's are) is off for the next lines.
            let mut state = scanner.states.get();
            state.heat[root].skim = Skim::NEW;
            state.required = RequiredSearch::NEW;
            state.required.probe.left = MAX_HOLD;
            drop(state);
            let matched = scanner.matches(text.as_bytes()).unwrap();
            let state = scanner.states.get();
            (
                matched,
                String::from_utf8(state.required.lowered.clone()).unwrap(),
            )
        };
        // No start: no search (a text of words costs the prefilter alone).
        let words = "select ".repeat(100);
        assert_eq!(searched(&words), (None, String::new()));
        // The rest from the first start, searched.
        let pairs = "x=1&".repeat(100);
        let text = format!("{words}{pairs}");
        assert_eq!(searched(&text), (None, pairs.clone()));
        let found = format!("{text}x=12Location x=1location");
        assert_eq!(searched(&found).0, Some(vec![true]));
        // A rest too short to be worth a search is read by the DFA.
        assert_eq!(searched(&format!("{words}x=1")), (None, String::new()));
    }

    #[test]
    fn reports_every_pattern_that_matches() {
        let patterns = [
            r"\bunion\s+select\b",
            r"\.\./",
            r"'\s*--",
            r"^/admin",
            r"x$",
        ];
        let texts: Vec<Vec<u8>> = [
            "/a?q=1 union select 2",
            "/../../etc/passwd",
            "/admin?q=' -- union select 1 ../x",
            "/b?q=unionselect",
            "",
            "x",
            "/admin/",
        ]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
        check(&patterns, &texts);
    }

    #[test]
    fn repeated_text_is_skipped_without_changing_what_matches() {
        // Patterns that count (`{0,15}`, read as counted), need the end of
        // the text, or need what follows a long repetition.
        let patterns = [
            r"\$\{[^}]{0,15}jndi:",
            r"(\.\./){3}etc",
            r"'{3}\s*or\b",
            r"^(a=1&){2,}$",
            r"aaaa\b",
            r"<[a-z]+[^>]{0,15}\sonload=",
        ];
        let mut texts = Vec::new();
        for unit in ["../", "'", "a=1&", "a", "${", "hello world ", "<b ", "x"] {
            for count in [1, 2, 3, 63, 64, 65, 100, 1000, 2731] {
                let body = unit.repeat(count);
                for (before, after) in [
                    ("", ""),
                    ("/", ""),
                    ("", "etc"),
                    ("", " or 1"),
                    ("${", "jndi:"),
                    ("<img", " onload="),
                    ("q=", "b"),
                ] {
                    texts.push(format!("{before}{body}{after}").into_bytes());
                }
            }
        }
        check(&patterns, &texts);
    }

    #[test]
    fn a_repetition_after_text_that_does_not_repeat_changes_nothing_matched() {
        // The looks for a repetition grow apart over the scrambled text;
        // what repeats after it, and what ends it, still count.
        let patterns = [r"(\.\./){3}etc", r"'{3}\s*or\b", r"x(ab){40}y", r"aaaa\b"];
        let mut seed = 7u32;
        let scrambled: String = (0..6_000)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b"abcdefghijklmnopqrstuvwxyz "[(seed >> 16) as usize % 27])
            })
            .collect();
        let mut texts = Vec::new();
        for prefix in [100, 1_000, 1_500, 3_000, 6_000] {
            for (unit, start, end) in [
                ("../", "", "etc"),
                ("'", "", " or 1"),
                ("a", "", ""),
                ("ab", "x", "y"),
            ] {
                for count in [1, 5, 39, 40, 41, 64, 700] {
                    let body = format!("{start}{}", unit.repeat(count));
                    let text = format!("{}{body}{end}", &scrambled[..prefix]);
                    texts.push(text.clone().into_bytes());
                    texts.push(format!("{text}{}", &scrambled[..prefix]).into_bytes());
                }
            }
        }
        check(&patterns, &texts);
    }

    #[test]
    fn a_repetition_broken_near_its_end_is_read() {
        let patterns = [r"ab{5}c", r"zz"];
        let mut text = "ab".repeat(500).into_bytes();
        text.extend_from_slice(b"bbbbc");
        check(&patterns, &[text.clone()]);
        text.extend_from_slice(&b"zy".repeat(300));
        text.push(b'z');
        text.push(b'z');
        check(&patterns, &[text]);
    }

    #[test]
    fn matches_across_the_start_of_a_lane_are_found() {
        // Texts long enough for lanes; payloads put across the places where
        // the lanes after the first start, with and without a thread open
        // from the first byte (with one, the second reading of a lane's
        // start never meets the lane and reads on to the end).
        let patterns = [
            r"\bunion\s+select\b",
            r"\$\{[^}]*jndi:",
            r"^[a-z ]+$",
            r"(\.\./){3}",
            r"\bz{2}\b",
        ];
        let mut texts = Vec::new();
        for (len, lanes) in [
            (2 * MIN_LANE, 2),
            (3 * MIN_LANE - 1, 2),
            (3 * MIN_LANE, 3),
            (5000, 3),
            (8000, 3),
        ] {
            let stride = len / lanes / BLOCK * BLOCK;
            let starts = (1..lanes).map(|lane| lane * stride);
            for (start, shift) in
                starts.flat_map(|s| [0, 1, 5, 11, 12, 64, 65, 200].map(|h| (s, h)))
            {
                for payload in ["union select", "../../../", " zz ", "jndi:"] {
                    let at = start.saturating_sub(shift);
                    let mut text = "ab cd ".repeat(len / 6).into_bytes();
                    text.truncate(len);
                    let end = (at + payload.len()).min(text.len());
                    text[at..end].copy_from_slice(&payload.as_bytes()[..end - at]);
                    texts.push(text.clone());
                    // No thread open from the start: the readings meet.
                    let mut closed = text.clone();
                    closed[2] = b'-';
                    texts.push(closed);
                    text[0] = b'$';
                    text[1] = b'{';
                    texts.push(text);
                }
            }
            let mut scrambled = Vec::with_capacity(len);
            let mut seed = 7u32;
            while scrambled.len() < len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                scrambled.push(b"abcdefghijklmnopqrstuvwxyz ./${}"[(seed >> 16) as usize % 32]);
            }
            texts.push(scrambled);
        }
        check(&patterns, &texts);
    }

    #[test]
    fn patterns_that_count_far_are_read_with_their_counts_relaxed() {
        // Log4Shell's lookup (repetitions counted far), and patterns that
        // count near or nothing.
        let patterns = [
            r"\$\{\s*(jndi|(\$\{[^}]*\}|[^}]){0,60}(j|\$\{[^}]*j[^}]*\})\S{0,40}n\S{0,40}d\S{0,40}i\S{0,10}:)",
            r"\bunion\s+select\b",
            r"[?&]cmd=\s*(id|ls)\b",
            r"(\.\./){2}",
            r"'\s*(or|and)\s+\d",
        ];
        let scanner = Scanner::new(&patterns, 1 << 24).unwrap();
        let relaxed: Vec<bool> = (0..patterns.len()).map(|i| scanner.relaxed(i)).collect();
        assert_eq!(relaxed, [true, false, false, false, false]);
        let read_as = scanner.read_as();
        assert!(!read_as[0].contains("{0,60}") && !read_as[0].contains("{0,40}"));
        assert!(
            read_as[0].contains("{0,10}"),
            "near counts kept: {}",
            read_as[0]
        );
        let punctuation: Vec<&str> = "'()<>;|&${}[]*/.=-#"
            .split("")
            .filter(|c| !c.is_empty())
            .collect();
        let mut texts: Vec<Vec<u8>> = [
            "/a?x=${jndi:ldap://e/a}",
            "/a?x=${${lower:j}ndi:ldap://e/a}",
            "/a?q=1 union select 2&cmd=id",
            "/a?q=../../etc&x=' or 1",
            "${}${}${",
            "?cmd=ls",
            // Beyond the counts: the relaxed pattern matches.
            "/a?x=${..............................................................jndi:x}",
        ]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
        for seed in 0..40 {
            let payload =
                ["${jndi:x}", "?cmd=id", "../../", "' or 1", "union select"][seed as usize % 5];
            texts.push(scrambled(
                &punctuation,
                2_000,
                seed,
                payload,
                700 + seed as usize * 31,
            ));
        }
        check(&patterns, &texts);
    }

    #[test]
    fn a_dfa_that_builds_too_many_states_is_read_by_its_halves_with_the_same_answers() {
        // No credit: each node of the tree is hot on its first new states,
        // in the middle of a text, and its halves read it all again.
        let patterns = [
            r"\bunion\s+select\b",
            r"(\.\./){3}",
            r"'\s*(or|and)\s+\d",
            r"<script\b[^>]*>",
            r"[;|`]\s*(id|ls|cat)\b",
            r"\bz{2}\b",
        ];
        let scanner = Scanner::with_credit(&patterns, 1 << 24, 0).unwrap();
        let alphabet: Vec<&str> = "abcdeilnorstuz '()<>;|`./=0123456789"
            .split("")
            .filter(|c| !c.is_empty())
            .collect();
        let payloads = [
            "union select",
            "../../../",
            "' or 1",
            "<script src=x>",
            "; id",
            " zz ",
        ];
        for seed in 0..60u32 {
            let index = seed as usize;
            let len = [100, 1_100, 3_000, 8_000][index % 4];
            let payload = payloads[index % payloads.len()];
            let text = scrambled(&alphabet, len, seed, payload, index * 97 % len);
            assert_eq!(
                scanner.matches(&text).unwrap(),
                one_by_one(&patterns, &text),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
        assert!(scanner.split_nodes() > 0, "{scanner:?}");
    }

    #[test]
    fn a_hot_node_is_left_longer_each_time_it_is_hot_and_less_after_calm_lines() {
        let mut heat = Heat::new(0);
        assert!(!heat.split(100));
        heat.overheated();
        for _ in 0..MIN_HOLD {
            assert!(heat.split(100));
        }
        assert!(!heat.split(6_400), "tried again after its hold");
        assert_eq!(heat.credit, RETRY_CREDIT + 100 + REFILL_LINE);
        heat.overheated();
        for _ in 0..2 * MIN_HOLD {
            assert!(heat.split(100));
        }
        assert!(!heat.split(100));
        // The hold is 4 * MIN_HOLD now; as many calm lines halve it.
        for _ in 0..4 * MIN_HOLD {
            heat.read(0);
        }
        heat.overheated();
        for _ in 0..2 * MIN_HOLD {
            assert!(heat.split(100));
        }
        assert!(!heat.split(100));
        heat.read(RETRY_CREDIT * 2);
        assert_eq!(heat.credit, 0, "credit spent, not wrapped");
    }

    /// Patterns of every kind the parted reading must get right: branches
    /// read from their starts, one that can start anywhere, one whose
    /// readings run long, anchors and boundaries, a one-byte match.
    const PARTED: [&str; 9] = [
        r"(?i)\bunion\s+select\b|(;|\|)\s*(id|ls)\b",
        r"\b\w+\.(bat|cmd)\s*[&|;]",
        r"<[a-z]+[^>]*\sstyle=",
        r"^/admin|\.php$",
        r"\A'|'\z",
        r"(?m)^x;",
        r"[<>]{3}",
        r"'\s*(or|and)\s+\d",
        r"\$\{[^}]{0,40}jndi",
    ];

    #[test]
    fn parted_patterns_tell_what_the_patterns_tell_one_by_one() {
        // No credit: the root is hot from the first line and the parted
        // patterns read.
        let scanner = Scanner::with_credit(&PARTED, 1 << 24, 0).unwrap();
        let read_as = scanner.read_as();
        let read_as: Vec<&str> = read_as.iter().map(String::as_str).collect();
        let alphabet: Vec<&str> = "abcdijlnorstuxz0123456789 '()<>;|&$`{}[]*/.=-#+\n"
            .split("")
            .filter(|c| !c.is_empty())
            .collect();
        let payloads = [
            "union select",
            "; id",
            "run.bat &",
            "<img a style=",
            "/admin",
            "x.php",
            "'",
            "\nx;",
            "<<<",
            "' or 1",
            "${aaaaaaaaaaaaaaaaaaaaaaaaaaaaaajndi",
        ];
        let mut texts: Vec<Vec<u8>> = ["", "'", "x", "<>", "/admin", "a.php", "'x'", "x;"]
            .iter()
            .map(|t| t.as_bytes().to_vec())
            .collect();
        for seed in 0..120u32 {
            let index = seed as usize;
            let len: usize = [3, 40, 700, 3_000][index % 4];
            let payload = payloads[index % payloads.len()];
            let at = [0, len.saturating_sub(payload.len()), index * 37 % len][index % 3];
            texts.push(scrambled(&alphabet, len, seed, payload, at));
        }
        for text in &texts {
            assert_eq!(
                scanner.matches(text).unwrap(),
                one_by_one(&read_as, text),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        assert!(matches!(scanner.parted.get(), Some(Some(_))), "{scanner:?}");
    }

    #[test]
    fn a_text_over_the_parted_patterns_budget_is_read_by_the_halves() {
        // Every place of a run of letters may start `[a-z][a-z.]*@`, and
        // each reading from one goes on to the run's end.
        let patterns = [r"[a-z][a-z.]*@", r"(?i)\bunion\s+select\b"];
        let scanner = Scanner::with_credit(&patterns, 1 << 24, 0).unwrap();
        let read_as = scanner.read_as();
        let read_as: Vec<&str> = read_as.iter().map(String::as_str).collect();
        let letters = "a".repeat(3_000);
        let texts = [
            format!("{letters}@"),
            format!("{letters} union select"),
            letters.clone(),
            format!("x@ {letters}"),
        ];
        for text in &texts {
            assert_eq!(
                scanner.matches(text.as_bytes()).unwrap(),
                one_by_one(&read_as, text.as_bytes()),
                "{text}"
            );
        }
        let state = scanner.states.get();
        assert!(state.starts_off.left > 0 && state.starts_off.next > MIN_HOLD);
    }

    #[test]
    fn branches_that_start_anywhere_or_run_long_are_not_read_from_their_starts() {
        let parse = |pattern: &str| {
            let syntax = syntax::Config::new().unicode(false).utf8(false);
            syntax::parse_with(pattern, &syntax).unwrap()
        };
        assert!(starts::starts_anywhere(&parse(r"\b\w+\.bat")));
        assert!(starts::starts_anywhere(&parse(r"x*")));
        assert!(!starts::starts_anywhere(&parse(r"(?i)select")));
        assert!(!starts::starts_anywhere(&parse(r"[;|]\s*(id|ls)")));
        assert!(starts::runs_long(&parse(r"<[a-z]+[^>]*\sstyle")));
        assert!(starts::runs_long(&parse(r"\$\{\S*jndi")));
        assert!(!starts::runs_long(&parse(r"\bcopy\s+\S*x")));
        assert!(!starts::runs_long(&parse(r"=[-.\w]*'")));
        let branches = starts::branches(&parse(r"a|(bb|cc)d|(ee|ff)"));
        assert_eq!(branches.len(), 4, "{branches:?}");
    }

    #[test]
    fn repetitions_are_found_the_same_with_every_period_at_once_as_one_by_one() {
        // Two states of a real DFA, as `after` holds them.
        let dfa = DFA::new("ab").unwrap();
        let mut cache = dfa.create_cache();
        let start = dfa
            .start_state_forward(&mut cache, &Input::new("ab"))
            .unwrap();
        let next = dfa.next_state(&mut cache, start, b'a').unwrap();
        assert_ne!(start, next);
        // As skip_repeats looked before: each period on its own, its
        // first byte first.
        let one_by_one = |after: &[LazyStateID], text: &[u8], at: usize| {
            let now = after[after.len() - 1];
            for period in 1..after.len().min(MAX_PERIOD + 1) {
                if after[after.len() - 1 - period] != now || text.get(at) != text.get(at - period) {
                    continue;
                }
                let repeated = common_prefix(&text[at..], &text[at - period..]);
                if repeated >= period {
                    return at + repeated / period * period;
                }
            }
            at
        };
        let mut skipped = 0;
        for seed in 0..4_000u32 {
            let alphabet: &[&str] = match seed % 3 {
                0 => &["a", "b"],
                1 => &["a", "b", "c", "d", "e"],
                _ => &["ab", "abc", "x", "abcabd"],
            };
            let unit = scrambled(alphabet, 1 + seed as usize % 70, seed, "", 0);
            let mut text = unit.repeat(3 + 200 / unit.len());
            let at = BLOCK + seed as usize % 100;
            text.truncate(at + seed as usize % 150);
            text.extend(scrambled(alphabet, 20, seed + 1, "", 0));
            let states = scrambled(&["0", "1", "1", "1"], BLOCK, seed + 2, "", 0);
            let mut after: Vec<LazyStateID> = states
                .iter()
                .map(|b| if *b == b'0' { start } else { next })
                .collect();
            // Short blocks too (a lane's last).
            after.truncate(BLOCK - seed as usize % 3 * 20);
            let expected = one_by_one(&after, &text, at);
            assert_eq!(skip_repeats(&after, &text, at), expected, "{seed}");
            skipped += usize::from(expected > at);
        }
        assert!(skipped > 1_000, "{skipped}");
    }

    #[test]
    fn a_repeated_phrase_longer_than_32_bytes_is_skipped() {
        // As long as two Devanagari words and a space in UTF-8; its bytes
        // all different, so that no shorter unit repeats.
        let phrase = "abcdefghijklmnopqrstuvwxyz0123456789AB";
        assert_eq!(phrase.len(), 38);
        let text = phrase.repeat(20);
        // The DFA in the same state after each byte of the last block.
        let after = [LazyStateID::default(); BLOCK];
        let at = 2 * BLOCK;
        let skipped_to = skip_repeats(&after, text.as_bytes(), at);
        assert_eq!((skipped_to - at) % 38, 0);
        assert!(
            skipped_to + 38 > text.len(),
            "{skipped_to} of {}",
            text.len()
        );
    }

    #[test]
    fn common_prefix_counts_equal_leading_bytes() {
        assert_eq!(common_prefix(b"abc", b"abd"), 2);
        assert_eq!(common_prefix(&[7; 100], &[7; 70]), 70);
        let mut b = vec![7; 100];
        b[40] = 0;
        assert_eq!(common_prefix(&[7; 100], &b), 40);
        assert_eq!(common_prefix(b"", b"a"), 0);
    }
}
