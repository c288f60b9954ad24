//! What attackers do to slip past a pattern, undone before matching:
//! repeated percent-encoding, `+` for space, `%uXXXX`, HTML entities, case,
//! SQL comments, runs of whitespace.
//!
//! The cost per byte does not depend on the text: runs of bytes that need
//! no change are found with `memchr` and copied whole, case is folded for
//! ASCII only (non-ASCII text is kept as it is), and each pass writes into
//! one buffer sized once.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// How many times percent-escapes and entities are undone at most
/// (`%252527` needs three).
const DECODE_PASSES: usize = 3;

/// Decodes percent-escapes (and `%uXXXX`) and HTML entities up to three
/// times over, `+` to space, lowercases ASCII, blanks SQL comments and
/// collapses whitespace (and NUL) into one space.
pub fn normalize(input: &str) -> String {
    let mut out = Vec::new();
    Normalizer::default()
        .normalize_into(input, &mut out)
        .to_owned()
}

/// [`normalize`] with its working buffer kept from one text to the next:
/// a line's texts are normalized without allocating once the buffers have
/// grown to the longest.
#[derive(Debug, Default)]
pub struct Normalizer {
    scratch: Vec<u8>,
}

impl Normalizer {
    /// Gives back a working buffer grown beyond `bytes` by a long text.
    pub fn release_long(&mut self, bytes: usize) {
        if self.scratch.capacity() > bytes {
            self.scratch = Vec::new();
        }
    }

    /// `input` normalized into `out` (its bytes replaced, its buffer
    /// kept), as text: decoded escapes that are not UTF-8 are replaced.
    /// The text is checked with SIMD: std's check goes a byte at a time
    /// past ASCII (5 us for 8 KB of Cyrillic).
    pub fn normalize_into<'o>(&mut self, input: &str, out: &'o mut Vec<u8>) -> &'o str {
        let mut text = std::mem::take(out);
        text.clear();
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut decoded = false;
        if memchr::memchr3(b'%', b'&', b'\\', input.as_bytes()).is_none() {
            // Nothing to decode (most texts): copied with its pluses made
            // spaces and its ASCII lowered in one pass, not three.
            text.extend(input.bytes().map(plain_byte_folded));
        } else {
            text.extend(input.bytes().map(space_for_plus));
            // Written by the pass that first decodes.
            for _ in 0..DECODE_PASSES {
                let outcome = decode_once(&text, &mut scratch);
                if outcome.changed {
                    decoded = true;
                    std::mem::swap(&mut text, &mut scratch);
                    // A `%2B` is a space too: tools encode the `+` they put
                    // for spaces (sqlmap's space2plus), and no rule needs a
                    // plus.
                    plus_to_space(&mut text);
                }
                if !outcome.may_hold_more {
                    break;
                }
            }
            text.make_ascii_lowercase();
        }
        if needs_collapsing(&text) {
            scratch.clear();
            strip_comments_and_collapse(&text, &mut scratch);
            std::mem::swap(&mut text, &mut scratch);
        }
        self.scratch = scratch;
        // Decoded escapes may be any bytes. The rest (a plus made a space,
        // ASCII lower case, blanks folded and comments cut, each at ASCII
        // bytes) keeps the input's UTF-8 whole: such a text is checked
        // once, not twice (4 KB of Cyrillic: 270k lines/s, 294k checked
        // once).
        if decoded && simdutf8::basic::from_utf8(&text).is_err() {
            text = String::from_utf8_lossy(&text).into_owned().into_bytes();
        }
        *out = text;
        // Valid now: an empty text only if the replacement were not.
        simdutf8::basic::from_utf8(out).unwrap_or_default()
    }
}

/// A byte of a text without escapes as normalized before its blanks and
/// comments are folded: a plus a space, ASCII lower case. Branch-free, so
/// that a copy through it is vectorized.
#[inline]
fn plain_byte_folded(b: u8) -> u8 {
    space_for_plus(b).to_ascii_lowercase()
}

/// Branch-free, so that the compiler vectorizes it into a compare and a
/// blend (a conditional store per byte is not).
#[inline]
fn space_for_plus(b: u8) -> u8 {
    if b == b'+' {
        b' '
    } else {
        b
    }
}

fn plus_to_space(text: &mut [u8]) {
    for b in text.iter_mut() {
        *b = space_for_plus(*b);
    }
}

#[derive(Default)]
pub(super) struct Pass {
    pub(super) changed: bool,
    /// An escape decoded into a byte that may start or complete another
    /// (`%252e` -> `%2e`): another pass is worth it.
    pub(super) may_hold_more: bool,
}

fn hex(b: u8) -> Option<u8> {
    is_hex_digit(b).then_some(hex_digit_value(b))
}

#[inline]
fn push_char(out: &mut Vec<u8>, code: u32) {
    // Most decoded characters are ASCII (`&#39;`, `%u0027`): one byte.
    if code < 0x80 {
        out.push(code as u8);
        return;
    }
    let c = char::from_u32(code).unwrap_or('\u{fffd}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// One pass of percent and entity decoding from `src` into `dst` (left
/// as it was when nothing changed). Runs of bytes without an escape are
/// copied whole.
fn decode_once(src: &[u8], dst: &mut Vec<u8>) -> Pass {
    if memchr::memchr3(b'%', b'&', b'\\', src).is_none() {
        return Pass::default();
    }
    let entities = may_hold_entities(src);
    let mut finder = EscapeFinder::new(src, entities);
    decode_once_with(src, dst, entities, |from| finder.next(from), escapes_after)
}

/// An entity ends in `;` or starts `&#`: a query of `a=1&b=2` holds
/// neither, and its separators are then copied with the text around them.
/// Most texts hold neither byte: one search for both tells them (a search
/// for `&#` alone cost three times a search for a byte).
fn may_hold_entities(text: &[u8]) -> bool {
    match memchr::memchr2(b';', b'&', text) {
        None => false,
        Some(at) => {
            let rest = &text[at..];
            memchr::memchr(b';', rest).is_some() || ENTITY_NUMBER.find(rest).is_some()
        }
    }
}

/// [`decode_once`] with the finder of escapes given (where the next escape
/// may start from an offset on) and the decoder of the escapes right after
/// one: those used, or in tests the byte-by-byte finder and none, what
/// they must agree with.
fn decode_once_with(
    src: &[u8],
    dst: &mut Vec<u8>,
    entities: bool,
    mut find_escape: impl FnMut(usize) -> usize,
    mut escapes_after: impl FnMut(&[u8], &mut Vec<u8>, bool, &mut Pass) -> usize,
) -> Pass {
    let mut pass = Pass::default();
    dst.clear();
    dst.reserve(src.len());
    // `src[..copied]` is in `dst`: text is copied when an escape is
    // decoded, not at each byte that might have started one (`&#x&#x...`).
    let mut copied = 0;
    let mut decoded = Vec::with_capacity(MAX_ENTITY);
    let mut i = 0;
    while i < src.len() {
        i = find_escape(i);
        let Some(&b) = src.get(i) else {
            break;
        };
        if b == b'%' {
            if copied < i {
                dst.extend_from_slice(&src[copied..i]);
            }
            copied = i;
            let run = plain_escapes(&src[i..], dst, &mut pass);
            if run > 0 {
                i += run;
                i += escapes_after(&src[i..], dst, entities, &mut pass);
                copied = i;
                continue;
            }
        }
        decoded.clear();
        let consumed = match b {
            b'%' => percent_escape(&src[i..], &mut decoded),
            b'&' if entities => entity(&src[i..], &mut decoded),
            b'\\' => hex_escape(&src[i..], &mut decoded),
            _ => 0,
        };
        if consumed == 0 {
            // A run of `%` (`%%%%`, `%25%25` decoded once): each but the last
            // three is before `%%`, which starts no escape, and is dropped
            // below; all of them at once, not one pass of the loop each.
            if b == b'%' {
                let run = src[i..].iter().take_while(|c| **c == b'%').count();
                if run > 3 {
                    dst.extend_from_slice(&src[copied..i]);
                    i += run - 3;
                    copied = i;
                    pass.changed = true;
                    continue;
                }
            }
            // A `%` before a letter or digit that makes no escape (`%S%E%L%E%C%T`):
            // ASP and IIS drop it, so attackers use it to break words.
            // Not so before an escape of a hex digit: `%%32%65` is a `%2e`
            // in two layers (IIS decoded twice), not a `%` to drop.
            let dropped = b == b'%'
                && src.get(i + 1).is_some_and(|next| {
                    next.is_ascii_alphanumeric()
                        || (*next == b'%'
                            && !escaped_byte(&src[i + 1..]).is_some_and(|d| d.is_ascii_hexdigit()))
                });
            if dropped {
                dst.extend_from_slice(&src[copied..i]);
                copied = i + 1;
                pass.changed = true;
            }
            i += 1;
            continue;
        }
        // A byte or a character: pushed, not copied by a call each (a
        // fifth of the time of `&#39;&#39;...` went to such calls).
        if copied < i {
            dst.extend_from_slice(&src[copied..i]);
        }
        for &byte in &decoded {
            dst.push(byte);
        }
        pass.changed = true;
        pass.may_hold_more |= decoded.iter().any(|d| may_hold_more(*d));
        i += consumed;
        i += escapes_after(&src[i..], dst, entities, &mut pass);
        copied = i;
    }
    dst.extend_from_slice(&src[copied..]);
    pass
}

/// The escapes one right after another at the start of `text` (`&#39;&#39;`,
/// `%u0027%u0027`, `\x22\x22`), decoded into `dst` as the loop of
/// [`decode_once_with`] decodes them, each by its own decoder, but without a
/// search, a dispatch and a copy each (8 KB of `%u0027` ran at 12k lines/s),
/// then the text after them while plain escapes are sparse in it
/// ([`sparse_escapes`]): the bytes consumed.
fn escapes_after(text: &[u8], dst: &mut Vec<u8>, entities: bool, pass: &mut Pass) -> usize {
    let at = escapes_in_a_row(text, dst, entities, pass);
    at + sparse_escapes(&text[at..], dst, entities, pass)
}

/// The first part of [`escapes_after`]: the escapes in a row, up to the
/// first byte that starts none.
fn escapes_in_a_row(text: &[u8], dst: &mut Vec<u8>, entities: bool, pass: &mut Pass) -> usize {
    let start = dst.len();
    let mut at = 0;
    loop {
        let rest = &text[at..];
        // Runs of the short escapes of ASCII (`&#39;`, `%u0027`) a few at
        // a time: their bytes compared at once, their values without a
        // branch.
        if let Some(w) = rest.get(..16).and_then(|w| <&[u8; 16]>::try_from(w).ok()) {
            let decimal = |tens: u8, ones: u8| (tens - b'0') * 10 + (ones - b'0');
            let iis = |high: u8, low: u8| (high - b'0') << 4 | hex_digit_value(low);
            if w[0] == b'&' && entities && three_decimal_entities(w) {
                dst.extend_from_slice(&[
                    decimal(w[2], w[3]),
                    decimal(w[7], w[8]),
                    decimal(w[12], w[13]),
                ]);
                at += 15;
                continue;
            }
            if w[0] == b'%' && two_iis_escapes(w) {
                dst.extend_from_slice(&[iis(w[4], w[5]), iis(w[10], w[11])]);
                at += 12;
                continue;
            }
        }
        // Each decoder writes only what it decodes.
        let consumed = match rest.first() {
            // `%u0027`; other escapes go back to the loop, which decodes
            // runs of them in groups.
            Some(b'%') if matches!(rest.get(1), Some(b'u' | b'U')) => match iis_ascii(rest) {
                Some(byte) => {
                    dst.push(byte);
                    6
                }
                None => percent_escape(rest, dst),
            },
            Some(b'&') if entities => match entity_ascii(rest) {
                Some((byte, consumed)) => {
                    dst.push(byte);
                    consumed
                }
                None => entity(rest, dst),
            },
            Some(b'\\') => hex_escape(rest, dst),
            _ => 0,
        };
        if consumed == 0 {
            break;
        }
        at += consumed;
    }
    if at > 0 {
        pass.changed = true;
        // All bytes looked at, without a branch each: vectorized. An
        // `any` stopped at the first, but took a branch a byte (a third of
        // the time of 8 KB of `%u0027`).
        let decoded = &dst[start..];
        let more = decoded
            .iter()
            .fold(0, |more, d| more | u8::from(may_hold_more(*d)));
        pass.may_hold_more |= more != 0;
    }
    at
}

/// Searchers built once: one built at each search cost more than the search
/// on a short text. `&#` starts a numeric entity.
static ENTITY_NUMBER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"&#"));
static COMMENT_CLOSER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"*/"));

/// Positions looked at together by [`EscapeFinder`], without a branch each.
pub(super) const SCAN_CHUNK: usize = 32;
/// The bytes after a position that tell whether an escape starts there.
const ESCAPE_LOOKAHEAD: usize = 3;
const SCAN_WINDOW: usize = SCAN_CHUNK + ESCAPE_LOOKAHEAD;

/// Finds where escapes may start in one text: a `memchr` to the next `%`,
/// `&` or `\\`, then from there the positions of a chunk at once
/// ([`chunk_escapes`]), kept for the next calls. Text dense with bytes
/// that start no escape (`&#x&#x...`) or with escapes (`%%%`) thus costs
/// about the same per byte as text without.
struct EscapeFinder<'a> {
    text: &'a [u8],
    entities: bool,
    /// Where the chunk last looked at starts, and where escapes may start
    /// in it (bit `n`: at `chunk_at + n`).
    chunk_at: usize,
    starts: u32,
    /// The first `;` at or after where one was last looked for
    /// (`usize::MAX`: none; `None`: not looked for yet).
    semicolon: Option<usize>,
    /// The first `&#` at or after where one was last looked for, as
    /// `semicolon`.
    number: Option<usize>,
    /// Whether the last search stopped within [`NEAR`] bytes.
    dense: bool,
    /// No `&` before this (at most the text's length) starts an entity:
    /// the search there is for `%` and `\\` alone (see
    /// [`Self::entities_from`]).
    no_entity_before: usize,
}

impl<'a> EscapeFinder<'a> {
    fn new(text: &'a [u8], entities: bool) -> Self {
        Self {
            text,
            entities,
            chunk_at: usize::MAX,
            starts: 0,
            semicolon: None,
            number: None,
            dense: false,
            no_entity_before: 0,
        }
    }

    /// The first `;` at or after `at` (`usize::MAX`: none).
    fn semicolon_from(&mut self, at: usize) -> usize {
        first_from(&mut self.semicolon, self.text, at, |rest| {
            memchr::memchr(b';', rest)
        })
    }

    /// Where an `&` may start an entity again, from an `&` at `at` that
    /// starts none: at the next `&#`, or where the next `;` is within
    /// [`MAX_ENTITY`] bytes; at most the text's length. A query of
    /// `a=1&b=2&...` after its one `;` (`/a;jsessionid=1?a=1&b=2`) was
    /// otherwise searched an `&` at a time, each then looked at with the
    /// chunk after it: 40 % of the time of such 8 KB lines.
    fn entities_from(&mut self, at: usize) -> usize {
        let number = first_from(&mut self.number, self.text, at, |rest| {
            ENTITY_NUMBER.find(rest)
        });
        let named = self
            .semicolon_from(at)
            .saturating_add(1)
            .saturating_sub(MAX_ENTITY);
        number.min(named).min(self.text.len())
    }

    /// Whether a `;` ends a named entity that starts in the chunk at `at`
    /// (within [`MAX_ENTITY`] bytes of its end). A query of `a=1&b=2&...`
    /// with one `;` anywhere may hold entities, yet none of its `&` starts
    /// one: each was a call to [`entity`] that found no `;`, five times the
    /// cost of the text without.
    fn semicolon_near(&mut self, at: usize) -> bool {
        self.semicolon_from(at) < at + SCAN_CHUNK + MAX_ENTITY
    }

    /// Where the next escape may start from `from` on (the text's length
    /// when none can).
    fn next(&mut self, from: usize) -> usize {
        let text = self.text;
        let mut at = from;
        loop {
            if let Some(offset) = at
                .checked_sub(self.chunk_at)
                .filter(|offset| *offset < SCAN_CHUNK)
            {
                let starts = self.starts >> offset;
                if starts != 0 {
                    return at + starts.trailing_zeros() as usize;
                }
                at = self.chunk_at + SCAN_CHUNK;
            }
            let rest = text.get(at..).unwrap_or_default();
            let found = match self.entities {
                true if at < self.no_entity_before => {
                    let before = &text[at..self.no_entity_before];
                    match memchr::memchr2(b'%', b'\\', before) {
                        Some(found) => Some(found),
                        None => {
                            at = self.no_entity_before;
                            continue;
                        }
                    }
                }
                entities => {
                    let near = match self.dense {
                        true => near_escape_byte(rest, entities),
                        false => None,
                    };
                    near.or_else(|| match entities {
                        true => memchr::memchr3(b'%', b'&', b'\\', rest),
                        false => memchr::memchr2(b'%', b'\\', rest),
                    })
                }
            };
            let Some(found) = found else {
                return text.len();
            };
            self.dense = found < NEAR;
            at += found;
            // Most of these bytes start nothing (`a=1&b=2`, `50%.`): the
            // byte after tells, before a chunk is looked at.
            let next = text.get(at + 1).copied().unwrap_or(0);
            // A named entity only where a `;` may end it.
            let may_start = may_start_before(text[at], next, self.entities, true)
                && (text[at] != b'&' || next == b'#' || self.semicolon_near(at));
            // Only after an `&` before a letter with no `;` near (a
            // query's `&b=2`): after the others (`&)`, `&=`) the next `;`
            // was looked for each time, and on random punctuation, a `;`
            // a byte in 20, that cost 6 %.
            if !may_start && text[at] == b'&' && self.entities && next.is_ascii_alphabetic() {
                self.no_entity_before = self.entities_from(at);
            }
            if !may_start {
                // Where such bytes are dense (`'&(&;&$`), the positions
                // after are told a chunk at once, not by a search each.
                let window = text
                    .get(at + 1..at + 1 + MAY_START_WINDOW)
                    .and_then(|w| w.try_into().ok());
                match window.map(|w| chunk_may_start(w, self.entities)) {
                    Some(0) => {
                        at += 1 + SCAN_CHUNK;
                        continue;
                    }
                    Some(starts) => at += 1 + starts.trailing_zeros() as usize,
                    None => {
                        at += 1;
                        continue;
                    }
                }
            }
            self.chunk_at = at;
            let whole = text
                .get(at..at + SCAN_WINDOW)
                .and_then(|w| w.try_into().ok());
            let (escapes, named) = match whole {
                Some(window) => chunk_escapes(window, self.entities),
                // Near the end: padded with bytes that start nothing.
                None => {
                    let mut window = [0u8; SCAN_WINDOW];
                    window[..text.len() - at].copy_from_slice(&text[at..]);
                    chunk_escapes(&window, self.entities)
                }
            };
            self.starts = match named != 0 && self.semicolon_near(at) {
                true => escapes | named,
                false => escapes,
            };
        }
    }
}

/// The first place at or after `at` in `text` that `search` finds
/// (`usize::MAX`: none), kept in `cache` for the calls after, whose `at`
/// only grows: searched again once `at` is past it.
fn first_from(
    cache: &mut Option<usize>,
    text: &[u8],
    at: usize,
    search: impl FnOnce(&[u8]) -> Option<usize>,
) -> usize {
    match *cache {
        Some(first) if first >= at => first,
        _ => {
            let first = search(&text[at..]).map_or(usize::MAX, |offset| at + offset);
            *cache = Some(first);
            first
        }
    }
}

/// Where bytes that may start an escape are dense (`&#x&#x...`, each
/// starting nothing), the next is a byte or two after a chunk: looked for
/// among the first [`NEAR`] bytes of `rest` before a search is set up (a
/// third of the time of 8 KB of `&#x` went to searches that stopped at
/// once). Only after a search that stopped that near: on text where they
/// are a byte in 20 (random punctuation), whether one is that near cannot
/// be foretold, and the look cost 8 %.
#[inline(always)]
fn near_escape_byte(rest: &[u8], entities: bool) -> Option<usize> {
    rest.iter()
        .take(NEAR)
        .position(|b| *b == b'%' || *b == b'\\' || (entities && *b == b'&'))
}

/// See [`near_escape_byte`].
const NEAR: usize = 4;

/// Whether an escape may start at byte `b` before `next`, told from the
/// two alone (a `%` before a letter, a digit or `%`; when the text may hold
/// entities an `&` before `#`, or before a letter when `named` ones may
/// end near; `\x`). Without branches, so that [`chunk_may_start`] is
/// vectorized.
#[inline(always)]
fn may_start_before(b: u8, next: u8, entities: bool, named: bool) -> bool {
    let lower = next | 0x20;
    let letter = lower.wrapping_sub(b'a') < 26;
    let digit = next.wrapping_sub(b'0') < 10;
    let percent = (b == b'%') & (letter | digit | (next == b'%'));
    let entity = entities & (b == b'&') & ((named & letter) | (next == b'#'));
    let backslash = (b == b'\\') & (lower == b'x');
    percent | entity | backslash
}

/// The bytes [`chunk_may_start`] looks at: a chunk, the byte after it, and
/// the longest entity's more (where the `;` that ends a named one may be).
const MAY_START_WINDOW: usize = SCAN_CHUNK + 1 + MAX_ENTITY;

/// Where an escape may start in `window`'s first [`SCAN_CHUNK`] positions
/// by [`may_start_before`], as bits; named entities only when a `;` is in
/// the window. On random punctuation (an `&` a byte in 20, most before
/// another mark) the finder takes most of the text a chunk at a time here.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn chunk_may_start(window: &[u8; MAY_START_WINDOW], entities: bool) -> u32 {
    super::simd::chunk_may_start(window, entities)
}

#[cfg(not(target_arch = "x86_64"))]
fn chunk_may_start(window: &[u8; MAY_START_WINDOW], entities: bool) -> u32 {
    chunk_may_start_portable(window, entities)
}

/// [`chunk_may_start`] of portable code.
#[cfg_attr(target_arch = "x86_64", cfg(test))]
fn chunk_may_start_portable(window: &[u8; MAY_START_WINDOW], entities: bool) -> u32 {
    let named = window.iter().fold(false, |seen, b| seen | (*b == b';'));
    let mut starts = [0u8; SCAN_CHUNK];
    for (i, start) in starts.iter_mut().enumerate() {
        *start = u8::from(may_start_before(window[i], window[i + 1], entities, named));
    }
    bits_of(&starts)
}

/// Where an escape that [`decode_once`] decodes or drops may start in
/// `window`'s first [`SCAN_CHUNK`] positions, as bits: `%` before a
/// letter, a digit or `%`; `&#` before a digit, `&#x` before a hex digit,
/// or `&` before a letter (when the text may hold entities); `\x` before
/// two hex digits. Each byte is classed, then each position told from the
/// classes of its byte and the three after it: written without branches,
/// both loops are vectorized. The `&` before a letter (a named entity) in
/// a second set of bits: it needs a `;` after it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn chunk_escapes(window: &[u8; SCAN_WINDOW], entities: bool) -> (u32, u32) {
    super::simd::chunk_escapes(window, entities)
}

/// [`chunk_escapes`] of portable code.
#[cfg_attr(target_arch = "x86_64", cfg(test))]
fn chunk_escapes_portable(window: &[u8; SCAN_WINDOW], entities: bool) -> (u32, u32) {
    // Classes of a byte, as bits.
    const PERCENT: u8 = 1;
    const AMPERSAND: u8 = 2;
    const BACKSLASH: u8 = 4;
    const HASH: u8 = 8;
    const DIGIT: u8 = 16;
    const LETTER: u8 = 32;
    const HEX_DIGIT: u8 = 64;
    const X: u8 = 128;
    let ampersand = if entities { AMPERSAND } else { 0 };
    let mut class = [0u8; SCAN_WINDOW];
    for (class, &b) in class.iter_mut().zip(window) {
        let lower = b | 0x20;
        let letter = lower.wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        let hex_letter = lower.wrapping_sub(b'a') < 6;
        *class = (if b == b'%' { PERCENT } else { 0 })
            | (if b == b'&' { ampersand } else { 0 })
            | (if b == b'\\' { BACKSLASH } else { 0 })
            | (if b == b'#' { HASH } else { 0 })
            | (if digit { DIGIT | HEX_DIGIT } else { 0 })
            | (if letter { LETTER } else { 0 })
            | (if hex_letter { HEX_DIGIT } else { 0 })
            | (if lower == b'x' { X } else { 0 });
    }
    let mut starts = [0u8; SCAN_CHUNK];
    let mut named = [0u8; SCAN_CHUNK];
    for (i, (start, named)) in starts.iter_mut().zip(&mut named).enumerate() {
        let has = |at: usize, bits: u8| class[i + at] & bits != 0;
        let percent = has(0, PERCENT) & has(1, DIGIT | LETTER | PERCENT);
        let number = has(1, HASH) & (has(2, DIGIT) | (has(2, X) & has(3, HEX_DIGIT)));
        let backslash = has(0, BACKSLASH) & has(1, X) & has(2, HEX_DIGIT) & has(3, HEX_DIGIT);
        *start = u8::from(percent | (has(0, AMPERSAND) & number) | backslash);
        *named = u8::from(has(0, AMPERSAND) & has(1, LETTER));
    }
    (bits_of(&starts), bits_of(&named))
}

#[cfg(not(target_arch = "x86_64"))]
fn chunk_escapes(window: &[u8; SCAN_WINDOW], entities: bool) -> (u32, u32) {
    chunk_escapes_portable(window, entities)
}

/// Thirty-two bytes of 0 or 1 to thirty-two bits, bit `n` from byte `n`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn bits_of(flags: &[u8; SCAN_CHUNK]) -> u32 {
    super::simd::bits_of(flags)
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn bits_of(flags: &[u8; SCAN_CHUNK]) -> u32 {
    // Eight bytes to eight bits: the multiplier moves byte `n`'s bit to bit
    // `56 + n`, and no two of its products overlap.
    flags
        .chunks_exact(8)
        .enumerate()
        .fold(0, |bits, (n, eight)| {
            let word = u64::from_le_bytes(eight.try_into().unwrap_or_default());
            bits | (((word.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32) << (8 * n))
        })
}

/// The value of hex digit `c` (anything for another byte).
#[inline(always)]
const fn hex_digit_value(c: u8) -> u8 {
    (c & 0x0f) + 9 * (c >> 6)
}

#[inline(always)]
const fn is_hex_digit(c: u8) -> bool {
    (c.wrapping_sub(b'0') < 10) | ((c | 0x20).wrapping_sub(b'a') < 6)
}

/// Whether a decoded byte may start or complete another escape (a digit, a
/// letter, `%`, `&`, `#`, `;`, `\\`): after one of them, another pass is
/// worth it (`%5cx27` is `\\x27`, a quote). Arithmetic, so that the groups of
/// [`plain_escapes`] load nothing.
#[inline(always)]
const fn may_hold_more(c: u8) -> bool {
    (c.wrapping_sub(b'0') < 10)
        | ((c | 0x20).wrapping_sub(b'a') < 26)
        | (c == b'%')
        | (c == b'&')
        | (c == b'#')
        | (c == b';')
        | (c == b'\\')
}

/// Plain escapes decoded at once by [`plain_escapes`]: the bytes of a
/// vector register.
pub(super) const ESCAPE_GROUP: usize = 16;
pub(super) const GROUP_BYTES: usize = 3 * ESCAPE_GROUP;

/// Where a group of plain escapes holds its `%`s (every third byte; the
/// others are hex digits).
const PERCENT_AT: [bool; GROUP_BYTES] = {
    let mut at = [false; GROUP_BYTES];
    let mut i = 0;
    while i < GROUP_BYTES {
        at[i] = true;
        i += 3;
    }
    at
};

/// `group` decoded into `bytes` when it is [`ESCAPE_GROUP`] plain escapes
/// (`None` when not), whether a decoded byte may hold more, and whether
/// the last is `%e0`, which may start an overlong form with the escape
/// after the group: the caller leaves it to the next.
///
/// Each step goes over the whole group without a branch, so that it is a
/// few vector instructions: whether each byte is what its place needs,
/// each byte's digit value, each pair of values as a byte. Only taking
/// the pairs at every third byte is a byte at a time, or in SSE2's
/// shuffles by words: 11 instructions an escape, where one escape at a
/// time took 20. Where the CPU has SSSE3, [`super::simd`] does the
/// same in 8.
#[inline(always)]
pub(super) fn decode_group(group: &[u8; GROUP_BYTES]) -> Option<([u8; ESCAPE_GROUP], bool, bool)> {
    let mut wrong = 0u8;
    for (&b, &percent) in group.iter().zip(&PERCENT_AT) {
        let right = (percent & (b == b'%')) | (!percent & is_hex_digit(b));
        wrong |= u8::from(!right);
    }
    let mut value = [0u8; GROUP_BYTES + 1];
    for (value, &b) in value.iter_mut().zip(group) {
        *value = hex_digit_value(b);
    }
    let mut pair = [0u8; GROUP_BYTES];
    for (i, pair) in pair.iter_mut().enumerate() {
        *pair = (value[i] << 4) | value[i + 1];
    }
    let mut bytes = [0u8; ESCAPE_GROUP + 1];
    for (k, byte) in bytes.iter_mut().take(ESCAPE_GROUP).enumerate() {
        *byte = pair[3 * k + 1];
    }
    let (mut special, mut more) = (0u8, 0u8);
    for k in 0..ESCAPE_GROUP {
        special |= u8::from(starts_overlong(bytes[k], bytes[k + 1]));
        more |= u8::from(may_hold_more(bytes[k]));
    }
    let mut out = [0u8; ESCAPE_GROUP];
    out.copy_from_slice(&bytes[..ESCAPE_GROUP]);
    let last_e0 = out[ESCAPE_GROUP - 1] == 0xe0;
    (wrong | special == 0).then_some((out, more != 0, last_e0))
}

/// Whether an escaped `byte` before an escaped `next` (0 when there is
/// none) may be an overlong UTF-8 form that [`percent_escape`] decodes:
/// `%c0`/`%c1` before anything, `%e0` before `%80` or `%81`. Devanagari
/// and Thai start every character with `%e0`: those go on in groups.
#[inline(always)]
const fn starts_overlong(byte: u8, next: u8) -> bool {
    (byte & 0xfe == 0xc0) | ((byte == 0xe0) & (next & 0xfe == 0x80))
}

/// [`decode_group`] with the vector code this CPU has.
#[cfg(target_arch = "x86_64")]
fn group_decoder() -> impl Fn(&[u8; GROUP_BYTES]) -> Option<([u8; ESCAPE_GROUP], bool, bool)> {
    let ssse3 = super::simd::Ssse3::detect();
    move |group| match ssse3 {
        Some(ssse3) => ssse3.decode_group(group),
        None => decode_group(group),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn group_decoder() -> impl Fn(&[u8; GROUP_BYTES]) -> Option<([u8; ESCAPE_GROUP], bool, bool)> {
    decode_group
}

/// The bytes decoded at once by [`sparse_escapes`]: a vector register.
pub(super) const SPARSE_BLOCK: usize = 16;
/// A block and the two digits of an escape at its last byte.
pub(super) const SPARSE_WINDOW: usize = SPARSE_BLOCK + 2;
/// The same with AVX2's registers of 32 bytes.
pub(super) const WIDE_BLOCK: usize = 32;
pub(super) const WIDE_WINDOW: usize = WIDE_BLOCK + 2;

/// A block of `N` bytes of text with plain escapes in it, decoded by
/// [`decode_block`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Block<const N: usize = SPARSE_BLOCK> {
    /// The block decoded: its first `len` bytes (the rest is anything).
    pub(super) bytes: [u8; N],
    pub(super) len: usize,
    /// The bytes of the text it took: the block, and the digits of an
    /// escape that starts at its end.
    pub(super) consumed: usize,
    /// Whether it held an escape, and one decoded into a byte that may
    /// hold more.
    pub(super) escapes: bool,
    pub(super) more: bool,
}

impl<const N: usize> PartialEq for Block<N> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes[..self.len] == other.bytes[..other.len]
            && (self.consumed, self.escapes, self.more)
                == (other.consumed, other.escapes, other.more)
    }
}

/// The first `N` bytes of `window` (`W` = `N` + 2) decoded as the loop of
/// [`decode_once_with`] decodes them, when every escape that may start
/// in them is a plain `%HH` that decodes into a byte that starts no
/// overlong form; `None` when another escape may start (a `%` before no
/// two digits, a `\\`, an `&` where entities may be) or an overlong lead
/// is decoded (`%c0`, `%c1`, `%e0`).
///
/// Each step goes over the whole block without a branch but the last,
/// so that where the CPU has SSSE3 or AVX2, [`super::simd`] does it in a
/// few vector instructions: text with an escape every few words
/// (`hello%20world%20`) was a search, a call and a copy an escape.
pub(super) fn decode_block<const N: usize, const W: usize>(
    window: &[u8; W],
    entities: bool,
) -> Option<Block<N>> {
    const { assert!(W == N + 2) };
    let mut block = Block {
        bytes: [0; N],
        len: 0,
        consumed: 0,
        escapes: false,
        more: false,
    };
    let mut at = 0;
    while at < N {
        let byte = match window[at] {
            b'%' => {
                let (high, low) = (window[at + 1], window[at + 2]);
                if !(is_hex_digit(high) & is_hex_digit(low)) {
                    return None;
                }
                let byte = (hex_digit_value(high) << 4) | hex_digit_value(low);
                if (byte & 0xfe == 0xc0) | (byte == 0xe0) {
                    return None;
                }
                block.escapes = true;
                block.more |= may_hold_more(byte);
                at += 3;
                byte
            }
            b'\\' => return None,
            b'&' if entities => return None,
            byte => {
                at += 1;
                byte
            }
        };
        block.bytes[block.len] = byte;
        block.len += 1;
    }
    block.consumed = at;
    Some(block)
}

/// Text with plain escapes here and there at the start of `text`, decoded
/// into `dst` a block at a time ([`decode_block`], with the vector code
/// this CPU has): the bytes consumed, up to a block with another escape or
/// none (a long run without escapes is left to the search, which skips it
/// faster).
#[cfg(target_arch = "x86_64")]
fn sparse_escapes(text: &[u8], dst: &mut Vec<u8>, entities: bool, pass: &mut Pass) -> usize {
    use super::simd::{Avx2, Ssse3};
    if let Some(avx2) = Avx2::detect() {
        return avx2.sparse_escapes(text, dst, entities, pass);
    }
    match Ssse3::detect() {
        Some(ssse3) => ssse3.sparse_escapes(text, dst, entities, pass),
        None => blocks_decoded(text, dst, pass, |window| decode_block(window, entities)),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn sparse_escapes(text: &[u8], dst: &mut Vec<u8>, entities: bool, pass: &mut Pass) -> usize {
    blocks_decoded(text, dst, pass, |window| decode_block(window, entities))
}

/// [`sparse_escapes`] with the decoder of a block given: inlined into the
/// vector code's caller, so that its blocks are not passed in memory.
#[inline(always)]
pub(super) fn blocks_decoded(
    text: &[u8],
    dst: &mut Vec<u8>,
    pass: &mut Pass,
    mut decode: impl FnMut(&[u8; SPARSE_WINDOW]) -> Option<Block>,
) -> usize {
    let mut at = 0;
    while let Some(window) = text
        .get(at..at + SPARSE_WINDOW)
        .and_then(|w| <&[u8; SPARSE_WINDOW]>::try_from(w).ok())
    {
        let Some(block) = decode(window) else {
            break;
        };
        // A whole block and a cut: a copy of known length, not a call.
        let len = dst.len();
        dst.extend_from_slice(&block.bytes);
        dst.truncate(len + block.len);
        at += block.consumed;
        if !block.escapes {
            break;
        }
        pass.changed = true;
        pass.may_hold_more |= block.more;
    }
    at
}

/// A run of plain `%HH` escapes at the start of `text` (what browsers
/// send for non-Latin text), decoded into `dst` in a tight loop: the bytes
/// consumed, 0 when the first is not one. Stops before an escape that
/// [`percent_escape`] treats specially (`%u`, overlong UTF-8 leads).
fn plain_escapes(text: &[u8], dst: &mut Vec<u8>, pass: &mut Pass) -> usize {
    if text.get(1..3) == Some(b"25") {
        let twice = encoded_twice(text, dst);
        if twice > 0 {
            pass.changed = true;
            pass.may_hold_more = true;
            return twice;
        }
    }
    let mut at = 0;
    let mut more = false;
    let decode = group_decoder();
    // Whole groups first; the rest one by one. An escape between words
    // (`hello%20world`) is not followed by another: no group is loaded.
    if text.get(3) == Some(&b'%') {
        while let Some(group) = text.get(at..at + GROUP_BYTES) {
            let Some((bytes, group_more, last_e0)) =
                <&[u8; GROUP_BYTES]>::try_from(group).ok().and_then(&decode)
            else {
                break;
            };
            dst.extend_from_slice(&bytes);
            more |= group_more;
            at += GROUP_BYTES;
            // A last `%e0` is decoded with what follows it, by the next.
            if last_e0 {
                dst.pop();
                at -= 3;
            }
        }
    }
    while let [b'%', high, low, ..] = text[at..] {
        let (Some(high), Some(low)) = (hex(high), hex(low)) else {
            break;
        };
        let byte = (high << 4) | low;
        // The escape after is looked at only for an %e0.
        let next = || escaped_byte(&text[at + 3..]).unwrap_or(0);
        if matches!(byte, 0xc0 | 0xc1 | 0xe0) && starts_overlong(byte, next()) {
            break;
        }
        dst.push(byte);
        more |= may_hold_more(byte);
        at += 3;
    }
    if at > 0 {
        pass.changed = true;
        pass.may_hold_more |= more;
    }
    at
}

/// A run of `%25HH` at the start of `text` (a text percent-encoded twice
/// over, `%25D0%25BF` for `%D0%BF`, as tools send whole payloads), into
/// `dst` as the escape-by-escape decoding makes it: each `%25` a `%`, its
/// two digits copied. The bytes consumed (0: `text` does not start so).
/// One turn of a short loop each, where the decoding took a search and
/// a failed group for each (12k lines/s for 8 KB of such Cyrillic).
fn encoded_twice(text: &[u8], dst: &mut Vec<u8>) -> usize {
    let mut at = 0;
    // Three at a time first, their digits copied without a look each.
    while let Some(window) = text
        .get(at..at + 16)
        .and_then(|window| <&[u8; 16]>::try_from(window).ok())
    {
        if !three_encoded_twice(window) {
            break;
        }
        let w = window;
        dst.extend_from_slice(&[b'%', w[3], w[4], b'%', w[8], w[9], b'%', w[13], w[14]]);
        at += 15;
    }
    while let [b'%', b'2', b'5', high, low, ..] = text[at..] {
        if !(is_hex_digit(high) & is_hex_digit(low)) {
            break;
        }
        dst.extend_from_slice(&[b'%', high, low]);
        at += 5;
    }
    at
}

/// Whether `window` starts with three escapes of a text percent-encoded
/// twice (`%25HH%25HH%25HH`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn three_encoded_twice(window: &[u8; 16]) -> bool {
    super::simd::three_encoded_twice(window)
}

/// [`three_encoded_twice`] of portable code.
#[cfg_attr(target_arch = "x86_64", cfg(test))]
fn three_encoded_twice_portable(window: &[u8; 16]) -> bool {
    window[..15].chunks_exact(5).all(|escape| {
        escape.starts_with(b"%25") && is_hex_digit(escape[3]) & is_hex_digit(escape[4])
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn three_encoded_twice(window: &[u8; 16]) -> bool {
    three_encoded_twice_portable(window)
}

/// Whether `window` starts with three decimal entities of two digits
/// (`&#39;&#39;&#39;`) that [`entity_ascii`] decodes (the byte after the
/// third is not a `;`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn three_decimal_entities(window: &[u8; 16]) -> bool {
    super::simd::three_decimal_entities(window)
}

/// [`three_decimal_entities`] of portable code.
#[cfg_attr(target_arch = "x86_64", cfg(test))]
fn three_decimal_entities_portable(window: &[u8; 16]) -> bool {
    let entity = |e: &[u8]| matches!(e, [b'&', b'#', tens, ones, b';'] if tens.is_ascii_digit() && ones.is_ascii_digit());
    window[15] != b';' && window[..15].chunks_exact(5).all(entity)
}

#[cfg(not(target_arch = "x86_64"))]
fn three_decimal_entities(window: &[u8; 16]) -> bool {
    three_decimal_entities_portable(window)
}

/// Whether `window` starts with two IIS escapes of ASCII characters
/// (`%u0027%U003c`) as [`iis_ascii`] decodes them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn two_iis_escapes(window: &[u8; 16]) -> bool {
    super::simd::two_iis_escapes(window)
}

/// [`two_iis_escapes`] of portable code.
#[cfg_attr(target_arch = "x86_64", cfg(test))]
fn two_iis_escapes_portable(window: &[u8; 16]) -> bool {
    window[..12]
        .chunks_exact(6)
        .all(|escape| iis_ascii(escape).is_some())
}

#[cfg(not(target_arch = "x86_64"))]
fn two_iis_escapes(window: &[u8; 16]) -> bool {
    two_iis_escapes_portable(window)
}

/// `%HH` or `%uXXXX` at the start of `text`, decoded into `dst`: the bytes
/// consumed, 0 when it is not one.
fn percent_escape(text: &[u8], dst: &mut Vec<u8>) -> usize {
    if matches!(text.get(1), Some(b'u' | b'U')) {
        if let Some(digits) = text.get(2..6) {
            if let Some(code) = digits
                .iter()
                .try_fold(0u32, |acc, b| hex(*b).map(|h| acc * 16 + u32::from(h)))
            {
                push_char(dst, fold_fullwidth(code));
                return 6;
            }
        }
    }
    let Some(first) = escaped_byte(text) else {
        return 0;
    };
    // Overlong UTF-8 for an ASCII character (`%c0%af` is `/`): what
    // lenient decoders made of it, and what traversal attempts rely on.
    let continuation = |at: usize| escaped_byte(text.get(at..)?).filter(|b| b & 0xc0 == 0x80);
    match first {
        0xc0 | 0xc1 => {
            if let Some(second) = continuation(3) {
                dst.push(((first & 0x1f) << 6) | (second & 0x3f));
                return 6;
            }
            // `%c0%2e`: decoders that drop the lead byte make it a dot.
            if let Some(ascii) = escaped_byte(&text[3..]).filter(u8::is_ascii) {
                dst.push(ascii);
                return 6;
            }
        }
        0xe0 => {
            if let (Some(second @ 0x80..=0x81), Some(third)) = (continuation(3), continuation(6)) {
                dst.push(((second & 0x3f) << 6) | (third & 0x3f));
                return 9;
            }
        }
        _ => {}
    }
    dst.push(first);
    3
}

/// The ASCII character of a `%u00HH` at the start of `text` (`%u0027`),
/// as [`percent_escape`] decodes it, without its general decoding: runs of
/// them are what makes it busy (8 KB of `%u0027` a line).
#[inline(always)]
fn iis_ascii(text: &[u8]) -> Option<u8> {
    match text.get(..6)? {
        [b'%', b'u' | b'U', b'0', b'0', high @ b'0'..=b'7', low] if is_hex_digit(*low) => {
            Some((high - b'0') << 4 | hex_digit_value(*low))
        }
        _ => None,
    }
}

/// The ASCII character of a short numeric entity closed by `;` at the
/// start of `text` (`&#39;`, `&#060;`, `&#x27;`), and its length, as
/// [`entity`] decodes it, without its general decoding.
#[inline(always)]
fn entity_ascii(text: &[u8]) -> Option<(u8, usize)> {
    let decimal = |digit: u8| digit.is_ascii_digit().then(|| digit - b'0');
    let (code, consumed) = match text.get(..6) {
        Some([b'&', b'#', b'x' | b'X', high, low, b';'])
            if is_hex_digit(*high) && is_hex_digit(*low) =>
        {
            (hex_digit_value(*high) << 4 | hex_digit_value(*low), 6)
        }
        Some([b'&', b'#', a, b, c, b';']) => {
            let code = u16::from(decimal(*a)?) * 100 + u16::from(decimal(*b)? * 10 + decimal(*c)?);
            (u8::try_from(code).ok()?, 6)
        }
        _ => match text.get(..5)? {
            [b'&', b'#', a, b, b';'] => (decimal(*a)? * 10 + decimal(*b)?, 5),
            _ => return None,
        },
    };
    code.is_ascii().then_some((code, consumed))
}

/// IIS's `%uff0e` (fullwidth full stop) and `%u2215` (division slash):
/// what it took for `.` and `/`. Only `%u` escapes are folded; fullwidth
/// text written as UTF-8 (Japanese, Chinese) is left as it is.
fn fold_fullwidth(code: u32) -> u32 {
    match code {
        0xff01..=0xff5e => code - 0xfee0,
        0x2215 | 0x2044 => u32::from(b'/'),
        0x2216 | 0x29f5 => u32::from(b'\\'),
        _ => code,
    }
}

/// `\xHH` for a printable ASCII character (`\x3cscript`, `\x27`), decoded
/// into `dst`: the bytes consumed, 0 when it is not one.
fn hex_escape(text: &[u8], dst: &mut Vec<u8>) -> usize {
    if !matches!(text.get(1), Some(b'x' | b'X')) {
        return 0;
    }
    match (
        text.get(2).and_then(|b| hex(*b)),
        text.get(3).and_then(|b| hex(*b)),
    ) {
        (Some(high), Some(low)) if (0x20..0x7f).contains(&(high * 16 + low)) => {
            dst.push(high * 16 + low);
            4
        }
        _ => 0,
    }
}

/// The byte of a `%HH` at the start of `text`.
fn escaped_byte(text: &[u8]) -> Option<u8> {
    if text.first() != Some(&b'%') {
        return None;
    }
    Some(hex(*text.get(1)?)? * 16 + hex(*text.get(2)?)?)
}

/// The longest entity decoded: `&#x0000003c;` with room to spare.
const MAX_ENTITY: usize = 12;

/// An HTML entity at the start of `text` (`&#60;`, `&#x3c;`, `&lt;`, the
/// `;` optional after a number as browsers allow), decoded into `dst`:
/// the bytes consumed, 0 when it is not one.
fn entity(text: &[u8], dst: &mut Vec<u8>) -> usize {
    let window = &text[..text.len().min(MAX_ENTITY)];
    if let Some(rest) = window.strip_prefix(b"&#") {
        let (radix, digits_at) = match rest.first() {
            Some(b'x' | b'X') => (16, 3),
            _ => (10, 2),
        };
        let digits = window[digits_at..]
            .iter()
            .take_while(|b| {
                if radix == 16 {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 || digits > 7 {
            return 0;
        }
        let mut code = 0u32;
        for b in &window[digits_at..digits_at + digits] {
            code = code * radix + u32::from(hex(*b).unwrap_or(0));
        }
        push_char(dst, code);
        let end = digits_at + digits;
        return end + usize::from(window.get(end) == Some(&b';'));
    }
    // Named ones all end in `;` within the window: most `&` (query
    // separators) are ruled out here, before any name is compared.
    if !window.contains(&b';') {
        return 0;
    }
    for (name, byte) in [
        (&b"&lt;"[..], b'<'),
        (b"&gt;", b'>'),
        (b"&quot;", b'"'),
        (b"&apos;", b'\''),
        (b"&amp;", b'&'),
        (b"&lpar;", b'('),
        (b"&rpar;", b')'),
        (b"&colon;", b':'),
        (b"&sol;", b'/'),
        (b"&tab;", b'\t'),
        (b"&newline;", b'\n'),
    ] {
        if window.len() >= name.len() && window[..name.len()].eq_ignore_ascii_case(name) {
            dst.push(byte);
            return name.len();
        }
    }
    0
}

/// Space and every C0 control: MSSQL takes any of them for a blank
/// (sqlmap's space2mssqlblank), and none belongs in a value.
const fn is_space(b: u8) -> bool {
    b <= b' '
}

/// Whether `text` holds a comment opener, whitespace other than a space,
/// or two spaces in a row; most text holds none and is kept as it is.
/// One pass a chunk at a time ([`plain_run`] from the first byte), not a
/// pass for each (two of them `memmem` for pairs that are common in text).
fn needs_collapsing(text: &[u8]) -> bool {
    let Some(&first) = text.first() else {
        return false;
    };
    (is_space(first) && first != b' ')
        || text.starts_with(b"/*")
        || plain_run(text, 0, text.len()) < text.len()
}

/// Where the first `*/` in `text` starts.
fn comment_closer(text: &[u8]) -> Option<usize> {
    // Close by first (`/*/*/*`): a search call costs more than a look.
    const NEAR: usize = 16;
    if let Some(at) = text.windows(2).take(NEAR).position(|w| w == b"*/") {
        return Some(at);
    }
    // Further on, the searcher built once for the pair: a `memchr` for each
    // `*` made a call per star of `/*!/*!/*!...` (a third of its bytes).
    let far = text.get(NEAR..)?;
    COMMENT_CLOSER.find(far).map(|at| NEAR + at)
}

/// The length of the comment opener `text` starts with: `/*`, or `/*!` and
/// the version digits after it (those within `text`: a closed executable
/// comment passes the text up to its `*/`).
fn opener_len(text: &[u8]) -> usize {
    match text.get(2) {
        Some(b'!') => 3 + text[3..].iter().take_while(|b| b.is_ascii_digit()).count(),
        _ => 2,
    }
}

/// Past the run of comment openers from `at` on, when no `*/` follows.
/// After two alike (`/*!/*!`), past as many more as the text repeats
/// them: a look an opener was 1 ns of each 3 bytes of `/*!/*!...`.
fn past_unclosed_openers(src: &[u8], mut at: usize) -> usize {
    let mut last = 0;
    while src[at..].starts_with(b"/*") {
        let len = opener_len(&src[at..]);
        if len == last {
            // From the opener before on, the text has a period of `len`:
            // each opener whose bytes and the byte after them (which ends
            // its version) lie in it is read as the one before.
            let repeated = super::scan::common_prefix(&src[at - len..], &src[at..]);
            at += repeated.saturating_sub(1) / len * len;
            last = 0;
            continue;
        }
        at += len;
        last = len;
    }
    at
}

/// Bytes a look at comments close together covers: the pairs that start
/// at its first 32 (a `*/` needs the byte after).
const COMMENT_WINDOW: usize = SCAN_CHUNK + 1;

/// Where, in the 32 bytes a [`COMMENT_WINDOW`] starts with, comments open
/// (`/*`) and close (`*/`) and blanks are (whitespace and control bytes),
/// bit `n` for byte `n`; counted without a branch, so vectorized.
struct CommentMarks {
    openers: u32,
    closers: u32,
    blanks: u32,
}

impl CommentMarks {
    #[inline(always)]
    fn of(window: &[u8; COMMENT_WINDOW]) -> Self {
        let (mut openers, mut closers, mut blanks) =
            ([0u8; SCAN_CHUNK], [0; SCAN_CHUNK], [0; SCAN_CHUNK]);
        for n in 0..SCAN_CHUNK {
            let (byte, after) = (window[n], window[n + 1]);
            openers[n] = u8::from((byte == b'/') & (after == b'*'));
            closers[n] = u8::from((byte == b'*') & (after == b'/'));
            blanks[n] = u8::from(is_space(byte));
        }
        Self {
            openers: bits_of(&openers),
            closers: bits_of(&closers),
            blanks: bits_of(&blanks),
        }
    }
}

/// Where [`strip_close_comments`] left a comment. At each such place a
/// space was written last, and what is written up to the next (the bytes
/// before an opener, a space, the comment dropped) depends on the text
/// in between alone: a text that repeats a segment writes its output
/// again.
#[derive(Clone, Copy)]
struct CommentEnd {
    /// Past the comment's `*/`.
    at: usize,
    /// How far it is from the end before it (0 for the first).
    segment: usize,
    /// The length of the output then.
    written: usize,
}

impl CommentEnd {
    fn after(last: Option<CommentEnd>, at: usize, written: usize) -> Self {
        let segment = last.map_or(0, |last| at - last.at);
        Self {
            at,
            segment,
            written,
        }
    }

    /// When the segment up to `end` (the comment end after this one) is
    /// as long as the one before it, a hint that the text repeats: as
    /// many more times as the text goes on repeating it, its output
    /// written again (`/*/*/*...`: ` *` for each six bytes); the place
    /// after the last, `None` if it is not repeated.
    fn repeated_up_to(&self, end: &CommentEnd, src: &[u8], dst: &mut Vec<u8>) -> Option<usize> {
        if end.segment == 0 || end.segment != self.segment {
            return None;
        }
        let (from, to) = (src.get(self.at..)?, src.get(end.at..)?);
        let times = super::scan::common_prefix(from, to) / end.segment;
        if times == 0 {
            return None;
        }
        write_again(dst, end.written - self.written, times);
        Some(end.at + times * end.segment)
    }
}

/// The last `unit` bytes of `dst` written `times` more times, in copies
/// that double.
fn write_again(dst: &mut Vec<u8>, unit: usize, times: usize) {
    let start = dst.len() - unit;
    let mut left = unit * times;
    dst.reserve(left);
    while left > 0 {
        // Whole units but for the last copy, which ends the output.
        let take = (dst.len() - start).min(left);
        dst.extend_from_within(start..start + take);
        left -= take;
    }
}

/// Comments that open and close within a few bytes of each other
/// (`/*/*/*...`, `/**/x/**/y`), from the opener at `from` (not executable,
/// outside an executable comment) on: each dropped as one space, the
/// bytes between them copied, all told from the marks of a window (where
/// the loop of [`strip_comments_and_collapse`] took a turn, a look at the
/// opener and a search for its `*/` for each), and a segment the text
/// repeats written again without a look ([`CommentEnd`]): 8 KB of `/*`
/// were 80k lines/s. Stops at what it leaves to that loop (blanks, an
/// executable opener, a `*/` past the window): where, or `None` if at
/// `from`.
fn strip_close_comments(
    src: &[u8],
    from: usize,
    dst: &mut Vec<u8>,
    in_space: &mut bool,
) -> Option<usize> {
    let mut at = from;
    let mut last: Option<CommentEnd> = None;
    'windows: while let Some(window) = src
        .get(at..at + COMMENT_WINDOW)
        .and_then(|window| <&[u8; COMMENT_WINDOW]>::try_from(window).ok())
    {
        let marks = CommentMarks::of(window);
        // After a comment, or at the first opener.
        let mut place = 0;
        loop {
            let stops = (marks.openers | marks.blanks) >> place;
            if stops == 0 {
                at += place;
                break 'windows;
            }
            let next = place + stops.trailing_zeros() as usize;
            // A byte between comments (`/*/*/*` leaves a star) is pushed:
            // a copy of one byte is a call.
            match next - place {
                0 => {}
                1 => dst.push(window[place]),
                _ => dst.extend_from_slice(&window[place..next]),
            }
            *in_space &= next == place;
            // An opener's `*/` is looked for from after it (`/*/` is no
            // comment).
            let closers = match next + 2 < SCAN_CHUNK {
                true => marks.closers >> (next + 2),
                false => 0,
            };
            if marks.blanks >> next & 1 == 1 || closers == 0 || window.get(next + 2) == Some(&b'!')
            {
                at += next;
                break 'windows;
            }
            place = next + 2 + closers.trailing_zeros() as usize + 2;
            if !*in_space {
                dst.push(b' ');
                *in_space = true;
            }
            let end = CommentEnd::after(last, at + place, dst.len());
            if let Some(past) = last.and_then(|last| last.repeated_up_to(&end, src, dst)) {
                at = past;
                last = None;
                continue 'windows;
            }
            last = Some(end);
            if place >= SCAN_CHUNK {
                at += place;
                continue 'windows;
            }
        }
    }
    (at > from).then_some(at)
}

/// How many bytes from `from` on (up to `limit`)
/// [`strip_comments_and_collapse`] copies as they are, `from` being one
/// that needs no work: up to a control byte, a space after whitespace, or
/// a comment opener; found a chunk at a time without a branch per byte.
#[inline(never)]
fn plain_run(src: &[u8], from: usize, limit: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = super::simd::Avx2::detect() {
        return avx2.plain_run(src, from, limit);
    }
    plain_run_with(src, from, limit, chunk_needs_work)
}

/// [`plain_run`] with the finder of work in a chunk given: inlined into
/// the vector code's caller.
#[inline(always)]
pub(super) fn plain_run_with(
    src: &[u8],
    from: usize,
    limit: usize,
    chunk_needs_work: impl Fn(&[u8; SCAN_CHUNK + 2]) -> u32,
) -> usize {
    // Each chunk with the byte before it and the byte after it.
    let mut at = from + 1;
    while at + SCAN_CHUNK <= limit {
        let Some(window) = src
            .get(at - 1..at + SCAN_CHUNK + 1)
            .and_then(|window| window.try_into().ok())
        else {
            break;
        };
        let found = chunk_needs_work(window);
        if found != 0 {
            return at + found.trailing_zeros() as usize - from;
        }
        at += SCAN_CHUNK;
    }
    while at < limit {
        if needs_work(src[at - 1], src[at], src.get(at + 1).copied().unwrap_or(0)) {
            return at - from;
        }
        at += 1;
    }
    limit - from
}

/// Where in the chunk of `window[1..=SCAN_CHUNK]` the collapse has work,
/// bit `n` for byte `1 + n`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn chunk_needs_work(window: &[u8; SCAN_CHUNK + 2]) -> u32 {
    super::simd::needs_work(window)
}

/// [`chunk_needs_work`] of portable code, without a branch: vectorized.
#[cfg_attr(target_arch = "x86_64", cfg(test))]
fn chunk_needs_work_portable(window: &[u8; SCAN_CHUNK + 2]) -> u32 {
    let mut work = [0u8; SCAN_CHUNK];
    for (n, flag) in work.iter_mut().enumerate() {
        *flag = u8::from(needs_work(window[n], window[n + 1], window[n + 2]));
    }
    bits_of(&work)
}

#[cfg(not(target_arch = "x86_64"))]
fn chunk_needs_work(window: &[u8; SCAN_CHUNK + 2]) -> u32 {
    chunk_needs_work_portable(window)
}

/// Whether the collapse has work at byte `b` (between `before` and
/// `after`): a control byte, a space after whitespace, a comment opener.
/// Without branches, so that [`plain_run`]'s chunks are vectorized.
#[inline(always)]
fn needs_work(before: u8, b: u8, after: u8) -> bool {
    let space = is_space(b) & ((b != b' ') | is_space(before));
    let opener = (b == b'/') & (after == b'*');
    space | opener
}

/// What [`strip_comments_and_collapse`] does at a byte.
#[derive(PartialEq)]
enum Work {
    /// Copies it as it is.
    Copy,
    /// Drops the comment it opens.
    Opener,
    /// Folds it into one space: a control byte, or whitespace after
    /// whitespace.
    Blank,
}

/// The work at `src[i]`, `in_space` telling whether a space was written
/// last.
fn work_at(src: &[u8], i: usize, in_space: bool) -> Work {
    let b = src[i];
    if b == b'/' && src.get(i + 1) == Some(&b'*') {
        Work::Opener
    } else if is_space(b) && (b != b' ' || in_space) {
        Work::Blank
    } else {
        Work::Copy
    }
}

/// `/*…*/` becomes a space (`UNION/**/SELECT`), MySQL's executable
/// `/*!50000 union*/` its contents between spaces, an unclosed `/*` a
/// space (what follows it is kept: it may be the payload); each run of
/// whitespace one space; from `src` into `dst`.
fn strip_comments_and_collapse(src: &[u8], dst: &mut Vec<u8>) {
    strip_comments_and_collapse_with(src, dst, plain_run, true);
}

/// [`strip_comments_and_collapse`] with the finder of the run that needs
/// no work given (the one used, or in tests one that takes a byte at a
/// time), and comments close together taken at once or, in tests, one
/// at a time.
#[inline(never)]
fn strip_comments_and_collapse_with(
    src: &[u8],
    dst: &mut Vec<u8>,
    mut plain_run: impl FnMut(&[u8], usize, usize) -> usize,
    close_comments_at_once: bool,
) {
    dst.reserve(src.len());
    let mut in_space = false;
    // Where the `*/` of the executable comment we are in starts.
    let mut executable_end: Option<usize> = None;
    // Past this offset there is no `*/`: a search from later would fail
    // too, so `/*/*/*...` costs one search, not one per opener.
    let mut no_closer_from = src.len();
    let mut i = 0;
    while i < src.len() {
        if let Some(end) = executable_end.filter(|end| i >= *end) {
            executable_end = None;
            // Past its `*/`, which an opener read before may have begun
            // (`/*/`): a step of 2 from there cut the byte after it (half
            // of a UTF-8 character, made U+FFFD).
            i = i.max(end + 2);
            if !in_space {
                dst.push(b' ');
                in_space = true;
            }
            continue;
        }
        let limit = executable_end.unwrap_or(src.len());
        let mut work = work_at(src, i, in_space);
        if work == Work::Copy {
            let b = src[i];
            // This byte and the ones after it up to one that needs work
            // are copied at once (a search query, a sentence, `'(<>;|`
            // where a `/` opens no comment). The byte after is looked at
            // first: in `/*/*/*` (a comment, a star, a comment) a search
            // for the end of a one-byte run cost more than the byte.
            let next = i + 1;
            let run = match next < limit
                && needs_work(b, src[next], src.get(next + 1).copied().unwrap_or(0))
            {
                true => 1,
                false => plain_run(src, i, limit),
            };
            match run {
                1 => dst.push(b),
                _ => dst.extend_from_slice(&src[i..i + run]),
            }
            in_space = src[i + run - 1] == b' ';
            i += run;
            // The byte that ends the run needs work, done in this turn.
            if i >= limit {
                continue;
            }
            work = work_at(src, i, in_space);
            if work == Work::Copy {
                continue;
            }
        }
        if work == Work::Opener {
            if close_comments_at_once
                && executable_end.is_none()
                && i + 2 < no_closer_from
                && src.get(i + 2) != Some(&b'!')
            {
                if let Some(next) = strip_close_comments(src, i, dst, &mut in_space) {
                    i = next;
                    continue;
                }
            }
            let end = match i + 2 >= no_closer_from {
                true => None,
                false => comment_closer(&src[i + 2..]).map(|end| i + 2 + end),
            };
            if end.is_none() {
                no_closer_from = no_closer_from.min(i + 2);
            }
            match end {
                Some(end) if src.get(i + 2) == Some(&b'!') && executable_end.is_none() => {
                    executable_end = Some(end);
                    i += opener_len(&src[i..end]);
                }
                Some(end) => {
                    if executable_end == Some(end) {
                        executable_end = None;
                    }
                    i = end + 2;
                }
                // An unclosed opener is dropped (an executable one with its
                // version: MySQL runs what follows to the end), and so is
                // each one right after it (`/*/*/*`, `/*!/*!`) in this
                // turn: nothing after them closes either. Inside an
                // executable comment whose `*/` overlaps this opener
                // (`/*/`), the run would skip past that `*/`: one at a time.
                None if executable_end.is_none() => i = past_unclosed_openers(src, i),
                None => i += opener_len(&src[i..]),
            }
            if !in_space {
                dst.push(b' ');
                in_space = true;
            }
            continue;
        }
        // Work::Blank: it and the blanks after it.
        if !in_space {
            dst.push(b' ');
            in_space = true;
        }
        i += blank_run(src, i, limit).max(1);
    }
}

/// How many bytes from `from` on (up to `limit`) are blanks, eight at a
/// time: a run of spaces (`q=+++...`, `%20%20...`) folds into one space
/// in one turn, not a turn a byte (59k lines/s for 8 KB of `+`).
fn blank_run(src: &[u8], from: usize, limit: usize) -> usize {
    const LOW: u64 = u64::from_le_bytes([0x7f; 8]);
    const ABOVE_SPACE: u64 = u64::from_le_bytes([0x5f; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let mut at = from;
    while at + 8 <= limit {
        let Some(word) = src.get(at..at + 8).and_then(|w| w.try_into().ok()) else {
            break;
        };
        let word = u64::from_le_bytes(word);
        // A byte above a space gets its high bit: past ASCII it has it,
        // below 0x80 adding 0x5f takes 0x21 and up there (no carry).
        let above = (((word & LOW) + ABOVE_SPACE) | word) & HIGH;
        if above != 0 {
            return at + above.trailing_zeros() as usize / 8 - from;
        }
        at += 8;
    }
    while at < limit && is_space(src[at]) {
        at += 1;
    }
    at - from
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The next of a seeded sequence of numbers that look random
    /// (xorshift): test input without a dependency.
    pub(in crate::logs) fn next_random(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }

    /// `N` bytes drawn from `alphabet`.
    fn drawn<const N: usize>(alphabet: &[u8], state: &mut u32) -> [u8; N] {
        std::array::from_fn(|_| alphabet[next_random(state) as usize % alphabet.len()])
    }

    #[test]
    fn a_text_without_escapes_is_normalized_as_it_is_with_one() {
        // A text without `%`, `&` or `\` is folded in one pass; after an
        // escape, it goes through the decoding passes, and must come out
        // the same (before the text, the escape's `~` changes nothing in
        // how its blanks and comments are read).
        let pieces = [
            "a", "Z", "Sel", "+", " ", "  ", "\t", "/*", "*/", "/*!50000", "'", "--", "#", "é",
            "Ж", "中", "\u{0}", ";", "<", "/", "*",
        ];
        let mut state = 7u32;
        for _ in 0..2_000 {
            let count = 1 + next_random(&mut state) as usize % 24;
            let text: String = (0..count)
                .map(|_| pieces[next_random(&mut state) as usize % pieces.len()])
                .collect();
            let with_escape = normalize(&format!("%7e{text}"));
            assert_eq!(
                Some(normalize(&text).as_str()),
                with_escape.strip_prefix('~'),
                "{text:?}"
            );
        }
    }

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
        // Decoded bytes that are not UTF-8 are replaced, each sequence once.
        assert_eq!(normalize("a%FFb%E2%82c%C3"), "a\u{fffd}b\u{fffd}c\u{fffd}");
        assert_eq!(normalize("a \t\n  b"), "a b");
        assert_eq!(normalize("100%"), "100%");
        assert_eq!(normalize("%zz"), "zz");
        assert_eq!(normalize("%S%E%L%E%C%T"), "select");
        assert_eq!(normalize("100% sure"), "100% sure");
        assert_eq!(normalize("1%01and%1F2"), "1 and 2");
        assert_eq!(normalize("/*unclosed"), " unclosed");
        assert_eq!(
            normalize("1 /*!50000UNION*/ /*!SELECT*/ 1"),
            "1 union select 1"
        );
        assert_eq!(normalize("a/*!b/*c*/d"), "a b d");
        assert_eq!(normalize("1)/*!0AND 1=2"), "1) and 1=2");
        assert_eq!(normalize("..%c0%af..%C1%9Cx%e0%80%ae"), "../..\\x.");
        assert_eq!(normalize("%c0%2e%c0%2e%c0%2f"), "../");
        assert_eq!(normalize("%uff0e%uff0e%u2215etc"), "../etc");
        assert_eq!(
            normalize("\\x27UNION\\x20SELECT \\x01 c:\\xyz"),
            "'union select \\x01 c:\\xyz"
        );
        assert_eq!(normalize("a/b/c"), "a/b/c");
    }

    #[test]
    fn short_numeric_entities_decode_as_the_general_decoder_decodes_them() {
        let digits = b"0123456789aAfFxX;g";
        let mut fast_ones = 0;
        for a in digits {
            for b in digits {
                for c in digits {
                    for d in digits {
                        for text in [
                            vec![b'&', b'#', *a, *b, *c, *d],
                            vec![b'&', b'#', *a, *b, *c],
                        ] {
                            let Some((byte, consumed)) = entity_ascii(&text) else {
                                continue;
                            };
                            fast_ones += 1;
                            let mut general = Vec::new();
                            assert_eq!(entity(&text, &mut general), consumed, "{text:?}");
                            assert_eq!(general, vec![byte], "{text:?}");
                        }
                    }
                }
            }
        }
        // 100 `&#DD;`, 128 `&#DDD;` and 128 hex pairs in four cases of `x`.
        assert!(fast_ones > 300, "{fast_ones}");
        assert_eq!(entity_ascii(b"&#39;"), Some((b'\'', 5)));
        assert_eq!(entity_ascii(b"&#128;"), None);
        assert_eq!(entity_ascii(b"&#x80;"), None);
        assert_eq!(entity_ascii(b"&#39"), None);
        assert_eq!(normalize("&#39;&#x3C;&#062;&#128;"), "'<>\u{80}");
    }

    #[test]
    fn iis_escapes_of_ascii_decode_as_the_general_decoder_decodes_them() {
        let digits = b"0123456789abcdefABCDEFgG";
        for u in [b'u', b'U'] {
            for a in digits {
                for b in digits {
                    for c in digits {
                        for d in digits {
                            let escape = [b'%', u, *a, *b, *c, *d];
                            let mut general = Vec::new();
                            let consumed = percent_escape(&escape, &mut general);
                            let fast = iis_ascii(&escape);
                            if let Some(byte) = fast {
                                assert_eq!((consumed, general), (6, vec![byte]), "{escape:?}");
                            } else {
                                let ascii = [*a, *b] == *b"00"
                                    && (b'0'..=b'7').contains(c)
                                    && d.is_ascii_hexdigit();
                                assert!(!ascii, "{escape:?}");
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(iis_ascii(b"%u0027"), Some(b'\''));
        assert_eq!(iis_ascii(b"%U007E"), Some(b'~'));
        assert_eq!(iis_ascii(b"%u0080"), None);
        assert_eq!(iis_ascii(b"%u002"), None);
        assert_eq!(normalize("%u0027%U0022%u003C%u0080"), "'\"<\u{80}");
    }

    #[test]
    fn a_percent_encoded_backslash_starts_a_hex_escape() {
        // wfuzz's `\x27UNION SELECT`, as a client sends it.
        assert_eq!(normalize("%5Cx27UNION%20SELECT"), "'union select");
        assert_eq!(
            normalize("%5Cx27%5Cx4F%5Cx52%20SELECT%20%2A"),
            "'or select *"
        );
        assert_eq!(normalize("c:%5Cxampp%5Cx"), "c:\\xampp\\x");
    }

    #[test]
    fn html_entities_are_undone_after_percent_escapes() {
        assert_eq!(normalize("&#x24;{jndi:ldap://x}"), "${jndi:ldap://x}");
        assert_eq!(normalize("%26%2360%3Bscript%26gt%3B"), "<script>");
        assert_eq!(
            normalize("&lt;svg onload&#61;alert&#40;1)"),
            "<svg onload=alert(1)"
        );
        assert_eq!(normalize("a=1&amp;b=2&c"), "a=1&b=2&c");
        assert_eq!(normalize("&#99999999;"), "&#99999999;");
        assert_eq!(normalize("tom&jerry"), "tom&jerry");
    }

    #[test]
    fn pluses_are_spaces_however_encoded() {
        assert_eq!(normalize("%2BADw-script%2BAD4-"), " adw-script ad4-");
        assert_eq!(normalize("1%2BAND%2B1"), "1 and 1");
        assert_eq!(normalize("%1%%27%%3B%S%E%L"), "1';sel");
        assert_eq!(normalize("%%32%65%%32%65%%32%66"), "../");
        assert_eq!(normalize("1+1"), "1 1");
    }

    #[test]
    fn runs_of_escapes_decode_as_one_escape_at_a_time() {
        let hebrew: String = "שלום עולם".bytes().map(|b| format!("%{b:02X}")).collect();
        assert_eq!(normalize(&hebrew), "שלום עולם");
        // A run broken by `%u`, an overlong lead, a bad escape and a double encoding.
        assert_eq!(
            normalize("%41%42%u0043%44%c0%af%45%zz%46%2541"),
            "abcd/ezzfa"
        );
        assert_eq!(normalize("%2e%2e%2f%2e%2e%2fetc"), "../../etc");
        assert_eq!(normalize("%41%4"), "a4");
    }

    #[test]
    fn escapes_decoded_in_groups_stop_where_a_group_breaks() {
        // Every place in a group of sixteen for the escape that breaks it.
        for at in 0..18 {
            let mut escapes = vec!["%41"; 40];
            let expected_before = "a".repeat(at);
            for (breaker, decoded) in [
                ("%u0042", "b"),
                ("%c0%af", "/"),
                ("%zz", "zz"),
                ("%2541", "a"),
                ("%e0%80%ae", "."),
                ("%4", "4"),
            ] {
                escapes[at] = breaker;
                let text: String = escapes.concat();
                let tail = "a".repeat(39 - at);
                assert_eq!(
                    normalize(&text),
                    format!("{expected_before}{decoded}{tail}"),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn chunks_where_escapes_may_start_are_found_the_same_with_vectors_as_without() {
        // The bytes that start escapes and the digits, letters and marks
        // around each bound of their classes.
        let alphabet = *b"%&#\\xX0919afAFgGzZ@[`{/:;  \x80\xc1";
        let mut state = 0x1234_5679_u32;
        for _ in 0..100_000 {
            let window: [u8; SCAN_WINDOW] = drawn(&alphabet, &mut state);
            for entities in [false, true] {
                assert_eq!(
                    chunk_escapes(&window, entities),
                    chunk_escapes_portable(&window, entities),
                    "{window:?} entities {entities}"
                );
            }
        }
    }

    #[test]
    fn places_where_escapes_may_start_are_told_the_same_with_vectors_as_without() {
        // The bytes that may start escapes, what may follow them around the
        // bounds of their classes, and the `;` that lets named entities in.
        let alphabet = *b"%&\\#;xX09/:@[`{aAzZ  \x80";
        let mut state = 0x7f4a_7c15_u32;
        for _ in 0..100_000 {
            let mut window: [u8; MAY_START_WINDOW] = drawn(&alphabet, &mut state);
            // Half of the windows without a `;`.
            if next_random(&mut state).is_multiple_of(2) {
                window
                    .iter_mut()
                    .filter(|b| **b == b';')
                    .for_each(|b| *b = b'a');
            }
            for entities in [false, true] {
                assert_eq!(
                    chunk_may_start(&window, entities),
                    chunk_may_start_portable(&window, entities),
                    "{window:?} entities {entities}"
                );
            }
        }
    }

    #[test]
    fn chunks_that_need_collapsing_are_found_the_same_with_vectors_as_without() {
        // Bytes around each case of `needs_work`: blanks, controls, a
        // comment opener and what is near them.
        let alphabet = [b' ', b'\t', 0, 0x1f, b'!', b'/', b'*', b'a', 0x80, 0xff];
        let mut state = 0x2545_f491_u32;
        for _ in 0..100_000 {
            let window: [u8; SCAN_CHUNK + 2] = drawn(&alphabet, &mut state);
            let portable = chunk_needs_work_portable(&window);
            assert_eq!(chunk_needs_work(&window), portable, "{window:?}");
            #[cfg(target_arch = "x86_64")]
            if let Some(avx2) = super::super::simd::Avx2::detect() {
                assert_eq!(avx2.needs_work(&window), portable, "{window:?}");
            }
            let flags: [u8; SCAN_CHUNK] = std::array::from_fn(|n| u8::from(window[n] == b' '));
            let by_byte = (0..SCAN_CHUNK).fold(0u32, |bits, n| bits | (u32::from(flags[n]) << n));
            assert_eq!(bits_of(&flags), by_byte);
        }
    }

    #[test]
    fn texts_that_need_collapsing_are_found_in_one_pass() {
        // What needs collapsing, said one byte at a time.
        let by_bytes = |text: &[u8]| {
            text.iter().any(|b| is_space(*b) && *b != b' ')
                || text.windows(2).any(|w| w == b"/*" || w == b"  ")
        };
        let units = [
            "a", " ", "\t", "/", "*", "/*", "  ", "\0", "x/", "*/", "\u{5d0}",
        ];
        for unit in units {
            for other in units {
                for count in [0, 1, 2, 30, 31, 32, 33, 64, 65] {
                    for pad in 0..3 {
                        // `other` alone, or at every place of a chunk.
                        let mut text = "b".repeat(pad);
                        text.push_str(&"ab".repeat(count));
                        text.push_str(other);
                        text.push_str(&unit.repeat(count % 3));
                        let text = text.as_bytes();
                        assert_eq!(needs_collapsing(text), by_bytes(text), "{text:?}");
                        let text = &text[pad.min(text.len())..];
                        assert_eq!(needs_collapsing(text), by_bytes(text), "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_escape_decodes_in_a_group_as_it_does_alone() {
        // Every pair of bytes after a `%`, at places of the groups of
        // sixteen among escapes of a byte that asks for no other pass: the
        // group's arithmetic against std's classes and [`percent_escape`],
        // one escape at a time.
        for high in 0..=255u8 {
            for low in 0..=255u8 {
                let mut alone = Vec::new();
                let escape = [b'%', high, low];
                let single = percent_escape(&escape, &mut alone);
                // `%e0` goes on before anything but `%80` or `%81`: the
                // last escape of the text.
                let is_plain = |at: usize| {
                    single == 3
                        && high.is_ascii_hexdigit()
                        && low.is_ascii_hexdigit()
                        && !matches!(alone[0], 0xc0 | 0xc1)
                        && (alone[0] != 0xe0 || at == 39)
                };
                // 33 and 39: after the groups, one escape at a time.
                for at in [0, 3, 8, 15, 16, 17, 31, 33, 39] {
                    let mut text = b"%80".repeat(40);
                    text[3 * at..3 * at + 3].copy_from_slice(&escape);
                    let (mut dst, mut pass) = (Vec::new(), Pass::default());
                    let run = plain_escapes(&text, &mut dst, &mut pass);
                    let mut expected = vec![0x80; at];
                    if is_plain(at) {
                        expected.extend_from_slice(&alone);
                        expected.extend(std::iter::repeat_n(0x80, 39 - at));
                    }
                    assert_eq!(run, 3 * expected.len(), "%{high:02x}{low:02x} at {at}");
                    assert_eq!(dst, expected, "%{high:02x}{low:02x} at {at}");
                    let more = expected.iter().any(|b| {
                        matches!(b, b'%' | b'&' | b'#' | b';' | b'\\') || b.is_ascii_alphanumeric()
                    });
                    assert_eq!(pass.may_hold_more, more, "%{high:02x}{low:02x} at {at}");
                }
            }
        }
    }

    /// The finder the decoding used before: every `%`, `\\` and (when
    /// the text may hold entities) `&`, one byte at a time.
    fn every_escape_byte(text: &[u8], entities: bool, from: usize) -> usize {
        (from..text.len())
            .find(|at| matches!(text[*at], b'%' | b'\\') || (entities && text[*at] == b'&'))
            .unwrap_or(text.len())
    }

    #[test]
    fn a_normalizer_kept_from_text_to_text_gives_what_a_new_one_gives() {
        // Long and short, decoded or not, collapsed or not, invalid UTF-8
        // once decoded: each leaves its buffers in another state.
        let texts = [
            "%252527%2520OR%25201%3D1".repeat(300),
            "a".to_owned(),
            "UNION/**/SELECT/*x*/password".to_owned(),
            "%FF%FE and more".to_owned(),
            "plain text".repeat(500),
            String::new(),
            "&lt;script&gt;".to_owned(),
            "a \t\n  b".to_owned(),
            "%u003cscript%u003e".repeat(100),
            "x".to_owned(),
        ];
        let mut kept = Normalizer::default();
        let mut out = Vec::new();
        for _ in 0..2 {
            for text in texts.iter().chain(texts.iter().rev()) {
                let normalized = kept.normalize_into(text, &mut out);
                assert_eq!(normalized, normalize(text), "{text:?}");
            }
        }
    }

    #[test]
    fn escapes_found_a_chunk_at_a_time_decode_as_found_byte_by_byte() {
        // Escapes decoded together when one follows another (`&#39;&#39;`)
        // are decoded here one turn of the loop each, as before.
        let units = [
            "&#39;",
            "&quot;",
            "%u0027",
            "%25d0",
            "%e0%a4%a8",
            "&#x",
            "&#",
            "&",
            "&#X4",
            "&#x3c;",
            "&#60",
            "&lt;",
            "&zz;",
            "&#99999999;",
            "%",
            "%%",
            "%4",
            "%41",
            "%u00",
            "%u0041",
            "%zz",
            "%c0%af",
            "\\",
            "\\x",
            "\\x4",
            "\\x41",
            "\\X7e",
            "a",
            ";",
            "#",
            "x",
            "%%32%65",
            "\u{5d0}",
            "&amp;",
            "word%20",
            "%2b",
            "%e0%a4",
            "%e1%80",
            "%c1",
            "%25",
            "&#60;",
            "&#099;",
            "%U003C",
            "%u0080",
            "%u00g1",
        ];
        let mut texts = Vec::new();
        for unit in units {
            for other in units {
                // Runs whose ends fall on every place of a chunk.
                for count in [1, 2, 10, 11, 12, 13, 33, 34, 35, 36, 100] {
                    for pad in 0..4 {
                        let mut text = "b".repeat(pad);
                        text.push_str(&unit.repeat(count));
                        text.push_str(other);
                        texts.push(text.clone());
                        text.push_str(&unit.repeat(count));
                        texts.push(text);
                    }
                }
            }
        }
        for text in texts {
            let (mut chunked, mut bytewise) = (Vec::new(), Vec::new());
            let text = text.as_bytes();
            let entities = may_hold_entities(text);
            let mut finder = EscapeFinder::new(text, entities);
            let found = decode_once_with(
                text,
                &mut chunked,
                entities,
                |from| finder.next(from),
                escapes_after,
            );
            let expected = decode_once_with(
                text,
                &mut bytewise,
                entities,
                |from| every_escape_byte(text, entities, from),
                |_, _, _, _| 0,
            );
            assert_eq!(
                (found.changed, found.may_hold_more),
                (expected.changed, expected.may_hold_more),
                "{:?}",
                String::from_utf8_lossy(text)
            );
            if expected.changed {
                assert_eq!(chunked, bytewise, "{:?}", String::from_utf8_lossy(text));
            }
        }
    }

    #[test]
    fn runs_found_a_chunk_at_a_time_collapse_as_one_byte_at_a_time() {
        let units = [
            " ", "  ", "\t", " \t", "\0", "/*", "*/", "/*!", "/*!50000", "/", "*", "a", "ab",
            "word ", "/**/", "x*/", "\n ", " /*", "/*! x*/ ", "'(<", "/x/",
        ];
        let mut texts = Vec::new();
        for unit in units {
            for other in units {
                for count in [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 70] {
                    for pad in 0..3 {
                        let mut text = "b".repeat(pad);
                        text.push_str(&unit.repeat(count));
                        text.push_str(other);
                        texts.push(text.clone());
                        text.push_str(&"c".repeat(count));
                        text.push_str(&unit.repeat(count));
                        texts.push(text);
                    }
                }
            }
        }
        for text in texts {
            let (mut chunked, mut bytewise) = (Vec::new(), Vec::new());
            strip_comments_and_collapse_with(text.as_bytes(), &mut chunked, plain_run, true);
            strip_comments_and_collapse_with(text.as_bytes(), &mut bytewise, |_, _, _| 1, false);
            assert_eq!(
                String::from_utf8_lossy(&chunked),
                String::from_utf8_lossy(&bytewise),
                "{text:?}"
            );
        }
    }

    #[test]
    fn comments_close_together_are_stripped_as_one_at_a_time() {
        use crate::logs::scan::tests::scrambled;
        let units = [
            "/*", "*/", "/**/", "/*/", "*", "/", "!", "/*!", "/*!1", "a", "bc", " ", "  ", "\t",
            "x*/",
        ];
        let mut texts = Vec::new();
        for seed in 0..3_000 {
            let bytes = 1 + seed as usize % 300;
            let text = scrambled(&units, bytes, seed, "", 0);
            // Repeated, then broken off at each length: the repetitions
            // written again end where the text stops repeating.
            let unit = &text[..text.len().min(1 + seed as usize % 13)];
            let mut repeated = unit.repeat(2 + seed as usize % 40);
            repeated.truncate(repeated.len() - seed as usize % unit.len());
            repeated.extend_from_slice(&text);
            texts.push(text);
            texts.push(repeated);
        }
        for text in texts {
            let (mut at_once, mut one_by_one) = (Vec::new(), Vec::new());
            strip_comments_and_collapse_with(&text, &mut at_once, plain_run, true);
            strip_comments_and_collapse_with(&text, &mut one_by_one, |_, _, _| 1, false);
            assert_eq!(
                String::from_utf8_lossy(&at_once),
                String::from_utf8_lossy(&one_by_one),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn a_run_of_unclosed_openers_is_passed_over_to_where_one_at_a_time_ends() {
        use crate::logs::scan::tests::scrambled;
        let one_at_a_time = |src: &[u8], mut at: usize| {
            while src[at..].starts_with(b"/*") {
                at += opener_len(&src[at..]);
            }
            at
        };
        let units = [
            "/*", "/*!", "/*!1", "/*!12", "/*!50000", "1", "!", "*", "/", "x",
        ];
        for seed in 0..3_000 {
            let unit = scrambled(&units[..5], 1 + seed as usize % 12, seed, "", 0);
            let mut text = unit.repeat(1 + seed as usize % 30);
            text.truncate(text.len() - seed as usize % 4 % text.len());
            text.extend(scrambled(&units, seed as usize % 20, seed + 1, "", 0));
            if !text.starts_with(b"/*") {
                continue;
            }
            assert_eq!(
                past_unclosed_openers(&text, 0),
                one_at_a_time(&text, 0),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn a_repeated_segment_between_comments_is_written_again_to_where_the_text_changes() {
        // Comments ending at 5 and 11 (`/*/*/` then `*/*/*/`): the segment
        // from 5 repeats to byte 605, where `x` breaks it.
        let mut text = b"/*/*/".to_vec();
        text.extend_from_slice(&b"*/*/*/".repeat(100));
        text.extend_from_slice(b"x/**/");
        let first = CommentEnd::after(None, 5, 1);
        let second = CommentEnd::after(Some(first), 11, 3);
        let third = CommentEnd::after(Some(second), 17, 5);
        // Each segment writes a star and a space.
        let mut out = b" * * ".to_vec();
        assert_eq!(first.repeated_up_to(&second, &text, &mut out), None);
        assert_eq!(second.repeated_up_to(&third, &text, &mut out), Some(605));
        let written = format!(" {}", "* ".repeat(100));
        assert_eq!(String::from_utf8_lossy(&out), written);
        let mut stripped = Vec::new();
        strip_comments_and_collapse(&text, &mut stripped);
        assert_eq!(String::from_utf8_lossy(&stripped), format!("{written}x "));
    }

    #[test]
    fn runs_of_blanks_are_measured_the_same_eight_at_a_time_as_one_by_one() {
        let alphabet = [
            0x00, 0x09, 0x1f, 0x20, 0x21, 0x2b, 0x41, 0x7f, 0x80, 0xa0, 0xff,
        ];
        let mut state = 0x5eed_b1a4_u32;
        for _ in 0..20_000 {
            let len = next_random(&mut state) as usize % 40;
            // Mostly blanks, so that runs are long.
            let text: Vec<u8> = (0..len)
                .map(|_| match next_random(&mut state) % 4 {
                    0 => alphabet[next_random(&mut state) as usize % alphabet.len()],
                    _ => b' ',
                })
                .collect();
            for from in 0..text.len() {
                for limit in [text.len(), (from + 9).min(text.len())] {
                    let one_by_one = text[from..limit]
                        .iter()
                        .take_while(|b| is_space(**b))
                        .count();
                    assert_eq!(
                        blank_run(&text, from, limit),
                        one_by_one,
                        "{text:?} {from} {limit}"
                    );
                }
            }
        }
    }

    #[test]
    fn percent_encoded_devanagari_and_thai_decode_in_groups() {
        // Each of their characters starts with %e0, once taken for an
        // overlong lead: every group went escape by escape (18k lines/s
        // for 8 KB of them, where Hebrew's ran at 100k).
        for text in ["नमस्ते दुनिया नमस्ते", "สวัสดีชาวโลก สวัสดี"]
        {
            let escaped: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
            let group: &[u8; GROUP_BYTES] = escaped.as_bytes()[..GROUP_BYTES].try_into().unwrap();
            let (bytes, _, _) = group_decoder()(group).expect("a group of plain escapes");
            assert_eq!(&bytes[..], &text.as_bytes()[..ESCAPE_GROUP]);
            assert_eq!(normalize(&escaped), text);
        }
        // A last %e0 is left to the next group, which sees what follows it.
        let last_e0: String = "%41".repeat(15) + "%e0%80%ae";
        let group: &[u8; GROUP_BYTES] = last_e0.as_bytes()[..GROUP_BYTES].try_into().unwrap();
        assert_eq!(
            decode_group(group).map(|(_, _, last_e0)| last_e0),
            Some(true)
        );
        assert_eq!(normalize(&last_e0), "a".repeat(15) + ".");
        // Before %80 or %81 anywhere, an %e0 stops the group.
        let overlong: String = "%41".repeat(3) + "%e0%81%9c" + &"%41".repeat(10);
        let group: &[u8; GROUP_BYTES] = overlong.as_bytes()[..GROUP_BYTES].try_into().unwrap();
        assert_eq!(decode_group(group), None);
        assert_eq!(normalize(&overlong), "aaa\\".to_owned() + &"a".repeat(10));
    }

    #[test]
    fn text_encoded_twice_decodes_as_one_escape_at_a_time() {
        let twice =
            |text: &str| -> String { text.bytes().map(|b| format!("%25{b:02X}")).collect() };
        for text in ["привет мир", "नमस्ते", "' or 1=1--", "../../etc/passwd"]
        {
            assert_eq!(normalize(&twice(text)), normalize(text), "{text}");
            // Three times over: three passes.
            let thrice = twice(text).replace("%25", "%2525");
            assert_eq!(normalize(&thrice), normalize(text), "{text}");
        }
        // Runs broken by what is not `%25` and two hex digits.
        let (mut dst, mut pass) = (Vec::new(), Pass::default());
        assert_eq!(encoded_twice(b"%25D0%25bf%25zz%2541", &mut dst), 10);
        assert_eq!(dst, b"%D0%bf");
        assert_eq!(plain_escapes(b"%25zz", &mut dst, &mut pass), 3);
        // (`%zz` is no escape: its `%` is dropped, as ASP does.)
        assert_eq!(normalize("%25D0%25BF%25zz%2541%41%252e%2e"), "пzzaa..");
        // Four times over is one more than is undone.
        assert_eq!(normalize("%25252541"), "%41");
    }

    #[test]
    fn text_encoded_twice_decodes_the_same_three_escapes_at_a_time() {
        // A run broken at each byte of its first three escapes, and after.
        let run = b"%25D0%25bf%25E0%25A4%25a8".to_vec();
        for broken in 0..run.len() {
            for byte in [b'x', b'%', b'0', b'G', b'/'] {
                let mut text = run.clone();
                text[broken] = byte;
                let (mut dst, mut expected) = (Vec::new(), Vec::new());
                let consumed = encoded_twice(&text, &mut dst);
                // One escape at a time, as before.
                let mut at = 0;
                while let [b'%', b'2', b'5', high, low, ..] = text[at..] {
                    if !(is_hex_digit(high) & is_hex_digit(low)) {
                        break;
                    }
                    expected.extend_from_slice(&[b'%', high, low]);
                    at += 5;
                }
                assert_eq!(
                    (consumed, &dst),
                    (at, &expected),
                    "{:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    #[test]
    fn runs_of_short_escapes_are_told_the_same_by_the_vector_and_the_portable_code() {
        let checks: [(&[u8; 16], Check, Check); 3] = [
            (
                b"%25D0%25bf%25E0x",
                three_encoded_twice,
                three_encoded_twice_portable,
            ),
            (
                b"&#39;&#60;&#09;x",
                three_decimal_entities,
                three_decimal_entities_portable,
            ),
            (
                b"%u0027%U007fxxxx",
                two_iis_escapes,
                two_iis_escapes_portable,
            ),
        ];
        for (start, vector, portable) in checks {
            told_the_same(start, vector, portable);
        }
    }

    type Check = fn(&[u8; 16]) -> bool;

    /// `vector` and `portable` tell the same of 100,000 windows made from
    /// `start` with a few bytes changed to likely ones.
    fn told_the_same(start: &[u8; 16], vector: Check, portable: Check) {
        let alphabet = b"%25aAfFgG0789/&#;uU";
        let mut state = 0x9e37_79b9_u32;
        let mut told = [0; 2];
        for _ in 0..100_000 {
            let mut window = *start;
            // A few bytes changed to likely ones, anywhere.
            for _ in 0..(state % 3) {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let at = state as usize % 16;
                window[at] = alphabet[(state >> 8) as usize % alphabet.len()];
            }
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let answer = vector(&window);
            assert_eq!(
                answer,
                portable(&window),
                "{:?}",
                String::from_utf8_lossy(&window)
            );
            told[usize::from(answer)] += 1;
        }
        // Both answers were given, many times.
        assert!(told.iter().all(|count| *count > 1_000), "{told:?}");
    }

    #[test]
    fn escape_bytes_dense_after_a_chunk_are_found_without_a_search_and_as_one_finds_them() {
        assert_eq!(near_escape_byte(b"#x&#x", true), Some(2));
        assert_eq!(near_escape_byte(b"#x&#x", false), None);
        assert_eq!(near_escape_byte(b"ab\\x", false), Some(2));
        assert_eq!(near_escape_byte(b"abcd%", true), None);
        // `&#x` a chunk after another: found near, then searched for
        // again once the text is plain; every `%41` decoded.
        let text = format!("{}{}%41", "&#x".repeat(40), "z".repeat(50));
        let mut finder = EscapeFinder::new(text.as_bytes(), may_hold_entities(text.as_bytes()));
        assert_eq!(finder.next(0), text.len() - 3);
        assert!(!finder.dense);
        assert_eq!(
            normalize(&text),
            format!("{}{}a", "&#x".repeat(40), "z".repeat(50))
        );
    }

    #[test]
    fn an_ampersand_before_other_than_a_letter_does_not_look_for_the_next_semicolon() {
        let text = format!("{};", "&)&=".repeat(100));
        let mut finder = EscapeFinder::new(text.as_bytes(), may_hold_entities(text.as_bytes()));
        assert_eq!(finder.next(0), text.len());
        assert_eq!(finder.semicolon, None);
        assert_eq!(finder.number, None);
    }

    #[test]
    fn a_query_after_its_one_semicolon_is_searched_for_percent_and_backslash_alone() {
        // `/a;jsessionid=1?a=1&b=2&...`: no `&` of the query starts an
        // entity up to the next `&#`, nor up to where a `;` is near; what
        // starts one there, and any `%` or `\x` before, is still decoded.
        let run = "a=1&b".repeat(300);
        let text = format!(";{run}%41{run}&#39;{run}&lt;{run}\\x41;{run}");
        let at = |part: &str| text.find(part).unwrap();
        let (percent, number, named, backslash) = (at("%41"), at("&#39;"), at("&lt;"), at("\\x41"));
        let mut finder = EscapeFinder::new(text.as_bytes(), may_hold_entities(text.as_bytes()));
        assert_eq!(finder.next(0), percent);
        // Up to where the `;` that ends the `&#39;` is within reach.
        assert_eq!(finder.no_entity_before, number + 4 + 1 - MAX_ENTITY);
        let mut looked_at = vec![percent];
        let mut next = finder.next(percent + 1);
        while next < text.len() {
            looked_at.push(next);
            next = finder.next(next + 1);
        }
        for place in [number, named, backslash] {
            assert!(looked_at.contains(&place), "{place} {looked_at:?}");
        }
        // Besides those, only the `&` of a chunk within reach of a `;` (of
        // 1,200).
        let semicolons: Vec<usize> = (0..text.len())
            .filter(|i| text.as_bytes()[*i] == b';')
            .collect();
        for place in &looked_at {
            let near = semicolons
                .iter()
                .any(|s| *s + SCAN_CHUNK >= *place && *s < place + MAX_ENTITY);
            assert!(near || [percent, backslash].contains(place), "{place}");
        }
        assert!(looked_at.len() <= 24, "{looked_at:?}");
        let expected = format!(";{run}a{run}'{run}<{run}a;{run}");
        assert_eq!(normalize(&text), expected);
    }

    #[test]
    fn an_ampersand_with_no_semicolon_near_starts_no_escape() {
        // A query of many parameters with one `;` may hold entities, yet
        // none of its `&` is followed by a `;` near enough to end one.
        let text = format!(";{}", "a=1&b".repeat(500));
        let mut finder = EscapeFinder::new(text.as_bytes(), may_hold_entities(text.as_bytes()));
        assert_eq!(finder.next(0), text.len());
        assert_eq!(normalize(&text), text);
        // Nor the `&` at the very start, with its `;` far after it.
        let text = format!("&b{};", "x".repeat(100));
        let mut finder = EscapeFinder::new(text.as_bytes(), true);
        assert_eq!(finder.next(0), text.len());
        // Near one, the named entity is found and decoded, and only the
        // `&` of the chunks within reach of its `;` are looked at closer
        // (of 200).
        let text = format!("{}&lt;{}", "a=1&b".repeat(100), "a=1&b".repeat(100));
        let mut finder = EscapeFinder::new(text.as_bytes(), true);
        let mut looked_at = Vec::new();
        let mut at = finder.next(0);
        while at < text.len() {
            looked_at.push(at);
            at = finder.next(at + 1);
        }
        assert!(looked_at.contains(&500), "{looked_at:?}");
        assert!(looked_at.len() <= 16, "{looked_at:?}");
        assert_eq!(normalize(&text), text.replace("&lt;", "<"));
    }

    #[test]
    fn a_slash_that_opens_no_comment_is_copied_with_the_run_around_it() {
        // Scrambled punctuation: a `/` every few bytes, seldom a `*` after.
        let text = b"'(/<>;/|&/$[/]=-#";
        let mut runs = Vec::new();
        let mut out = Vec::new();
        let counted = |src: &[u8], from, limit| {
            let run = plain_run(src, from, limit);
            runs.push(run);
            run
        };
        strip_comments_and_collapse_with(text, &mut out, counted, true);
        assert_eq!(out, text);
        assert_eq!(runs, [text.len()]);
    }

    #[test]
    fn a_long_run_of_percent_signs_decodes_as_its_last_three() {
        for tail in [
            "", "41", "%41", "2541", "%2541", "a", "%2e", "x", "%", "%%32%65", "u0041",
        ] {
            let three = normalize(&format!("%%%{tail}"));
            let three_encoded = normalize(&format!("%25%25%25{tail}"));
            for n in 4..70 {
                let text = format!("{}{tail}", "%".repeat(n));
                assert_eq!(normalize(&text), three, "{text:?}");
                let encoded = format!("{}{tail}", "%25".repeat(n));
                assert_eq!(normalize(&encoded), three_encoded, "{encoded:?}");
            }
        }
    }

    #[test]
    fn a_comment_closed_far_from_its_opener_is_stripped() {
        for gap in [0, 13, 14, 15, 16, 17, 40, 300] {
            let filler = "x".repeat(gap);
            assert_eq!(
                normalize(&format!("union/*{filler}*/select")),
                "union select",
                "{gap}"
            );
            let stars = "*".repeat(gap);
            assert_eq!(
                normalize(&format!("union/*{stars}*/select")),
                "union select",
                "{gap}"
            );
            assert_eq!(
                normalize(&format!("1/*!{filler} union*/2")),
                format!("1 {filler} union 2").replace("  ", " "),
                "{gap}"
            );
        }
        assert_eq!(normalize(&"/*!".repeat(50)), " ");
    }

    #[test]
    fn a_run_of_unclosed_comment_openers_is_dropped_as_one_space() {
        // Each as before runs were taken at once; `*/` closes even
        // inside a run (`/*/*/` is a comment).
        for (text, normalized) in [
            ("x/*/*!7/*!/*y", "x y"),
            ("x/*!1/*!2/*!3", "x "),
            ("/*!12345union/*!select", " union select"),
            ("1/*/*x/*!/*", "1 x "),
            ("a/*/*/*b", "a *b"),
            // The executable comment's `*/` begins inside `/*/`: what
            // follows it is kept.
            ("a/*!50000/*/*!1b", "a *!1b"),
            ("a/*!1 b/*/*/ c*/d", "a b c*/d"),
            ("a/*/*!*/b", "a b"),
        ] {
            assert_eq!(normalize(text), normalized, "{text}");
        }
        assert_eq!(normalize(&format!("1{}x", "/*!".repeat(4_000))), "1 x");
    }

    #[test]
    fn the_byte_after_an_executable_comment_closed_inside_an_opener_is_kept() {
        // Stepping past the `*/` from where the opener `/*/` ended cut the
        // first byte of `中`.
        assert_eq!(normalize("a/*!50000 b/*/中"), "a b 中");
        assert_eq!(normalize("a/*!50000 b/*/c"), "a b c");
    }

    #[test]
    fn non_latin_text_is_kept_and_not_folded() {
        assert_eq!(
            normalize("%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82+ABC"),
            "Привет abc"
        );
        assert_eq!(normalize("%c0%af"), "/");
        assert_eq!(normalize("%c0x"), "\u{fffd}x");
    }
}
