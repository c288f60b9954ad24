//! The vector code of normalization.
//!
//! Sixteen plain percent-escapes (`%D7%A9...`, what browsers send for
//! non-Latin text) are decoded in a few vector instructions with SSSE3's
//! byte shuffle. x86-64's baseline (SSE2) has no shuffle by bytes: there,
//! taking the digits from every third byte is most of the work of
//! [`super::normalize::decode_group`] (11 instructions an escape, 8 here;
//! percent-encoded text 15 % faster end to end).
//!
//! The flags of a chunk of text (where an escape may start, where the
//! collapse has work) become bits with SSE2's `pmovmskb`, one instruction
//! where the portable way takes a multiply a word.
//!
//! The only unsafe code is the loads and stores of vectors, over arrays of
//! their size, and the calls of vector instructions: SSE2's, which every
//! x86-64 CPU has, and SSSE3's only where the CPU has it.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use std::arch::x86_64::{
    __m128i, __m256i, _mm256_add_epi8, _mm256_and_si256, _mm256_andnot_si256, _mm256_blendv_epi8,
    _mm256_castsi256_si128, _mm256_cmpeq_epi8, _mm256_extracti128_si256, _mm256_loadu_si256,
    _mm256_max_epu8, _mm256_min_epu8, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    _mm256_slli_epi16, _mm_add_epi8, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8,
    _mm_loadl_epi64, _mm_loadu_si128, _mm_max_epu8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
    _mm_set1_epi8, _mm_setr_epi8, _mm_shuffle_epi8, _mm_slli_epi16, _mm_srli_si128,
    _mm_storeu_si128,
};

use super::normalize::{
    blocks_decoded, plain_run_with, Block, Pass, ESCAPE_GROUP, GROUP_BYTES, SCAN_CHUNK,
    SPARSE_BLOCK, SPARSE_WINDOW, WIDE_BLOCK, WIDE_WINDOW,
};

/// Thirty-two bytes of 0 or 1 to thirty-two bits, bit `n` from byte `n`.
#[inline(always)]
pub(super) fn bits_of(flags: &[u8; 32]) -> u32 {
    let at = flags.as_ptr();
    // SAFETY: SSE2 is part of x86-64; the loads read bytes 0..16 and
    // 16..32 of an array of 32 (unaligned loads).
    unsafe {
        let low = _mm_loadu_si128(at.cast());
        let high = _mm_loadu_si128(at.add(16).cast());
        // Each flag to its byte's top bit, which `pmovmskb` gathers.
        let low = _mm_movemask_epi8(_mm_slli_epi16(low, 7)) as u16;
        let high = _mm_movemask_epi8(_mm_slli_epi16(high, 7)) as u16;
        u32::from(low) | (u32::from(high) << 16)
    }
}

/// Where in the 32 bytes of `window[1..33]` the collapse has work (see
/// `needs_work`), bit `n` for byte `1 + n`: the byte before each and the
/// byte after are in the window too.
#[inline(always)]
pub(super) fn needs_work(window: &[u8; 34]) -> u32 {
    let at = window.as_ptr();
    let half = |n: usize| {
        // SAFETY: SSE2 is part of x86-64; the loads read 16 bytes from
        // offsets 0 to 18 of an array of 34 (unaligned loads).
        unsafe {
            let before = _mm_loadu_si128(at.add(16 * n).cast());
            let byte = _mm_loadu_si128(at.add(16 * n + 1).cast());
            let after = _mm_loadu_si128(at.add(16 * n + 2).cast());
            let space = _mm_set1_epi8(b' ' as i8);
            // Whitespace and control bytes: at most a space.
            let blank = |x| _mm_cmpeq_epi8(_mm_min_epu8(x, space), x);
            // A blank byte other than a space after a non-blank one.
            let lone_space = _mm_andnot_si128(blank(before), _mm_cmpeq_epi8(byte, space));
            let collapsed = _mm_andnot_si128(lone_space, blank(byte));
            let opener = _mm_and_si128(
                _mm_cmpeq_epi8(byte, _mm_set1_epi8(b'/' as i8)),
                _mm_cmpeq_epi8(after, _mm_set1_epi8(b'*' as i8)),
            );
            _mm_movemask_epi8(_mm_or_si128(collapsed, opener)) as u16
        }
    };
    u32::from(half(0)) | (u32::from(half(1)) << 16)
}

/// [`super::normalize`]'s `chunk_escapes` in SSE2: each position's
/// bytes compared where the portable code classes each byte by a branch-free
/// sum of conditions (about 250 instructions a chunk, 150 here).
/// Not inlined: inlined in the escape finder, the compiler took the
/// window apart into bytes and built the vectors again from them (350).
#[inline(never)]
pub(super) fn chunk_escapes(window: &[u8; 35], entities: bool) -> (u32, u32) {
    let at = window.as_ptr();
    let half = |n: usize| {
        // SAFETY: SSE2 is part of x86-64; the loads read 16 bytes from
        // offsets 0 to 19 of an array of 35 (unaligned loads).
        unsafe {
            let byte = |offset: usize| _mm_loadu_si128(at.add(16 * n + offset).cast());
            let (b0, b1, b2, b3) = (byte(0), byte(1), byte(2), byte(3));
            let ex = |x| equals(case_folded(x), b'x');
            let number = _mm_and_si128(
                equals(b1, b'#'),
                _mm_or_si128(digit(b2), _mm_and_si128(ex(b2), hex_digit(b3))),
            );
            let backslash = _mm_and_si128(
                _mm_and_si128(equals(b0, b'\\'), ex(b1)),
                _mm_and_si128(hex_digit(b2), hex_digit(b3)),
            );
            let amp = match entities {
                true => equals(b0, b'&'),
                false => _mm_set1_epi8(0),
            };
            let starts = _mm_or_si128(
                _mm_or_si128(percent_start(b0, b1), backslash),
                _mm_and_si128(amp, number),
            );
            let named = _mm_and_si128(amp, letter(b1));
            (
                _mm_movemask_epi8(starts) as u16,
                _mm_movemask_epi8(named) as u16,
            )
        }
    };
    let ((starts_low, named_low), (starts_high, named_high)) = (half(0), half(1));
    (
        u32::from(starts_low) | (u32::from(starts_high) << 16),
        u32::from(named_low) | (u32::from(named_high) << 16),
    )
}

/// [`super::normalize`]'s `chunk_may_start` in SSE2: where an escape may
/// start in the 32 positions of `window`'s first bytes, told from each
/// byte and the one after it; named entities only when a `;` is in the
/// window (45 bytes: the chunk, the byte after it, the longest entity's
/// more).
#[inline(never)]
pub(super) fn chunk_may_start(window: &[u8; 45], entities: bool) -> u32 {
    let at = window.as_ptr();
    // SAFETY: SSE2 is part of x86-64; the loads read 16 bytes from offsets
    // 0 to 29 of an array of 45 (unaligned loads).
    unsafe {
        let load = |offset: usize| _mm_loadu_si128(at.add(offset).cast());
        let semicolons = _mm_or_si128(
            _mm_or_si128(equals(load(0), b';'), equals(load(16), b';')),
            equals(load(29), b';'),
        );
        let named = _mm_movemask_epi8(semicolons) != 0;
        let half = |n: usize| {
            let (byte, next) = (load(16 * n), load(16 * n + 1));
            let after_ampersand = match named {
                true => _mm_or_si128(letter(next), equals(next, b'#')),
                false => equals(next, b'#'),
            };
            let entity = match entities {
                true => _mm_and_si128(equals(byte, b'&'), after_ampersand),
                false => _mm_set1_epi8(0),
            };
            let backslash = _mm_and_si128(equals(byte, b'\\'), equals(case_folded(next), b'x'));
            let starts = _mm_or_si128(_mm_or_si128(percent_start(byte, next), entity), backslash);
            _mm_movemask_epi8(starts) as u16
        };
        u32::from(half(0)) | (u32::from(half(1)) << 16)
    }
}

/// Proof that this CPU has SSSE3: made only by [`Ssse3::detect`], so the
/// SSSE3 code cannot be called safely where the CPU lacks it.
#[derive(Clone, Copy)]
pub(super) struct Ssse3(());

impl Ssse3 {
    /// `None` when the CPU has no SSSE3 (std caches the answer: an atomic
    /// load).
    pub(super) fn detect() -> Option<Self> {
        is_x86_feature_detected!("ssse3").then_some(Self(()))
    }

    /// [`super::normalize::decode_group`] with SSSE3.
    pub(super) fn decode_group(
        self,
        group: &[u8; GROUP_BYTES],
    ) -> Option<([u8; ESCAPE_GROUP], bool, bool)> {
        // SAFETY: `self` exists only where `detect` found SSSE3.
        unsafe { decode_group_ssse3(group) }
    }

    /// [`super::normalize::decode_block`] with SSSE3.
    #[cfg(test)]
    pub(super) fn decode_block(
        self,
        window: &[u8; SPARSE_WINDOW],
        entities: bool,
    ) -> Option<Block> {
        // SAFETY: `self` exists only where `detect` found SSSE3.
        unsafe { decode_block_ssse3(window, entities) }
    }

    /// `sparse_escapes` of [`super::normalize`] with SSSE3.
    pub(super) fn sparse_escapes(
        self,
        text: &[u8],
        dst: &mut Vec<u8>,
        entities: bool,
        pass: &mut Pass,
    ) -> usize {
        // SAFETY: `self` exists only where `detect` found SSSE3.
        unsafe { sparse_escapes_ssse3(text, dst, entities, pass) }
    }
}

/// Proof that this CPU has AVX2 (and so SSSE3): made only by
/// [`Avx2::detect`].
#[derive(Clone, Copy)]
pub(super) struct Avx2(());

impl Avx2 {
    /// `None` when the CPU has no AVX2 (std caches the answer).
    pub(super) fn detect() -> Option<Self> {
        is_x86_feature_detected!("avx2").then_some(Self(()))
    }

    /// [`super::normalize::decode_block`] of 32 bytes with AVX2.
    #[cfg(test)]
    pub(super) fn decode_block(
        self,
        window: &[u8; WIDE_WINDOW],
        entities: bool,
    ) -> Option<Block<WIDE_BLOCK>> {
        let mut out = [MaybeUninit::new(0); WIDE_BLOCK];
        // SAFETY: `self` exists only where `detect` found AVX2.
        let placed = unsafe { decode_wide_block_avx2(window, entities, &mut out) }?;
        Some(Block {
            bytes: out.map(|byte| {
                // SAFETY: every byte was initialized above.
                unsafe { byte.assume_init() }
            }),
            len: placed.len,
            consumed: placed.consumed,
            escapes: placed.escapes,
            more: placed.more,
        })
    }

    /// [`needs_work`] with AVX2: the 32 bytes at once.
    #[cfg(test)]
    pub(super) fn needs_work(self, window: &[u8; SCAN_CHUNK + 2]) -> u32 {
        // SAFETY: `self` exists only where `detect` found AVX2.
        unsafe { needs_work_wide(window) }
    }

    /// `plain_run` of [`super::normalize`] with AVX2: a chunk of 32
    /// bytes in one vector, where SSE2 takes two halves.
    pub(super) fn plain_run(self, src: &[u8], from: usize, limit: usize) -> usize {
        // SAFETY: `self` exists only where `detect` found AVX2.
        unsafe { plain_run_avx2(src, from, limit) }
    }

    /// `sparse_escapes` of [`super::normalize`] with AVX2: 32 bytes a
    /// block, where SSSE3's blocks of 16 spent as long on each (the work
    /// of a block is the same number of instructions at either width).
    pub(super) fn sparse_escapes(
        self,
        text: &[u8],
        dst: &mut Vec<u8>,
        entities: bool,
        pass: &mut Pass,
    ) -> usize {
        // SAFETY: `self` exists only where `detect` found AVX2.
        unsafe { sparse_escapes_avx2(text, dst, entities, pass) }
    }
}

/// For each set of kept bytes among eight (bit `n`: byte `n`), where each
/// kept byte is, in order, for a shuffle (0 after them), and how many.
const KEPT_AT: [[u8; 8]; 256] = {
    let mut table = [[0u8; 8]; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut n, mut kept) = (0, 0);
        while n < 8 {
            if mask & (1 << n) != 0 {
                table[mask][kept] = n as u8;
                kept += 1;
            }
            n += 1;
        }
        mask += 1;
    }
    table
};
// A table, not `count_ones`: SSSE3 does not promise POPCNT.
const KEPT: [u8; 256] = {
    let mut count = [0u8; 256];
    let mut mask = 0;
    while mask < 256 {
        count[mask] = (mask as u8).count_ones() as u8;
        mask += 1;
    }
    count
};

/// For each count `k` of bytes kept from the low eight, the shuffle that
/// moves a vector up by `k` bytes (0 below).
const MOVED_UP: [[u8; 16]; 9] = {
    let mut table = [[0x80u8; 16]; 9];
    let mut k = 0;
    while k < 9 {
        let mut i = k;
        while i < 16 {
            table[k][i] = (i - k) as u8;
            i += 1;
        }
        k += 1;
    }
    table
};

/// The bytes of `bytes` whose bits are set in `kept`, in order, in one
/// vector (no store of a half and load of the whole, which stalls), and
/// how many.
#[target_feature(enable = "ssse3")]
#[inline]
fn compress(bytes: __m128i, kept: u16) -> (__m128i, usize) {
    let [low, high] = kept.to_le_bytes().map(usize::from);
    // SAFETY: loads the 8 bytes of an array of 8, twice, and the 16 of an
    // array of 16 (unaligned loads).
    let order = unsafe {
        let low_order = _mm_loadl_epi64(KEPT_AT[low].as_ptr().cast());
        let high_order = _mm_add_epi8(
            _mm_loadl_epi64(KEPT_AT[high].as_ptr().cast()),
            _mm_set1_epi8(8),
        );
        let up = _mm_loadu_si128(MOVED_UP[usize::from(KEPT[low])].as_ptr().cast());
        _mm_or_si128(low_order, _mm_shuffle_epi8(high_order, up))
    };
    (
        _mm_shuffle_epi8(bytes, order),
        usize::from(KEPT[low] + KEPT[high]),
    )
}

#[target_feature(enable = "ssse3")]
fn sparse_escapes_ssse3(text: &[u8], dst: &mut Vec<u8>, entities: bool, pass: &mut Pass) -> usize {
    blocks_decoded(text, dst, pass, |window| {
        decode_block_ssse3(window, entities)
    })
}

#[target_feature(enable = "ssse3")]
#[inline]
fn decode_block_ssse3(window: &[u8; SPARSE_WINDOW], entities: bool) -> Option<Block> {
    let at = window.as_ptr();
    // SAFETY: the loads read bytes 0..16, 1..17 and 2..18 of an array of
    // 18 (unaligned loads).
    let (byte, high, low) = unsafe {
        (
            _mm_loadu_si128(at.cast()),
            _mm_loadu_si128(at.add(1).cast()),
            _mm_loadu_si128(at.add(2).cast()),
        )
    };
    let percent = equals(byte, b'%');
    let escape = _mm_and_si128(percent, _mm_and_si128(hex_digit(high), hex_digit(low)));
    let mut other = _mm_or_si128(_mm_andnot_si128(escape, percent), equals(byte, b'\\'));
    if entities {
        other = _mm_or_si128(other, equals(byte, b'&'));
    }
    // High digits are at most 15: shifted by 4 in 16-bit lanes, no bit
    // crosses into the byte above.
    let decoded = _mm_or_si128(_mm_slli_epi16(digit_value(high), 4), digit_value(low));
    let lead = _mm_or_si128(
        equals(_mm_and_si128(decoded, _mm_set1_epi8(0xfeu8 as i8)), 0xc0),
        equals(decoded, 0xe0),
    );
    let refused = _mm_or_si128(other, _mm_and_si128(escape, lead));
    if _mm_movemask_epi8(refused) != 0 {
        return None;
    }
    let escapes = _mm_movemask_epi8(escape) as u32;
    // An escape's digits are dropped, those of one at the end past the
    // block too.
    let digits = (escapes << 1) | (escapes << 2);
    let kept = !digits & 0xffff;
    let bytes = _mm_or_si128(
        _mm_and_si128(escape, decoded),
        _mm_andnot_si128(escape, byte),
    );
    let (kept, len) = compress(bytes, kept as u16);
    let mut block = Block {
        bytes: [0; SPARSE_BLOCK],
        len,
        consumed: SPARSE_BLOCK + (digits >> SPARSE_BLOCK).count_ones() as usize,
        escapes: escapes != 0,
        more: _mm_movemask_epi8(_mm_and_si128(escape, may_hold_more(decoded))) != 0,
    };
    // SAFETY: stores 16 bytes into an array of 16 (unaligned store).
    unsafe { _mm_storeu_si128(block.bytes.as_mut_ptr().cast(), kept) };
    Some(block)
}

#[target_feature(enable = "avx2")]
fn sparse_escapes_avx2(text: &[u8], dst: &mut Vec<u8>, entities: bool, pass: &mut Pass) -> usize {
    let mut at = 0;
    while let Some(window) = text
        .get(at..at + WIDE_WINDOW)
        .and_then(|w| <&[u8; WIDE_WINDOW]>::try_from(w).ok())
    {
        dst.reserve(WIDE_BLOCK);
        let Some(out) = dst.spare_capacity_mut().first_chunk_mut::<WIDE_BLOCK>() else {
            break;
        };
        let Some(block) = decode_wide_block_avx2(window, entities, out) else {
            break;
        };
        // SAFETY: the decoder wrote the first `block.len` bytes of the
        // spare capacity (see `Placed`).
        unsafe { dst.set_len(dst.len() + block.len) };
        at += block.consumed;
        if !block.escapes {
            return at;
        }
        pass.changed = true;
        pass.may_hold_more |= block.more;
    }
    // The blocks of 16 go on where one of 32 was refused (for what is in
    // its second half) or the text left is shorter.
    at + blocks_decoded(&text[at..], dst, pass, |window| {
        decode_block_ssse3(window, entities)
    })
}

/// A [`Block`] decoded in place: its bytes are the first `len` of where
/// it was written.
struct Placed {
    len: usize,
    consumed: usize,
    escapes: bool,
    more: bool,
}

/// [`decode_block_ssse3`] on 32 bytes: the same steps on AVX2's vectors,
/// the kept bytes moved together in each half by SSSE3's shuffle, and
/// stored where they go. Assembled in a block of 32 first, they were
/// loaded whole from two stores of 16, one at a variable place, which the
/// CPU cannot forward: that wait was half of the loop's time.
#[target_feature(enable = "avx2")]
#[inline]
fn decode_wide_block_avx2(
    window: &[u8; WIDE_WINDOW],
    entities: bool,
    out: &mut [MaybeUninit<u8>; WIDE_BLOCK],
) -> Option<Placed> {
    let at = window.as_ptr();
    // SAFETY: the loads read bytes 0..32, 1..33 and 2..34 of an array of
    // 34 (unaligned loads).
    let (byte, high, low) = unsafe {
        (
            _mm256_loadu_si256(at.cast()),
            _mm256_loadu_si256(at.add(1).cast()),
            _mm256_loadu_si256(at.add(2).cast()),
        )
    };
    let is = |x, c: u8| _mm256_cmpeq_epi8(x, _mm256_set1_epi8(c as i8));
    let percent = is(byte, b'%');
    let escape = _mm256_and_si256(
        percent,
        _mm256_and_si256(hex_digit_wide(high), hex_digit_wide(low)),
    );
    let mut other = _mm256_or_si256(_mm256_andnot_si256(escape, percent), is(byte, b'\\'));
    if entities {
        other = _mm256_or_si256(other, is(byte, b'&'));
    }
    let decoded = _mm256_or_si256(
        _mm256_slli_epi16(digit_value_wide(high), 4),
        digit_value_wide(low),
    );
    let lead = _mm256_or_si256(
        is(
            _mm256_and_si256(decoded, _mm256_set1_epi8(0xfeu8 as i8)),
            0xc0,
        ),
        is(decoded, 0xe0),
    );
    let refused = _mm256_or_si256(other, _mm256_and_si256(escape, lead));
    if _mm256_movemask_epi8(refused) != 0 {
        return None;
    }
    let escapes = u64::from(_mm256_movemask_epi8(escape) as u32);
    let digits = (escapes << 1) | (escapes << 2);
    let kept = !digits;
    let bytes = _mm256_blendv_epi8(byte, decoded, escape);
    let (low_half, low_len) = compress(_mm256_castsi256_si128(bytes), kept as u16);
    let (high_half, high_len) = compress(_mm256_extracti128_si256::<1>(bytes), (kept >> 16) as u16);
    // SAFETY: stores 16 bytes at 0 and 16 at `low_len` (at most 16) into
    // an array of 32 (unaligned stores): the first `low_len + high_len`
    // bytes are written.
    unsafe {
        let place = out.as_mut_ptr();
        _mm_storeu_si128(place.cast(), low_half);
        _mm_storeu_si128(place.add(low_len).cast(), high_half);
    }
    Some(Placed {
        len: low_len + high_len,
        consumed: WIDE_BLOCK + (digits >> WIDE_BLOCK).count_ones() as usize,
        escapes: escapes != 0,
        more: _mm256_movemask_epi8(_mm256_and_si256(escape, may_hold_more_wide(decoded))) != 0,
    })
}

#[target_feature(enable = "avx2")]
fn plain_run_avx2(src: &[u8], from: usize, limit: usize) -> usize {
    plain_run_with(src, from, limit, |window| needs_work_wide(window))
}

/// [`needs_work`] on AVX2's vectors: the three loads of a half, once.
#[target_feature(enable = "avx2")]
#[inline]
fn needs_work_wide(window: &[u8; SCAN_CHUNK + 2]) -> u32 {
    let at = window.as_ptr();
    // SAFETY: the loads read bytes 0..32, 1..33 and 2..34 of an array of
    // 34 (unaligned loads).
    let (before, byte, after) = unsafe {
        (
            _mm256_loadu_si256(at.cast()),
            _mm256_loadu_si256(at.add(1).cast()),
            _mm256_loadu_si256(at.add(2).cast()),
        )
    };
    let space = _mm256_set1_epi8(b' ' as i8);
    let blank = |x| _mm256_cmpeq_epi8(_mm256_min_epu8(x, space), x);
    let lone_space = _mm256_andnot_si256(blank(before), _mm256_cmpeq_epi8(byte, space));
    let collapsed = _mm256_andnot_si256(lone_space, blank(byte));
    let opener = _mm256_and_si256(
        _mm256_cmpeq_epi8(byte, _mm256_set1_epi8(b'/' as i8)),
        _mm256_cmpeq_epi8(after, _mm256_set1_epi8(b'*' as i8)),
    );
    _mm256_movemask_epi8(_mm256_or_si256(collapsed, opener)) as u32
}

/// [`within`] on AVX2's vectors.
#[target_feature(enable = "avx2")]
#[inline]
fn within_wide(x: __m256i, lo: u8, hi: u8) -> __m256i {
    let (lo, hi) = (_mm256_set1_epi8(lo as i8), _mm256_set1_epi8(hi as i8));
    _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_max_epu8(x, lo), x),
        _mm256_cmpeq_epi8(_mm256_min_epu8(x, hi), x),
    )
}

/// [`hex_letter`] on AVX2's vectors.
#[target_feature(enable = "avx2")]
#[inline]
fn hex_letter_wide(x: __m256i) -> __m256i {
    within_wide(_mm256_or_si256(x, _mm256_set1_epi8(0x20)), b'a', b'f')
}

/// [`hex_digit`] on AVX2's vectors.
#[target_feature(enable = "avx2")]
#[inline]
fn hex_digit_wide(x: __m256i) -> __m256i {
    _mm256_or_si256(within_wide(x, b'0', b'9'), hex_letter_wide(x))
}

/// [`digit_value`] on AVX2's vectors.
#[target_feature(enable = "avx2")]
#[inline]
fn digit_value_wide(x: __m256i) -> __m256i {
    _mm256_add_epi8(
        _mm256_and_si256(x, _mm256_set1_epi8(0x0f)),
        _mm256_and_si256(hex_letter_wide(x), _mm256_set1_epi8(9)),
    )
}

/// [`may_hold_more`] on AVX2's vectors.
#[target_feature(enable = "avx2")]
#[inline]
fn may_hold_more_wide(bytes: __m256i) -> __m256i {
    let is = |c: u8| _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(c as i8));
    let alphanumeric = _mm256_or_si256(
        within_wide(bytes, b'0', b'9'),
        within_wide(_mm256_or_si256(bytes, _mm256_set1_epi8(0x20)), b'a', b'z'),
    );
    [b'%', b'&', b'#', b';', b'\\']
        .into_iter()
        .fold(alphanumeric, |all, c| _mm256_or_si256(all, is(c)))
}

/// Whether `window` starts with three escapes of a text percent-encoded
/// twice (`%25HH%25HH%25HH`): its bytes compared at once, where the
/// portable loop takes a branch a byte.
#[inline(always)]
pub(super) fn three_encoded_twice(window: &[u8; 16]) -> bool {
    // Bits of the `%25` of each escape, and of its two digits.
    const PERCENT_25: i32 = 0b0001_1100_1110_0111;
    const DIGITS: i32 = 0b0110_0011_0001_1000;
    // SAFETY: SSE2 is part of x86-64.
    let digits = |bytes| unsafe { _mm_movemask_epi8(hex_digit(bytes)) & DIGITS };
    let fixed = b"%25\0\0%25\0\0%25\0\0\0";
    fixed_and_digits(window, fixed, &[0; 16], PERCENT_25, digits, DIGITS)
}

/// Whether `window` starts with three decimal entities of two digits
/// (`&#39;&#39;&#39;`, as `entity_ascii` of [`super::normalize`] decodes
/// them: not when the byte after the third is a `;`).
#[inline(always)]
pub(super) fn three_decimal_entities(window: &[u8; 16]) -> bool {
    // Bits of each one's `&#` and `;`, and of its two digits.
    const MARKS: i32 = 0b0100_1110_0111_0011;
    const DIGITS: i32 = 0b0011_0001_1000_1100;
    // SAFETY: SSE2 is part of x86-64.
    let digits = |bytes| unsafe { _mm_movemask_epi8(within(bytes, b'0', b'9')) & DIGITS };
    let fixed = b"&#\0\0;&#\0\0;&#\0\0;\0";
    window[15] != b';' && fixed_and_digits(window, fixed, &[0; 16], MARKS, digits, DIGITS)
}

/// Whether `window` starts with two IIS escapes of ASCII characters
/// (`%u0027%U003c`, as `iis_ascii` of [`super::normalize`] decodes them).
#[inline(always)]
pub(super) fn two_iis_escapes(window: &[u8; 16]) -> bool {
    // Bits of each one's `%u00`, of its first digit (0 to 7: ASCII), and
    // of its second (any hex digit).
    const PERCENT_U00: i32 = 0b0000_0011_1100_1111;
    const HIGH: i32 = 0b0000_0100_0001_0000;
    const LOW: i32 = 0b0000_1000_0010_0000;
    // SAFETY: SSE2 is part of x86-64.
    let digits = |bytes| unsafe {
        let high = _mm_movemask_epi8(within(bytes, b'0', b'7')) & HIGH;
        high | (_mm_movemask_epi8(hex_digit(bytes)) & LOW)
    };
    // `%U` as `%u`: the bit of case set on each `u`.
    let mut case = [0; 16];
    case[1] = 0x20;
    case[7] = 0x20;
    let fixed = b"%u00\0\0%u00\0\0\0\0\0\0";
    fixed_and_digits(window, fixed, &case, PERCENT_U00, digits, HIGH | LOW)
}

/// Whether `window`'s bytes at the bits of `fixed_bits`, with the bits of
/// `case` set, are those of `fixed`, and `digits` of its bytes has all the
/// bits of `digit_bits`.
#[inline(always)]
fn fixed_and_digits(
    window: &[u8; 16],
    fixed: &[u8; 16],
    case: &[u8; 16],
    fixed_bits: i32,
    digits: impl Fn(__m128i) -> i32,
    digit_bits: i32,
) -> bool {
    // SAFETY: SSE2 is part of x86-64; the loads read the 16 bytes of
    // arrays of 16 (unaligned loads).
    unsafe {
        let bytes = _mm_loadu_si128(window.as_ptr().cast());
        let case = _mm_loadu_si128(case.as_ptr().cast());
        let expected = _mm_loadu_si128(fixed.as_ptr().cast());
        let same = _mm_cmpeq_epi8(_mm_or_si128(bytes, case), expected);
        let found = (_mm_movemask_epi8(same) & fixed_bits) | digits(bytes);
        found == fixed_bits | digit_bits
    }
}

/// Bytes of `x` in `lo..=hi` (unsigned): 0xff, else 0.
#[inline(always)]
fn within(x: __m128i, lo: u8, hi: u8) -> __m128i {
    // SAFETY: SSE2 is part of x86-64.
    unsafe {
        let (lo, hi) = (_mm_set1_epi8(lo as i8), _mm_set1_epi8(hi as i8));
        _mm_and_si128(
            _mm_cmpeq_epi8(_mm_max_epu8(x, lo), x),
            _mm_cmpeq_epi8(_mm_min_epu8(x, hi), x),
        )
    }
}

/// Bytes of `x` equal to `c`: 0xff, else 0.
#[inline(always)]
fn equals(x: __m128i, c: u8) -> __m128i {
    // SAFETY: SSE2 is part of x86-64.
    unsafe { _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8)) }
}

/// `x` with each byte's bit of ASCII case set: letters in lower case (the
/// other bytes changed too: only for compares with lower-case letters).
#[inline(always)]
fn case_folded(x: __m128i) -> __m128i {
    // SAFETY: SSE2 is part of x86-64.
    unsafe { _mm_or_si128(x, _mm_set1_epi8(0x20)) }
}

/// Bytes of `x` that are decimal digits: 0xff.
#[inline(always)]
fn digit(x: __m128i) -> __m128i {
    within(x, b'0', b'9')
}

/// Bytes of `x` that are ASCII letters (either case): 0xff.
#[inline(always)]
fn letter(x: __m128i) -> __m128i {
    within(case_folded(x), b'a', b'z')
}

/// Bytes of `x` that are hex letters (`a`-`f` in either case): 0xff.
#[inline(always)]
fn hex_letter(x: __m128i) -> __m128i {
    within(case_folded(x), b'a', b'f')
}

/// Bytes of `x` that are hex digits: 0xff.
#[inline(always)]
fn hex_digit(x: __m128i) -> __m128i {
    // SAFETY: SSE2 is part of x86-64.
    unsafe { _mm_or_si128(digit(x), hex_letter(x)) }
}

/// Places where a `%` in `byte` is before a letter, a digit or a `%` in
/// `next` (the byte after): where a percent escape may start. 0xff.
#[inline(always)]
fn percent_start(byte: __m128i, next: __m128i) -> __m128i {
    // SAFETY: SSE2 is part of x86-64.
    unsafe {
        let follows = _mm_or_si128(_mm_or_si128(digit(next), letter(next)), equals(next, b'%'));
        _mm_and_si128(equals(byte, b'%'), follows)
    }
}

/// Each hex digit's value: its low four bits, plus 9 for a letter
/// (anything for another byte).
#[inline(always)]
fn digit_value(x: __m128i) -> __m128i {
    // SAFETY: SSE2 is part of x86-64.
    unsafe {
        _mm_add_epi8(
            _mm_and_si128(x, _mm_set1_epi8(0x0f)),
            _mm_and_si128(hex_letter(x), _mm_set1_epi8(9)),
        )
    }
}

/// Decoded bytes that may hold more (0xff): what `may_hold_more` tells a
/// byte at a time.
#[inline(always)]
fn may_hold_more(bytes: __m128i) -> __m128i {
    // SAFETY: SSE2 is part of x86-64.
    unsafe {
        [
            digit(bytes),
            letter(bytes),
            equals(bytes, b'%'),
            equals(bytes, b'&'),
            equals(bytes, b'#'),
            equals(bytes, b';'),
            equals(bytes, b'\\'),
        ]
        .into_iter()
        .fold(_mm_set1_epi8(0), |all, one| _mm_or_si128(all, one))
    }
}

/// Where each of the 16 escapes' digit at `offset` (1: high, 2: low) is
/// in the third `part` of the group (-1, which the shuffle makes 0, where
/// that escape's digit is in another part).
const fn digit_shuffle(part: usize, offset: usize) -> [i8; 16] {
    let mut at = [-1i8; 16];
    let mut k = 0;
    while k < 16 {
        let place = 3 * k + offset;
        if place / 16 == part {
            at[k] = (place % 16) as i8;
        }
        k += 1;
    }
    at
}

#[target_feature(enable = "ssse3")]
fn shuffle(x: __m128i, at: [i8; 16]) -> __m128i {
    let at = _mm_setr_epi8(
        at[0], at[1], at[2], at[3], at[4], at[5], at[6], at[7], at[8], at[9], at[10], at[11],
        at[12], at[13], at[14], at[15],
    );
    _mm_shuffle_epi8(x, at)
}

/// The digits at `offset` of the 16 escapes, one a byte.
#[target_feature(enable = "ssse3")]
fn digits(parts: [__m128i; 3], offset: usize) -> __m128i {
    let (a, b, c) = match offset {
        1 => (
            const { digit_shuffle(0, 1) },
            const { digit_shuffle(1, 1) },
            const { digit_shuffle(2, 1) },
        ),
        _ => (
            const { digit_shuffle(0, 2) },
            const { digit_shuffle(1, 2) },
            const { digit_shuffle(2, 2) },
        ),
    };
    _mm_or_si128(
        _mm_or_si128(shuffle(parts[0], a), shuffle(parts[1], b)),
        shuffle(parts[2], c),
    )
}

/// Bit `n` set when byte `n` of the group is a `%`: every third one.
const PERCENT_BITS: u64 = {
    let mut bits = 0u64;
    let mut n = 0;
    while n < GROUP_BYTES {
        bits |= 1 << n;
        n += 3;
    }
    bits
};
const DIGIT_BITS: u64 = ((1u64 << GROUP_BYTES) - 1) & !PERCENT_BITS;

#[target_feature(enable = "ssse3")]
fn decode_group_ssse3(group: &[u8; GROUP_BYTES]) -> Option<([u8; ESCAPE_GROUP], bool, bool)> {
    let at = group.as_ptr();
    // SAFETY: the three loads read bytes 0..16, 16..32 and 32..48 of an
    // array of 48 (unaligned loads).
    let parts: [__m128i; 3] = unsafe {
        [
            _mm_loadu_si128(at.cast()),
            _mm_loadu_si128(at.add(16).cast()),
            _mm_loadu_si128(at.add(32).cast()),
        ]
    };
    let mut percents = 0u64;
    let mut hex = 0u64;
    let mut values = [_mm_set1_epi8(0); 3];
    for (n, part) in parts.into_iter().enumerate() {
        let percent = _mm_cmpeq_epi8(part, _mm_set1_epi8(b'%' as i8));
        percents |= u64::from(_mm_movemask_epi8(percent) as u16) << (16 * n);
        hex |= u64::from(_mm_movemask_epi8(hex_digit(part)) as u16) << (16 * n);
        values[n] = digit_value(part);
    }
    if percents & PERCENT_BITS != PERCENT_BITS || hex & DIGIT_BITS != DIGIT_BITS {
        return None;
    }
    // High digits are at most 15: shifted by 4 in 16-bit lanes, no bit
    // crosses into the byte above.
    let bytes = _mm_or_si128(_mm_slli_epi16(digits(values, 1), 4), digits(values, 2));
    // Overlong UTF-8 leads are left to the escape-by-escape decoding:
    // `%c0`/`%c1`, and `%e0` before `%80` or `%81`. Told in two steps:
    // most text has none of those bytes, and pays for one test.
    let even = _mm_and_si128(bytes, _mm_set1_epi8(0xfeu8 as i8));
    let lead = _mm_cmpeq_epi8(even, _mm_set1_epi8(0xc0u8 as i8));
    let e0 = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(0xe0u8 as i8));
    let mut last_e0 = false;
    if _mm_movemask_epi8(_mm_or_si128(lead, e0)) != 0 {
        // The byte after each (none after the last), shifted down.
        let before_low = _mm_srli_si128::<1>(_mm_cmpeq_epi8(even, _mm_set1_epi8(0x80u8 as i8)));
        if _mm_movemask_epi8(_mm_or_si128(lead, _mm_and_si128(e0, before_low))) != 0 {
            return None;
        }
        last_e0 = _mm_movemask_epi8(e0) & (1 << (ESCAPE_GROUP - 1)) != 0;
    }
    let mut out = [0u8; ESCAPE_GROUP];
    // SAFETY: stores 16 bytes into an array of 16 (unaligned store).
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), bytes) };
    Some((out, _mm_movemask_epi8(may_hold_more(bytes)) != 0, last_e0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::normalize::tests::next_random;

    /// Groups of escapes of every byte value, in either case, some with a
    /// byte put wrong: a `%` missing, a digit out of range (`g`, `/`, `:`,
    /// `@`, `` ` ``), a byte past ASCII.
    fn groups() -> Vec<[u8; GROUP_BYTES]> {
        let mut state = 0x9e37_79b9_u32;
        let mut next = move || next_random(&mut state);
        let wrong = [
            b'g', b'G', b'/', b':', b'@', b'`', b'%', b'.', 0x80, 0xd7, b' ',
        ];
        (0..50_000)
            .map(|n| {
                let mut group = [0u8; GROUP_BYTES];
                for escape in group.chunks_exact_mut(3) {
                    // A quarter past ASCII only: no byte that may hold more;
                    // a quarter of Devanagari and overlong forms (`%e0%a4`,
                    // `%e0%80`, `%c0`), where a group goes on or stops.
                    let byte = match n % 4 {
                        1 => next() as u8 | 0x80,
                        3 => [
                            0xe0, 0xe0, 0xe0, 0xa4, 0xa4, 0xb8, 0x80, 0x81, 0x82, 0xc0, 0x7f, 0x41,
                        ][next() as usize % 12],
                        _ => next() as u8,
                    };
                    let text = match next() % 2 {
                        0 => format!("%{byte:02x}"),
                        _ => format!("%{byte:02X}"),
                    };
                    escape.copy_from_slice(text.as_bytes());
                }
                // A third of the groups with one byte put wrong.
                if n % 3 == 0 {
                    let at = next() as usize % GROUP_BYTES;
                    group[at] = wrong[next() as usize % wrong.len()];
                }
                group
            })
            .collect()
    }

    #[test]
    fn sixteen_escapes_decode_the_same_with_ssse3_as_one_byte_at_a_time() {
        let Some(ssse3) = Ssse3::detect() else {
            return;
        };
        let (mut decoded, mut refused, mut more, mut last_e0) = (0, 0, 0, 0);
        for group in groups() {
            let portable = super::super::normalize::decode_group(&group);
            assert_eq!(
                ssse3.decode_group(&group),
                portable,
                "on {:?}",
                String::from_utf8_lossy(&group)
            );
            match portable {
                Some((_, holds_more, ends_in_e0)) => {
                    decoded += 1;
                    last_e0 += usize::from(ends_in_e0);
                    more += usize::from(holds_more);
                }
                None => refused += 1,
            }
        }
        // Every outcome was compared many times.
        assert!(
            decoded > 10_000
                && refused > 10_000
                && more > 5_000
                && decoded - more > 5_000
                && last_e0 > 200,
            "{decoded} decoded ({more} may hold more, {last_e0} ending in %e0), \
             {refused} refused"
        );
    }

    /// Windows of text with escapes of plain, overlong-leading and
    /// special bytes among words, with what refuses a block here and
    /// there, and whether entities may be in it (every other one).
    fn sparse_windows<const W: usize>() -> impl Iterator<Item = ([u8; W], bool)> {
        let plain: [&[u8]; 9] = [
            b"%20", b"%2B", b"%41", b"%7e", b"%25", b"%E1", b"%d7", b"ab", b"word ",
        ];
        let refusing: [&[u8]; 7] = [b"%c0", b"%C1", b"%e0", b"%", b"%z", b"&", b"\\"];
        let mut state = 0x2545_f491_u32;
        (0..100_000).map(move |n| {
            let mut text = Vec::new();
            while text.len() < W {
                // Refusing pieces rarer in longer windows, or those would
                // hardly ever be decoded.
                let draw = next_random(&mut state) as usize;
                let piece = match draw % 1000 < 300 * SPARSE_WINDOW / W {
                    true => refusing[(draw / 1000) % refusing.len()],
                    false => plain[(draw / 1000) % plain.len()],
                };
                text.extend_from_slice(piece);
            }
            (text[..W].try_into().unwrap(), n % 2 == 0)
        })
    }

    /// Compares the vector decoder of blocks with the portable one on
    /// [`sparse_windows`], and checks that every outcome was compared many
    /// times.
    fn blocks_decode_the_same<const N: usize, const W: usize>(
        vector: impl Fn(&[u8; W], bool) -> Option<Block<N>>,
    ) {
        let (mut decoded, mut refused, mut more) = (0, 0, 0);
        for (window, entities) in sparse_windows::<W>() {
            let portable = super::super::normalize::decode_block::<N, W>(&window, entities);
            assert_eq!(
                vector(&window, entities),
                portable,
                "on {:?}",
                String::from_utf8_lossy(&window)
            );
            match portable {
                Some(block) => {
                    decoded += 1;
                    more += usize::from(block.more);
                }
                None => refused += 1,
            }
        }
        assert!(
            decoded > 10_000 && refused > 10_000 && more > 5_000 && decoded - more > 1_000,
            "{decoded} decoded ({more} may hold more), {refused} refused"
        );
    }

    #[test]
    fn blocks_with_sparse_escapes_decode_the_same_with_ssse3_as_one_byte_at_a_time() {
        if let Some(ssse3) = Ssse3::detect() {
            blocks_decode_the_same(|window, entities| ssse3.decode_block(window, entities));
        }
    }

    #[test]
    fn blocks_of_32_decode_the_same_with_avx2_as_one_byte_at_a_time() {
        if let Some(avx2) = Avx2::detect() {
            blocks_decode_the_same(|window, entities| avx2.decode_block(window, entities));
        }
    }
}
