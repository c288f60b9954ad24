//! Audit output: a grouped table for people, JSON, and SARIF 2.1.0 for code
//! scanning tools; and a score per threat.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jaga_model::{escape_control, Finding, Severity, Threat};
use serde::Serialize;

use crate::checks::ALL_CHECKS;

/// 100 minus a penalty per finding (critical 40, high 20, medium 8, low 3,
/// info 0), floored at 0: one number per threat to watch over time.
pub fn scores(findings: &[Finding]) -> BTreeMap<&'static str, u32> {
    let mut scores: BTreeMap<&'static str, u32> =
        Threat::ALL.iter().map(|t| (t.as_str(), 100)).collect();
    for f in findings {
        let penalty = match f.severity {
            Severity::Critical => 40,
            Severity::High => 20,
            Severity::Medium => 8,
            Severity::Low => 3,
            Severity::Info => 0,
        };
        if let Some(score) = scores.get_mut(f.threat.as_str()) {
            *score = score.saturating_sub(penalty);
        }
    }
    scores
}

#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub findings: &'a [Finding],
    pub scores: BTreeMap<&'static str, u32>,
    pub counts: BTreeMap<&'static str, usize>,
}

impl<'a> Report<'a> {
    pub fn new(findings: &'a [Finding]) -> Self {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for f in findings {
            *counts.entry(f.severity.as_str()).or_default() += 1;
        }
        Self {
            findings,
            scores: scores(findings),
            counts,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Findings grouped by threat, then practice; `colour` for a terminal.
    pub fn table(&self, colour: bool) -> String {
        let paint = |severity: Severity, text: &str| -> String {
            if !colour {
                return text.to_owned();
            }
            let code = match severity {
                Severity::Critical => "1;31",
                Severity::High => "31",
                Severity::Medium => "33",
                Severity::Low => "36",
                Severity::Info => "2",
            };
            format!("\x1b[{code}m{text}\x1b[0m")
        };
        let mut out = String::new();
        for threat in Threat::ALL {
            let in_threat: Vec<&Finding> = self
                .findings
                .iter()
                .filter(|f| f.threat == threat)
                .collect();
            let score = self.scores.get(threat.as_str()).copied().unwrap_or(100);
            let _ = writeln!(
                out,
                "{} — score {score}/100, {} finding(s)",
                threat.title(),
                in_threat.len()
            );
            let mut by_practice: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
            for f in in_threat {
                by_practice.entry(f.practice.title()).or_default().push(f);
            }
            for (practice, findings) in by_practice {
                let _ = writeln!(out, "  {practice}");
                for f in findings {
                    let severity = format!("{:<8}", f.severity.as_str().to_uppercase());
                    let _ = writeln!(
                        out,
                        "    {} {:<24} {} {} {}",
                        paint(f.severity, &severity),
                        f.check_id,
                        f.object.kind,
                        escape_control(&f.object.name),
                        f.title
                    );
                    let _ = writeln!(
                        out,
                        "             evidence: {}",
                        escape_control(&f.evidence)
                    );
                    let _ = writeln!(out, "             fix: {}", f.remediation);
                }
            }
            out.push('\n');
        }
        let summary: Vec<String> = ["critical", "high", "medium", "low", "info"]
            .iter()
            .map(|s| format!("{} {s}", self.counts.get(s).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(
            out,
            "{} finding(s): {}",
            self.findings.len(),
            summary.join(", ")
        );
        out
    }

    /// SARIF 2.1.0: one rule per check, one result per finding, located by
    /// the object's kind and name.
    pub fn sarif(&self) -> String {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut rules = Vec::new();
        for check in ALL_CHECKS {
            if seen.contains_key(check.id) {
                continue;
            }
            seen.insert(check.id, rules.len());
            rules.push(serde_json::json!({
                "id": check.id,
                "name": check.title,
                "shortDescription": {"text": check.title},
                "help": {"text": check.remediation},
                "properties": {
                    "security-severity": security_severity(check.severity),
                    "tags": ["security", check.threat.as_str()],
                },
            }));
        }
        let results: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "ruleId": f.check_id,
                    "ruleIndex": seen.get(f.check_id.as_str()),
                    "level": match f.severity {
                        Severity::Critical | Severity::High => "error",
                        Severity::Medium => "warning",
                        Severity::Low | Severity::Info => "note",
                    },
                    "message": {"text": format!("{} ({} {}): {}", f.title, f.object.kind, f.object.name, f.evidence)},
                    "locations": [{
                        "logicalLocations": [{
                            "name": f.object.name,
                            "fullyQualifiedName": format!("{}/{}", f.object.kind, f.object.id),
                            "kind": "resource",
                        }],
                    }],
                    "partialFingerprints": {"jagaFinding/v1": f.identity()},
                    "properties": {
                        "severity": f.severity.as_str(),
                        "threat": f.threat.as_str(),
                        "practice": f.practice,
                        "remediation": f.remediation,
                    },
                })
            })
            .collect();
        let sarif = serde_json::json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "jaga",
                    "informationUri": "https://github.com/jaga",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }},
                "results": results,
            }],
        });
        serde_json::to_string_pretty(&sarif).unwrap_or_default()
    }
}

/// GitHub's numeric severity: critical ≥ 9, high ≥ 7, medium ≥ 4.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}
