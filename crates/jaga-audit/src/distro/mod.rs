//! What the distribution says it fixed: the package that provides a
//! component's binary, its version, and its own record of fixed CVEs (the
//! Debian/Ubuntu changelog, the RPM changelog, Alpine's secfixes). Pure:
//! reading the host is the caller's (jaga-agent's gather).

pub mod order;
pub mod records;

use std::cmp::Ordering;

pub use records::{
    parse_alpine_secdb, parse_alpine_secfixes, parse_debian_changelog, parse_rpm_changelog,
};

/// The package database that owns a binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Dpkg,
    Rpm,
    Apk,
}

impl PackageManager {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dpkg => "dpkg",
            Self::Rpm => "rpm",
            Self::Apk => "apk",
        }
    }

    /// This distribution's version ordering.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Self::Dpkg => order::compare_dpkg(a, b),
            Self::Rpm => order::compare_rpm(a, b),
            Self::Apk => order::compare_apk(a, b),
        }
    }

    /// The upstream release inside a package version: `1.1.5+ds1` of
    /// `1.1.5+ds1-1+deb12u1`, `1.1.12` of `4:1.1.12-1.el9`.
    pub fn upstream_of(self, version: &str) -> &str {
        match self {
            Self::Dpkg => order::dpkg_upstream(version),
            Self::Rpm => order::rpm_version(version),
            Self::Apk => order::apk_release(version),
        }
    }
}

/// One entry of a distribution's record: a changelog entry, or one
/// version of a secfixes block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixEntry {
    /// The package version the entry belongs to; `None` when the entry
    /// names none (an RPM changelog line without one).
    pub version: Option<String>,
    /// `runc (1.1.5+ds1-1+deb12u1) bookworm-security`, `secfixes 1.1.12-r0`.
    pub heading: String,
    /// Its items, one line each (continuation lines joined).
    pub items: Vec<String>,
}

impl FixEntry {
    pub fn names(&self, cve: &str) -> bool {
        self.items
            .iter()
            .any(|item| cve_ids(item).iter().any(|id| id.eq_ignore_ascii_case(cve)))
    }

    /// The heading and the items that name `cve`.
    pub fn excerpt(&self, cve: &str) -> String {
        let items: Vec<&str> = self
            .items
            .iter()
            .filter(|item| cve_ids(item).iter().any(|id| id.eq_ignore_ascii_case(cve)))
            .map(String::as_str)
            .collect();
        format!("{}: {}", self.heading, items.join(" | "))
    }
}

/// A distribution's record of fixes for one package, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixRecord {
    /// `/usr/share/doc/runc/changelog.Debian.gz`, `rpm -q --changelog runc`.
    pub source: String,
    pub entries: Vec<FixEntry>,
}

/// The component's binary and the package that provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// The binary was not found on this host (a remote engine, no /proc).
    Unknown {
        why: String,
    },
    /// No package database owns the binary: an upstream static build or a
    /// copy put there by hand.
    Unpackaged {
        binary: String,
    },
    Packaged(InstalledPackage),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    /// The running binary, as the host sees it: `/usr/sbin/runc`.
    pub binary: String,
    pub manager: PackageManager,
    pub name: String,
    pub version: String,
    /// The distribution's record of fixes, or why there is none to read.
    pub fixes: Result<FixRecord, String>,
}

/// Provenance of the Engine, containerd and runc, by component name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentProvenance {
    /// `engine`, `containerd` or `runc`.
    pub component: String,
    pub provenance: Provenance,
}

/// How a distribution's record stands on one CVE for an installed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSays<'a> {
    /// Named in an entry at or below the installed version.
    Fixed(&'a FixEntry),
    /// Named only in entries above the installed version.
    FixedLater(&'a FixEntry),
    NotNamed,
}

impl FixRecord {
    /// What the record says of `cve` for the installed `version`.
    pub fn says(&self, cve: &str, manager: PackageManager, version: &str) -> RecordSays<'_> {
        let naming: Vec<&FixEntry> = self.entries.iter().filter(|e| e.names(cve)).collect();
        let at_or_below = |e: &&&FixEntry| match &e.version {
            // An entry of the installed package's own changelog without a
            // version can only be older than the package.
            None => true,
            Some(v) => manager.compare(v, version) != Ordering::Greater,
        };
        let lowest = |a: &&&FixEntry, b: &&&FixEntry| match (&a.version, &b.version) {
            (Some(x), Some(y)) => manager.compare(x, y),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        if let Some(entry) = naming.iter().filter(at_or_below).min_by(lowest) {
            return RecordSays::Fixed(entry);
        }
        match naming.iter().min_by(lowest) {
            Some(entry) => RecordSays::FixedLater(entry),
            None => RecordSays::NotNamed,
        }
    }
}

/// `CVE-YYYY-NNNN…` ids in `text`, upper-cased, in order of appearance.
pub fn cve_ids(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut ids = Vec::new();
    let mut at = 0;
    while let Some(found) = find_ascii_ci(&bytes[at..], b"CVE-") {
        let start = at + found;
        let rest = &bytes[start + 4..];
        let year = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let number = rest
            .get(year + 1..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
        let preceded_by_word = start > 0 && bytes[start - 1].is_ascii_alphanumeric();
        if year == 4 && rest.get(4) == Some(&b'-') && (4..=8).contains(&number) && !preceded_by_word
        {
            let end = start + 4 + year + 1 + number;
            ids.push(text[start..end].to_ascii_uppercase());
            at = end;
        } else {
            at = start + 4;
        }
    }
    ids
}

fn find_ascii_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cve_ids_are_found_in_prose_and_file_names() {
        assert_eq!(
            cve_ids("* Fix CVE-2024-41110: Authz; cve-2023-28840, debian/patches/CVE-2024-21626-1.patch"),
            vec!["CVE-2024-41110", "CVE-2023-28840", "CVE-2024-21626"]
        );
        assert!(cve_ids("CVE-24-1 XCVE-2024-1234 CVE-2024-123").is_empty());
    }

    fn says<'a>(record: &'a FixRecord, cve: &str) -> RecordSays<'a> {
        record.says(cve, PackageManager::Dpkg, "1.1.5+ds1-1+deb12u1")
    }

    fn entry(version: &str, item: &str) -> FixEntry {
        FixEntry {
            version: Some(version.to_owned()),
            heading: format!("runc ({version})"),
            items: vec![item.to_owned()],
        }
    }

    #[test]
    fn a_cve_named_at_or_below_the_installed_version_is_fixed() {
        let record = FixRecord {
            source: "changelog".to_owned(),
            entries: vec![
                entry("1.1.5+ds1-1+deb12u2", "CVE-2025-31133"),
                entry("1.1.5+ds1-1+deb12u1", "CVE-2024-21626: leaked fds"),
                entry("1.1.4+ds1-1", "CVE-2024-21626: partial fix"),
            ],
        };
        // The lowest entry at or below the installed version is the evidence.
        assert!(matches!(
            says(&record, "CVE-2024-21626"),
            RecordSays::Fixed(e) if e.heading.contains("1.1.4")
        ));
        assert!(matches!(
            says(&record, "cve-2025-31133"),
            RecordSays::FixedLater(e) if e.heading.contains("deb12u2")
        ));
        assert_eq!(says(&record, "CVE-2025-52565"), RecordSays::NotNamed);
    }
}
