//! Engine, containerd and runc versions against known container-escape
//! vulnerabilities, kept in `data/container-escape-cves.toml`.

use std::cmp::Ordering;

use jaga_model::{Severity, Threat};
use serde::Deserialize;

use crate::distro::{InstalledPackage, Provenance, RecordSays};

/// The CVE table shipped with jaga.
pub const CVE_DATA: &str = include_str!("../../../data/container-escape-cves.toml");

/// Where the shipped entries come from, as `--explain` says it.
pub const SHIPPED_ORIGIN: &str = "data shipped with jaga";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CveEntry {
    pub id: String,
    /// `engine`, `containerd` or `runc`.
    pub component: String,
    pub title: String,
    pub severity: String,
    pub introduced: String,
    pub fixed: Vec<String>,
    pub source: String,
    /// The file the entry was read from; [`SHIPPED_ORIGIN`] for jaga's own.
    #[serde(skip)]
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CveTable {
    #[serde(default)]
    pub cve: Vec<CveEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum CveDataError {
    #[error("CVE data is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("CVE data entry {id}: {problem}")]
    Entry { id: String, problem: String },
}

impl CveTable {
    /// The table shipped with jaga.
    pub fn shipped() -> Result<Self, CveDataError> {
        Self::parse_from(CVE_DATA, SHIPPED_ORIGIN)
    }

    /// The shipped table with the user's entries (`[audit] cve_data`): an
    /// entry with the id and component of a shipped one replaces it, others
    /// are added; with `replace`, the user's entries alone.
    pub fn with_user_data(
        user_text: &str,
        origin: &str,
        replace: bool,
    ) -> Result<Self, CveDataError> {
        let user = Self::parse_from(user_text, origin)?;
        if replace {
            return Ok(user);
        }
        let mut table = Self::shipped()?;
        for entry in user.cve {
            match table
                .cve
                .iter_mut()
                .find(|e| e.id == entry.id && e.component == entry.component)
            {
                Some(shipped) => *shipped = entry,
                None => table.cve.push(entry),
            }
        }
        Ok(table)
    }

    fn parse_from(text: &str, origin: &str) -> Result<Self, CveDataError> {
        let mut table = Self::parse(text)?;
        for entry in &mut table.cve {
            entry.origin = origin.to_owned();
        }
        Ok(table)
    }

    pub fn parse(text: &str) -> Result<Self, CveDataError> {
        let table: CveTable = toml::from_str(text)?;
        for entry in &table.cve {
            let problem = if Severity::parse(&entry.severity).is_none() {
                Some(format!("unknown severity '{}'", entry.severity))
            } else if !matches!(entry.component.as_str(), "engine" | "containerd" | "runc") {
                Some(format!("unknown component '{}'", entry.component))
            } else if entry.fixed.is_empty() {
                Some("no fixed version".to_owned())
            } else if entry
                .fixed
                .iter()
                .chain([&entry.introduced])
                .any(|v| Version::parse(v).is_none())
            {
                Some("a version does not parse".to_owned())
            } else if !entry.source.starts_with("https://") {
                Some("no https source".to_owned())
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(CveDataError::Entry {
                    id: entry.id.clone(),
                    problem,
                });
            }
        }
        Ok(table)
    }

    /// Entries with this id (one per component), case-insensitive.
    pub fn find<'a>(&'a self, id: &str) -> Vec<&'a CveEntry> {
        self.cve
            .iter()
            .filter(|e| e.id.eq_ignore_ascii_case(id))
            .collect()
    }

    /// Entries whose ranges contain `version` of `component`.
    pub fn affecting<'a>(&'a self, component: &str, version: &str) -> Vec<&'a CveEntry> {
        let Some(v) = Version::parse(version) else {
            return Vec::new();
        };
        self.cve
            .iter()
            .filter(|e| e.component == component)
            .filter(|e| is_affected(&v, e))
            .collect()
    }
}

pub fn severity_of(entry: &CveEntry) -> Severity {
    Severity::parse(&entry.severity).unwrap_or(Severity::High)
}

pub fn threat_of(entry: &CveEntry) -> Threat {
    if entry.component == "engine" && entry.id == "CVE-2024-41110" {
        Threat::ContainerHijacking
    } else {
        Threat::ContainerEscape
    }
}

/// Whether a version string is a distribution's package version, which may
/// carry backported fixes.
pub fn is_distribution_build(version: &str) -> bool {
    let v = version.to_ascii_lowercase();
    [
        "+dfsg", "+ds", "ubuntu", "+deb", "~deb", ".el", ".fc", "-debian",
    ]
    .iter()
    .any(|mark| v.contains(mark))
}

/// One step lower: what a distribution build of unknown provenance gets,
/// since it may carry a backported fix no record confirms.
fn one_lower(severity: Severity) -> Severity {
    match severity {
        Severity::Critical => Severity::High,
        Severity::High => Severity::Medium,
        Severity::Medium => Severity::Low,
        other => other,
    }
}

/// What jaga concluded about one CVE for one installed component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub severity: Severity,
    pub evidence: String,
    /// How jaga decided, one line a step (for `jaga audit --explain`).
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The installed version is outside the affected range.
    NotAffected,
    /// A finding at `severity`.
    Affected,
    /// The distribution's package names the CVE as fixed: an info line.
    FixedByDistribution,
}

/// Decides `entry` for `component` at `installed` (the version the daemon
/// reports), with what is known of the binary's package.
pub fn decide(entry: &CveEntry, installed: &str, provenance: Option<&Provenance>) -> Decision {
    let component = &entry.component;
    let range = format!(
        "introduced in {}, fixed in {}",
        entry.introduced,
        entry.fixed.join(", ")
    );
    let affected = Version::parse(installed).is_some_and(|v| is_affected(&v, entry));
    let mut steps = vec![format!(
        "{component} {installed} is {} by upstream versions ({range})",
        if affected { "affected" } else { "not affected" }
    )];
    let severity = severity_of(entry);
    if !affected {
        return Decision {
            outcome: Outcome::NotAffected,
            severity,
            evidence: steps.join("; "),
            steps,
        };
    }
    let base = format!(
        "{component} {installed} is affected by {}: {} (fixed in {}; source {})",
        entry.id,
        entry.title,
        entry.fixed.join(", "),
        entry.source
    );
    let affected_with = |severity, note: String, mut steps: Vec<String>| {
        steps.push(note.clone());
        Decision {
            outcome: Outcome::Affected,
            severity,
            evidence: format!("{base}; {note}"),
            steps,
        }
    };
    // Nothing read from a package: a distribution-looking version may
    // still carry a backport, so one severity lower, and said so.
    let unconfirmed = |why: String, steps: Vec<String>| {
        if is_distribution_build(installed) {
            affected_with(
                one_lower(severity),
                format!("{why}; the version is a distribution build, which may carry a backported fix: check the distribution's advisory for this CVE"),
                steps,
            )
        } else {
            affected_with(severity, format!("{why}; judged by its version"), steps)
        }
    };
    let package = match provenance {
        None => return unconfirmed("its package was not looked up".to_owned(), steps),
        Some(Provenance::Unknown { why }) => {
            return unconfirmed(format!("its package is unknown: {why}"), steps)
        }
        Some(Provenance::Unpackaged { binary }) => {
            return affected_with(
                severity,
                format!(
                    "{binary} belongs to no package (an upstream build): judged by its version"
                ),
                steps,
            )
        }
        Some(Provenance::Packaged(package)) => package,
    };
    let owner = format!(
        "{} is {} package {} {}",
        package.binary,
        package.manager.as_str(),
        package.name,
        package.version
    );
    if !runs_package_version(installed, package) {
        return unconfirmed(
            format!("{owner}, whose version is not the running {installed} (a bundled binary, or one upgraded since the daemon started): its record is not used"),
            steps,
        );
    }
    let record = match &package.fixes {
        Ok(record) => record,
        Err(why) => {
            return unconfirmed(format!("{owner}, but no record of its fixes: {why}"), steps)
        }
    };
    let source = &record.source;
    match record.says(&entry.id, package.manager, &package.version) {
        RecordSays::Fixed(fix) => {
            let note = format!(
                "{owner}; {} is named as fixed in {source}: {}",
                entry.id,
                fix.excerpt(&entry.id)
            );
            steps.push(format!(
                "fixed by the distribution: named in {source} at or below the installed version: {}",
                fix.excerpt(&entry.id)
            ));
            Decision {
                outcome: Outcome::FixedByDistribution,
                severity: Severity::Info,
                evidence: format!("{component} {installed}: {note}"),
                steps,
            }
        }
        RecordSays::FixedLater(fix) => affected_with(
            severity,
            format!(
                "{owner}; {} is named as fixed in {source} only in a later version: {}",
                entry.id,
                fix.excerpt(&entry.id)
            ),
            steps,
        ),
        RecordSays::NotNamed => affected_with(
            severity,
            format!(
                "{owner}; {} is not named in {source}, which was checked",
                entry.id
            ),
            steps,
        ),
    }
}

/// Whether the daemon's version of a component is the package's: its
/// upstream part (`1.1.5+ds1` of Debian's `1.1.5+ds1-1+deb12u1`) or the
/// whole version (Ubuntu's runc reports `1.1.12-0ubuntu2~22.04.1`).
fn runs_package_version(installed: &str, package: &InstalledPackage) -> bool {
    let installed = installed.trim().trim_start_matches('v');
    let without_epoch = package
        .version
        .split_once(':')
        .map_or(package.version.as_str(), |(_, v)| v);
    installed == package.manager.upstream_of(&package.version) || installed == without_epoch
}

fn is_affected(version: &Version, entry: &CveEntry) -> bool {
    let Some(introduced) = Version::parse(&entry.introduced) else {
        return false;
    };
    if version < &introduced {
        return false;
    }
    let fixes: Vec<Version> = entry
        .fixed
        .iter()
        .filter_map(|f| Version::parse(f))
        .collect();
    if let Some(line_fix) = fixes.iter().find(|f| f.line() == version.line()) {
        return version < line_fix;
    }
    let newest = fixes.iter().max();
    let oldest = fixes.iter().min();
    match (oldest, newest) {
        // A line older than every fixed line: affected. A line between two
        // fixed lines with no fix of its own: affected. Newer than all: fixed.
        (Some(_), Some(newest)) => version < newest,
        _ => false,
    }
}

/// `1.1.5+ds1`, `20.10.24+dfsg1`, `1.0.0-rc93`, `v1.6.20`: numbers and an
/// optional pre-release; build metadata ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    numbers: Vec<u64>,
    /// `rc93` of `1.0.0-rc93`; a pre-release sorts before its release.
    pre: Option<String>,
}

impl Version {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['+', '~']).next()?;
        let (numbers_text, pre) = match core.split_once('-') {
            Some((n, p)) => (n, Some(p.to_owned())),
            None => (core, None),
        };
        let numbers: Vec<u64> = numbers_text
            .split('.')
            .map(|part| part.parse().ok())
            .collect::<Option<_>>()?;
        if numbers.is_empty() {
            return None;
        }
        Some(Self { numbers, pre })
    }

    fn number(&self, index: usize) -> u64 {
        self.numbers.get(index).copied().unwrap_or(0)
    }

    /// major.minor
    fn line(&self) -> (u64, u64) {
        (self.number(0), self.number(1))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.numbers.len().max(other.numbers.len());
        for i in 0..len {
            match self.number(i).cmp(&other.number(i)) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => compare_pre(a, b),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `rc7` < `rc93`: compare the letters, then the number.
fn compare_pre(a: &str, b: &str) -> Ordering {
    let split = |s: &str| {
        let digits = s.trim_start_matches(|c: char| !c.is_ascii_digit());
        let letters = &s[..s.len() - digits.len()];
        let number: u64 = digits
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        (letters.trim_end_matches('.').to_owned(), number)
    };
    split(a).cmp(&split(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CveTable {
        CveTable::parse(CVE_DATA).unwrap()
    }

    fn ids(component: &str, version: &str) -> Vec<String> {
        table()
            .affecting(component, version)
            .into_iter()
            .map(|e| e.id.clone())
            .collect()
    }

    #[test]
    fn data_file_parses_and_every_entry_has_a_source() {
        let table = table();
        assert!(table.cve.len() >= 10);
        assert!(table.cve.iter().all(|e| e.source.starts_with("https://")));
    }

    #[test]
    fn versions_order_like_releases() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("1.0.0-rc6") < v("1.0.0-rc7"));
        assert!(v("1.0.0-rc93") < v("1.0.0"));
        assert!(v("1.1.5+ds1") < v("1.1.12"));
        assert!(v("20.10.24+dfsg1") < v("23.0.15"));
        assert_eq!(v("v1.6.20~ds1"), v("1.6.20"));
    }

    #[test]
    fn runc_versions() {
        assert_eq!(
            ids("runc", "1.1.5+ds1"),
            vec![
                "CVE-2024-21626",
                "CVE-2025-31133",
                "CVE-2025-52565",
                "CVE-2025-52881"
            ]
        );
        assert_eq!(
            ids("runc", "1.0.0-rc6"),
            vec![
                "CVE-2019-5736",
                "CVE-2025-31133",
                "CVE-2025-52565",
                "CVE-2025-52881"
            ]
        );
        assert_eq!(ids("runc", "1.2.8"), Vec::<String>::new());
        assert_eq!(
            ids("runc", "1.3.2"),
            vec!["CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"]
        );
        assert_eq!(ids("runc", "1.4.0"), Vec::<String>::new());
    }

    #[test]
    fn engine_and_containerd_versions() {
        assert_eq!(ids("engine", "20.10.24+dfsg1"), vec!["CVE-2024-41110"]);
        assert_eq!(ids("engine", "24.0.9"), vec!["CVE-2024-41110"]);
        assert_eq!(ids("engine", "26.1.4"), vec!["CVE-2024-41110"]);
        assert_eq!(ids("engine", "26.1.5"), Vec::<String>::new());
        assert_eq!(ids("engine", "28.2.2"), Vec::<String>::new());
        assert_eq!(
            ids("engine", "19.03.0"),
            vec!["CVE-2024-41110", "CVE-2021-41091", "CVE-2019-14271"]
        );
        assert_eq!(
            ids("containerd", "1.4.2"),
            vec!["CVE-2020-15257", "CVE-2022-24769"]
        );
        assert_eq!(ids("containerd", "1.6.20~ds1"), Vec::<String>::new());
    }

    #[test]
    fn distribution_builds_are_recognised() {
        assert!(is_distribution_build("20.10.24+dfsg1"));
        assert!(is_distribution_build("1.1.5+ds1"));
        assert!(!is_distribution_build("27.1.1"));
    }
}
