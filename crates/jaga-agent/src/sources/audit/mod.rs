//! The posture audit as a source: what it gathers from the host and the
//! Engine, and the audit that runs inside the agent.

pub mod continuous;
pub mod gather;
pub mod packages;

use anyhow::Context as _;
use jaga_audit::CveTable;
use jaga_config::AuditConfig;

/// The CVE data: jaga's, extended or replaced by `[audit] cve_data`.
pub fn load_cve_table(config: &AuditConfig) -> anyhow::Result<CveTable> {
    if config.cve_data.as_os_str().is_empty() {
        return CveTable::shipped().context("jaga's own CVE data does not parse");
    }
    let path = &config.cve_data;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read [audit] cve_data '{}'", path.display()))?;
    CveTable::with_user_data(&text, &path.display().to_string(), config.cve_data_replaces)
        .with_context(|| format!("[audit] cve_data '{}' is not usable", path.display()))
}
