//! `jaga audit --explain CVE-…`: what jaga knows of a CVE and how it
//! decided for this host, step by step.

use std::fmt::Write as _;

use crate::checks::component_versions;
use crate::distro::Provenance;
use crate::facts::DaemonFacts;
use crate::versions::{decide, CveTable, Outcome};

/// The explanation, or `None` when the table has no entry with this id.
/// Plain text; the caller escapes control characters before printing.
pub fn explain(table: &CveTable, daemon: &DaemonFacts, cve: &str) -> Option<String> {
    let entries = table.find(cve);
    if entries.is_empty() {
        return None;
    }
    let versions = component_versions(daemon);
    let mut out = String::new();
    for entry in entries {
        let _ = writeln!(
            out,
            "{} ({}, {})",
            entry.id, entry.component, entry.severity
        );
        let _ = writeln!(out, "  {}", entry.title);
        let _ = writeln!(
            out,
            "  affected: from {}; fixed in {}",
            entry.introduced,
            entry.fixed.join(", ")
        );
        let _ = writeln!(out, "  source: {}", entry.source);
        let _ = writeln!(out, "  known from: {}", entry.origin);
        let _ = writeln!(out, "On this host:");
        let Some((_, installed)) = versions.iter().find(|(c, _)| *c == entry.component) else {
            let _ = writeln!(
                out,
                "  the daemon reports no {} version: nothing to judge",
                entry.component
            );
            continue;
        };
        let provenance = daemon.provenance_of(&entry.component);
        let _ = writeln!(out, "  binary: {}", describe(provenance));
        let decision = decide(entry, installed, provenance);
        for step in &decision.steps {
            let _ = writeln!(out, "  - {step}");
        }
        let verdict = match decision.outcome {
            Outcome::NotAffected => "not affected".to_owned(),
            Outcome::Affected => format!("a finding ({})", decision.severity.as_str()),
            Outcome::FixedByDistribution => "fixed by the distribution (info)".to_owned(),
        };
        let _ = writeln!(out, "  verdict: {verdict}");
        out.push('\n');
    }
    Some(out)
}

fn describe(provenance: Option<&Provenance>) -> String {
    match provenance {
        None => "not looked up".to_owned(),
        Some(Provenance::Unknown { why }) => format!("unknown: {why}"),
        Some(Provenance::Unpackaged { binary }) => format!("{binary}, owned by no package"),
        Some(Provenance::Packaged(p)) => {
            let record = match &p.fixes {
                Ok(record) => format!(
                    "record of fixes: {} ({} entries)",
                    record.source,
                    record.entries.len()
                ),
                Err(why) => format!("no record of fixes: {why}"),
            };
            format!(
                "{}, {} package {} {}; {record}",
                p.binary,
                p.manager.as_str(),
                p.name,
                p.version
            )
        }
    }
}
