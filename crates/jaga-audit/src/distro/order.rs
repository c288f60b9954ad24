//! The three distributions' version orderings, written after their
//! reference implementations: dpkg's `verrevcmp` (lib/dpkg/version.c),
//! rpm's `rpmvercmp` (rpmio/rpmvercmp.c) and apk-tools' version comparison.
//! A package version is never compared with upstream's semver rules: `~`
//! sorts before everything in Debian and RPM, `+deb12u1` after the release.

use std::cmp::Ordering;

/// Debian/Ubuntu: `[epoch:]upstream[-revision]`, as `dpkg --compare-versions`.
pub fn compare_dpkg(a: &str, b: &str) -> Ordering {
    let (a_epoch, a_upstream, a_revision) = split_dpkg(a);
    let (b_epoch, b_upstream, b_revision) = split_dpkg(b);
    a_epoch
        .cmp(&b_epoch)
        .then_with(|| verrevcmp(a_upstream, b_upstream))
        .then_with(|| verrevcmp(a_revision, b_revision))
}

/// (epoch, upstream, revision); the revision follows the last `-`.
fn split_dpkg(version: &str) -> (u64, &str, &str) {
    let version = version.trim();
    let (epoch, rest) = match version.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// The upstream part of a Debian version: `1.1.5+ds1` of `1.1.5+ds1-1+deb12u1`.
pub fn dpkg_upstream(version: &str) -> &str {
    split_dpkg(version).1
}

/// dpkg's weight of a character outside a digit run: `~` before the end,
/// the end before letters, letters before other characters.
fn dpkg_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit_at = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit_at(a, i)) || (j < b.len() && !digit_at(b, j)) {
            let (ac, bc) = (dpkg_order(a.get(i).copied()), dpkg_order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit_at(a, i) && digit_at(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit_at(a, i) {
            return Ordering::Greater;
        }
        if digit_at(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// RPM: `[epoch:]version[-release]`, as `rpmdev-vercmp`; a missing epoch is 0.
pub fn compare_rpm(a: &str, b: &str) -> Ordering {
    let (a_epoch, a_version, a_release) = split_rpm(a);
    let (b_epoch, b_version, b_release) = split_rpm(b);
    a_epoch
        .cmp(&b_epoch)
        .then_with(|| rpmvercmp(a_version, b_version))
        .then_with(|| match (a_release, b_release) {
            // rpm compares releases only when both sides have one.
            (Some(a), Some(b)) => rpmvercmp(a, b),
            _ => Ordering::Equal,
        })
}

fn split_rpm(evr: &str) -> (u64, &str, Option<&str>) {
    let evr = evr.trim();
    let (epoch, rest) = match evr.split_once(':') {
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), rest),
        _ => (0, evr),
    };
    match rest.rsplit_once('-') {
        Some((version, release)) => (epoch, version, Some(release)),
        None => (epoch, rest, None),
    }
}

/// The version part of an RPM EVR: `1.1.12` of `4:1.1.12-1.el9`.
pub fn rpm_version(evr: &str) -> &str {
    split_rpm(evr).1
}

fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let separator = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~' && *c != b'^';
    loop {
        while a.get(i).is_some_and(separator) {
            i += 1;
        }
        while b.get(j).is_some_and(separator) {
            j += 1;
        }
        let (ac, bc) = (a.get(i).copied(), b.get(j).copied());
        // `~` sorts before anything, even the end.
        if ac == Some(b'~') || bc == Some(b'~') {
            if ac != Some(b'~') {
                return Ordering::Greater;
            }
            if bc != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // `^` sorts after the end but before anything else.
        if ac == Some(b'^') || bc == Some(b'^') {
            match (ac, bc) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(x), _) if x != b'^' => return Ordering::Greater,
                (_, Some(y)) if y != b'^' => return Ordering::Less,
                _ => {}
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(first), Some(_)) = (ac, bc) else {
            break;
        };
        let numeric = first.is_ascii_digit();
        let in_segment = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let a_end = i + a[i..].iter().take_while(|c| in_segment(c)).count();
        let b_end = j + b[j..].iter().take_while(|c| in_segment(c)).count();
        if b_end == j {
            // A number against letters: the number is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[i..a_end], &b[j..b_end]);
        if numeric {
            sa = trim_zeros(sa);
            sb = trim_zeros(sb);
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                longer => return longer,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
        i = a_end;
        j = b_end;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|c| **c == b'0').count();
    &digits[zeros..]
}

/// Alpine: `1.2.3[letter][_suffixN…][-rN]`, as `apk version -t`. Pre-release
/// suffixes (`_alpha`, `_beta`, `_pre`, `_rc`) sort before the release,
/// post-release ones (`_cvs`, `_svn`, `_git`, `_hg`, `_p`) after it.
pub fn compare_apk(a: &str, b: &str) -> Ordering {
    let (a, b) = (ApkVersion::parse(a), ApkVersion::parse(b));
    let len = a.numbers.len().max(b.numbers.len());
    for k in 0..len {
        // A missing component is older than any present one: 1.2 < 1.2.0.
        match (a.numbers.get(k), b.numbers.get(k)) {
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            (Some(_), None) => return Ordering::Greater,
            (None, Some(_)) => return Ordering::Less,
            _ => {}
        }
    }
    a.letter
        .cmp(&b.letter)
        .then_with(|| {
            let len = a.suffixes.len().max(b.suffixes.len());
            // No suffix ranks between the pre- and the post-release ones.
            let at = |v: &ApkVersion, k: usize| v.suffixes.get(k).copied().unwrap_or((0, 0));
            (0..len)
                .map(|k| at(&a, k).cmp(&at(&b, k)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
        .then_with(|| a.revision.cmp(&b.revision))
}

#[derive(Debug, Default)]
struct ApkVersion {
    numbers: Vec<u64>,
    letter: Option<char>,
    /// (rank, number): rank < 0 before the release, > 0 after it.
    suffixes: Vec<(i8, u64)>,
    revision: u64,
}

impl ApkVersion {
    fn parse(text: &str) -> Self {
        let text = text.trim();
        let (body, revision) = match text.rsplit_once("-r") {
            Some((body, r)) if !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit()) => {
                (body, r.parse().unwrap_or(u64::MAX))
            }
            _ => (text, 0),
        };
        let mut parts = body.split('_');
        let release = parts.next().unwrap_or_default();
        let mut version = ApkVersion {
            revision,
            ..Self::default()
        };
        for number in release.split('.') {
            let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
            version.numbers.push(digits.parse().unwrap_or(0));
            version.letter = number[digits.len()..].chars().next();
        }
        for suffix in parts {
            let name: String = suffix
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            let number = suffix[name.len()..].parse().unwrap_or(0);
            let rank = match name.as_str() {
                "alpha" => -4,
                "beta" => -3,
                "pre" => -2,
                "rc" => -1,
                "cvs" => 1,
                "svn" => 2,
                "git" => 3,
                "hg" => 4,
                _ => 5, // `_p` and anything newer
            };
            version.suffixes.push((rank, number));
        }
        version
    }
}

/// The release part of an Alpine version: `1.1.12` of `1.1.12-r3`.
pub fn apk_release(version: &str) -> &str {
    match version.rsplit_once("-r") {
        Some((body, r)) if r.bytes().all(|c| c.is_ascii_digit()) => body,
        _ => version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    /// Each pair in both directions.
    fn assert_orders(compare: fn(&str, &str) -> Ordering, cases: &[(&str, &str, Ordering)]) {
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), *want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn dpkg_orders_like_dpkg_compare_versions() {
        let cases = [
            ("1.1.5+ds1-1+deb12u1", "1.1.5+ds1-1", Greater),
            ("1.1.5+ds1-1", "1.1.5+ds1-1+deb12u1", Less),
            ("1.1.5+ds1-1+deb12u1", "1.1.5+ds1-1+deb12u1", Equal),
            ("1.1.5+ds1-1+deb12u2", "1.1.5+ds1-1+deb12u10", Less),
            ("1.6.20~ds1-1", "1.6.20-1", Less),
            ("1.0~rc1-1", "1.0-1", Less),
            ("1.0~rc1~1-1", "1.0~rc1-1", Less),
            ("1:1.0-1", "2.0-1", Greater),
            ("0:1.0-1", "1.0-1", Equal),
            ("5:27.1.1-1~debian.12~bookworm", "5:27.1.1-1", Less),
            ("1.1.12-0ubuntu2~22.04.1", "1.1.12-0ubuntu3", Less),
            ("1.1.12-0ubuntu2~22.04.1", "1.1.7-0ubuntu1~22.04.2", Greater),
            (
                "20.10.24+dfsg1-1+deb12u1+b6",
                "20.10.24+dfsg1-1+deb12u1",
                Greater,
            ),
            ("1.0a-1", "1.0-1", Greater),
            ("1.0+a-1", "1.0a-1", Greater),
            ("1.001-1", "1.1-1", Equal),
            ("1.2-3-4", "1.2-3-5", Less),
            ("1.10", "1.9", Greater),
            ("1.0", "1.0-0", Equal),
        ];
        assert_orders(compare_dpkg, &cases);
        assert_eq!(dpkg_upstream("1:1.1.5+ds1-1+deb12u1"), "1.1.5+ds1");
        assert_eq!(dpkg_upstream("1.2-3-4"), "1.2-3");
    }

    #[test]
    fn rpm_orders_like_rpmvercmp() {
        let cases = [
            ("1.1.12-1.el9", "1.1.12-1.el9", Equal),
            ("1.1.12-1.el9", "1.1.12-2.el9", Less),
            ("4:1.1.12-1.el9", "1.1.13-1.el9", Greater),
            ("1.1.12", "1.1.12-3.fc39", Equal),
            ("1.0~rc1-1", "1.0-1", Less),
            ("1.0^git1-1", "1.0-1", Greater),
            ("1.0^git1-1", "1.0.1-1", Less),
            ("1.0a", "1.0", Greater),
            ("1.0", "1.0.1", Less),
            ("2.0", "2_0", Equal),
            ("1.010", "1.9", Greater),
            ("1.a", "1.1", Less),
            (
                "1.1.12-1.module+el8.10.0+21251+0ac4f9ad",
                "1.1.12-1.module+el8.9.0+1",
                Greater,
            ),
        ];
        assert_orders(compare_rpm, &cases);
        assert_eq!(rpm_version("4:1.1.12-1.el9"), "1.1.12");
    }

    #[test]
    fn apk_orders_like_apk_version() {
        let cases = [
            ("1.1.12-r0", "1.1.12-r1", Less),
            ("1.1.12-r10", "1.1.12-r9", Greater),
            ("1.0.0_rc95-r0", "1.0.0-r0", Less),
            ("1.0.0_rc95-r0", "1.0.0_rc96-r0", Less),
            ("1.0.0_alpha1", "1.0.0_beta1", Less),
            ("1.0.0_p1", "1.0.0", Greater),
            ("1.0.0_git20240101", "1.0.0", Greater),
            ("1.2.3a", "1.2.3", Greater),
            ("1.2.10", "1.2.9", Greater),
            ("0", "1.1.5-r0", Less),
            ("1.6.20-r3", "1.6.20-r3", Equal),
        ];
        assert_orders(compare_apk, &cases);
        assert_eq!(apk_release("1.1.12-r3"), "1.1.12");
    }
}
