#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The distributions' records of fixed CVEs, read from fixtures: Debian's
//! changelog (runc's, as this Debian 12 host has it), an RPM changelog as
//! `rpm -q --changelog` prints it, an Alpine secfixes block and secdb. A
//! CVE named at or below the installed version is fixed by the
//! distribution; one named only later, or not at all, stays a finding.

use bollard::models::{SystemVersion, SystemVersionComponents};
use jaga_audit::distro::{
    parse_alpine_secdb, parse_alpine_secfixes, parse_debian_changelog, parse_rpm_changelog,
    ComponentProvenance, FixEntry, FixRecord, InstalledPackage, PackageManager, Provenance,
};
use jaga_audit::{decide, explain, run, AuditInput, CveTable, DaemonFacts, Outcome, Selection};
use jaga_model::Severity;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn runc_package(manager: PackageManager, version: &str, entries: Vec<FixEntry>) -> Provenance {
    Provenance::Packaged(InstalledPackage {
        binary: "/usr/sbin/runc".to_owned(),
        manager,
        name: "runc".to_owned(),
        version: version.to_owned(),
        fixes: Ok(FixRecord {
            source: "the fixture".to_owned(),
            entries,
        }),
    })
}

fn judge(cve: &str, installed: &str, provenance: &Provenance) -> (Outcome, Severity, String) {
    let table = CveTable::shipped().unwrap();
    let entry = table
        .cve
        .iter()
        .find(|e| e.id == cve && e.component == "runc")
        .unwrap();
    let d = decide(entry, installed, Some(provenance));
    (d.outcome, d.severity, d.evidence)
}

#[test]
fn debian_changelog_names_the_backport_and_not_the_2025_escapes() {
    let entries = parse_debian_changelog(&fixture("runc.changelog.Debian"));
    assert_eq!(entries[0].version.as_deref(), Some("1.1.5+ds1-1+deb12u1"));
    let host = runc_package(PackageManager::Dpkg, "1.1.5+ds1-1+deb12u1", entries.clone());

    let (outcome, severity, evidence) = judge("CVE-2024-21626", "1.1.5+ds1", &host);
    assert_eq!(
        (outcome, severity),
        (Outcome::FixedByDistribution, Severity::Info)
    );
    assert!(
        evidence.contains("runc (1.1.5+ds1-1+deb12u1) bookworm-security: CVE-2024-21626: several container breakouts due to internally leaked fds"),
        "{evidence}"
    );
    for cve in ["CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"] {
        let (outcome, severity, evidence) = judge(cve, "1.1.5+ds1", &host);
        assert_eq!(
            (outcome, severity),
            (Outcome::Affected, Severity::High),
            "{cve}"
        );
        assert!(
            evidence.contains(&format!(
                "{cve} is not named in the fixture, which was checked"
            )),
            "{evidence}"
        );
    }

    // The same changelog against the package before the security upload:
    // the fix is in a later version than the installed one.
    let older = runc_package(PackageManager::Dpkg, "1.1.5+ds1-1", entries);
    let (outcome, severity, evidence) = judge("CVE-2024-21626", "1.1.5+ds1", &older);
    assert_eq!((outcome, severity), (Outcome::Affected, Severity::Critical));
    assert!(evidence.contains("only in a later version"), "{evidence}");
}

#[test]
fn rpm_changelog_text_with_epochs_and_an_entry_without_version() {
    let entries = parse_rpm_changelog(&fixture("runc.rpm-changelog.txt"));
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0].version.as_deref(), Some("4:1.1.12-1"));
    assert_eq!(entries[3].version, None);
    assert!(entries[0].names("CVE-2024-21626"));
    assert!(entries[2].names("CVE-2023-28642"));

    // Installed 1.1.9: the changelog names the fix only in 4:1.1.12-1.
    let installed = runc_package(PackageManager::Rpm, "4:1.1.9-1", entries.clone());
    let (outcome, severity, evidence) = judge("CVE-2024-21626", "1.1.9", &installed);
    assert_eq!((outcome, severity), (Outcome::Affected, Severity::Critical));
    assert!(evidence.contains("4:1.1.12-1"), "{evidence}");

    // A rebuild of 1.1.9 whose changelog carries the backport.
    let mut backport = entries;
    backport.insert(
        0,
        FixEntry {
            version: Some("4:1.1.9-2".to_owned()),
            heading: "Mon Feb 05 2024 Packager <p@example.org> - 4:1.1.9-2".to_owned(),
            items: vec!["backport the fix of CVE-2024-21626".to_owned()],
        },
    );
    let rebuilt = runc_package(PackageManager::Rpm, "4:1.1.9-2", backport);
    let (outcome, _, _) = judge("CVE-2024-21626", "1.1.9", &rebuilt);
    assert_eq!(outcome, Outcome::FixedByDistribution);
}

#[test]
fn alpine_secfixes_block_and_secdb() {
    let (package, entries) = parse_alpine_secfixes(&fixture("runc.APKBUILD"));
    assert_eq!(package.as_deref(), Some("runc"));
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[1].items.len(), 3);

    let fixed = runc_package(PackageManager::Apk, "1.1.10-r2", entries.clone());
    assert_eq!(
        judge("CVE-2024-21626", "1.1.10", &fixed).0,
        Outcome::FixedByDistribution
    );
    // `0`: the CVE never applied to Alpine's package.
    assert_eq!(
        judge("CVE-2025-52565", "1.1.10", &fixed).0,
        Outcome::FixedByDistribution
    );
    assert_eq!(
        judge("CVE-2025-31133", "1.1.10", &fixed).0,
        Outcome::Affected
    );

    // One release earlier: fixed only in a later version, still a finding.
    let earlier = runc_package(PackageManager::Apk, "1.1.10-r1", entries);
    let (outcome, severity, evidence) = judge("CVE-2024-21626", "1.1.10", &earlier);
    assert_eq!((outcome, severity), (Outcome::Affected, Severity::Critical));
    assert!(evidence.contains("secfixes 1.1.10-r2"), "{evidence}");

    let secdb: serde_json::Value = serde_json::from_str(&fixture("secdb-community.json")).unwrap();
    let entries = parse_alpine_secdb(&secdb, "runc").unwrap();
    let installed = runc_package(PackageManager::Apk, "1.1.11-r0", entries);
    let (outcome, _, evidence) = judge("CVE-2024-21626", "1.1.11", &installed);
    assert_eq!(outcome, Outcome::Affected);
    assert!(evidence.contains("secfixes 1.1.12-r0"), "{evidence}");
}

fn debian_host() -> DaemonFacts {
    let component = |name: &str, version: &str| SystemVersionComponents {
        name: name.to_owned(),
        version: version.to_owned(),
        details: None,
    };
    DaemonFacts {
        version: Some(SystemVersion {
            version: Some("20.10.24+dfsg1".to_owned()),
            components: Some(vec![
                component("Engine", "20.10.24+dfsg1"),
                component("runc", "1.1.5+ds1"),
            ]),
            ..Default::default()
        }),
        packages: vec![
            ComponentProvenance {
                component: "runc".to_owned(),
                provenance: runc_package(
                    PackageManager::Dpkg,
                    "1.1.5+ds1-1+deb12u1",
                    parse_debian_changelog(&fixture("runc.changelog.Debian")),
                ),
            },
            ComponentProvenance {
                component: "engine".to_owned(),
                provenance: Provenance::Unknown {
                    why: "no dockerd process under /proc".to_owned(),
                },
            },
        ],
        ..Default::default()
    }
}

#[test]
fn the_audit_reports_a_backport_as_an_info_line_and_keeps_the_rest() {
    let input = AuditInput {
        daemon: debian_host(),
        ..Default::default()
    };
    let findings = run(&input, &Selection::default());
    let cves: Vec<(&str, &str, Severity)> = findings
        .iter()
        .filter(|f| f.object.id.contains("CVE-"))
        .map(|f| (f.object.id.as_str(), f.check_id.as_str(), f.severity))
        .collect();
    assert!(
        cves.contains(&(
            "runc/CVE-2024-21626",
            "jaga-1.1.2-backported",
            Severity::Info
        )),
        "{cves:?}"
    );
    for id in [
        "runc/CVE-2025-31133",
        "runc/CVE-2025-52565",
        "runc/CVE-2025-52881",
    ] {
        assert!(cves.contains(&(id, "1.1.2", Severity::High)), "{cves:?}");
    }
    // The engine's package is unknown: today's judgement, one lower.
    assert!(
        cves.contains(&("engine/CVE-2024-41110", "1.1.2", Severity::High)),
        "{cves:?}"
    );
}

#[test]
fn user_data_extends_or_replaces_the_shipped_table() {
    let user = r#"
[[cve]]
id = "CVE-2024-21626"
component = "runc"
title = "corrected title"
severity = "high"
introduced = "1.0.0-rc93"
fixed = ["1.1.12"]
source = "https://example.org/advisory"

[[cve]]
id = "CVE-2099-0001"
component = "containerd"
title = "a local advisory"
severity = "medium"
introduced = "1.6.0"
fixed = ["1.6.99"]
source = "https://example.org/local"
"#;
    let shipped = CveTable::shipped().unwrap();
    let extended = CveTable::with_user_data(user, "/etc/jaga/cves.toml", false).unwrap();
    assert_eq!(extended.cve.len(), shipped.cve.len() + 1);
    let replaced = extended.find("cve-2024-21626");
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0].title, "corrected title");
    assert_eq!(replaced[0].origin, "/etc/jaga/cves.toml");
    assert_eq!(
        extended.find("CVE-2019-5736")[0].origin,
        "data shipped with jaga"
    );
    let only = CveTable::with_user_data(user, "/etc/jaga/cves.toml", true).unwrap();
    assert_eq!(only.cve.len(), 2);

    let bad = user.replace("severity = \"medium\"", "severity = \"severe\"");
    let error = CveTable::with_user_data(&bad, "x", false).unwrap_err();
    assert_eq!(
        error.to_string(),
        "CVE data entry CVE-2099-0001: unknown severity 'severe'"
    );
}

#[test]
fn explain_says_what_jaga_knows_and_how_it_decided() {
    let table = CveTable::shipped().unwrap();
    let text = explain(&table, &debian_host(), "cve-2024-21626").unwrap();
    let expected = [
        "CVE-2024-21626 (runc, critical)",
        "  known from: data shipped with jaga",
        "  binary: /usr/sbin/runc, dpkg package runc 1.1.5+ds1-1+deb12u1; record of fixes: the fixture (3 entries)",
        "  - runc 1.1.5+ds1 is affected by upstream versions (introduced in 1.0.0-rc93, fixed in 1.1.12)",
        "  verdict: fixed by the distribution (info)",
    ];
    for line in expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    let text = explain(&table, &debian_host(), "CVE-2025-31133").unwrap();
    assert!(text.contains("verdict: a finding (high)"), "{text}");
    assert!(
        text.contains("CVE-2025-31133 is not named in the fixture"),
        "{text}"
    );
    let text = explain(&table, &debian_host(), "CVE-2020-15257").unwrap();
    assert!(
        text.contains("the daemon reports no containerd version"),
        "{text}"
    );
    assert!(explain(&table, &debian_host(), "CVE-2000-0001").is_none());
}
