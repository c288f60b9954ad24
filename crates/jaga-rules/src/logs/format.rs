//! The rule file format (YAML):
//!
//! ```yaml
//! decoders:                 # optional, see jaga_decode::UserDecoderSpec
//!   - name: myapp
//!     prematch: '^myapp\['
//! rules:
//!   - id: "93100"
//!     level: 7              # 0..=15; 0 matches but never alerts
//!     description: SQL injection attempt
//!     groups: [web, attack, sql_injection]
//!     mitre: [T1190]
//!     decoder: access       # optional: only lines from decoders starting with this
//!     parent: "93000"       # optional: only when that rule matched the line
//!     match:                # every field condition must hold
//!       url: { regex: '\bunion\b.{0,100}\bselect\b' }
//!       user_agent|referer: { regex: 'sqlmap' }   # on any of these fields
//!       status: { ge: 400, lt: 500 }
//!       srcip: { cidr: [10.0.0.0/8], not: true }
//!       method: { any_of: [GET, POST] }
//!       user_agent: { literal: sqlmap }
//!       tool: { list: scanners }   # one of `lists: { scanners: [...] }`
//!     allow:                # optional: the rule stays quiet when one holds
//!       - srcip: { cidr: [127.0.0.0/8] }
//!     frequency: { count: 20, timeframe: 60, same: srcip }
//! ```
//!
//! Field values are normalized (see `normalize`) before `regex` and
//! `literal` unless the condition says `normalize: false`. Regexes are
//! case-insensitive unless `case_sensitive: true`; they match bytes, with
//! ASCII classes and case folding (`(?u:...)` for Unicode ones). A
//! condition on `a|b` holds when it holds on field `a` or on field `b`; a
//! match's `payload_field` names the first of them that matched.

use std::collections::BTreeMap;

use jaga_decode::UserDecoderSpec;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub decoders: Vec<UserDecoderSpec>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Named lists of values, for conditions `{ list: NAME }`.
    #[serde(default)]
    pub lists: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub level: u8,
    pub description: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub mitre: Vec<String>,
    #[serde(default)]
    pub decoder: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default, rename = "match")]
    pub conditions: BTreeMap<String, ConditionSpec>,
    #[serde(default)]
    pub allow: Vec<BTreeMap<String, ConditionSpec>>,
    #[serde(default)]
    pub frequency: Option<FrequencySpec>,
    /// The Falco rule this one follows, by name (process rules).
    #[serde(default)]
    pub falco: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    pub regex: Option<String>,
    /// Substring, case-insensitive.
    pub literal: Option<String>,
    /// Whole value, case-insensitive.
    pub equals: Option<String>,
    pub any_of: Option<Vec<String>>,
    /// Whole value, case-insensitive, equal to one item of the named list
    /// (`lists:` at the top of a file, any file of the set).
    pub list: Option<String>,
    pub cidr: Option<Vec<String>>,
    pub gt: Option<f64>,
    pub ge: Option<f64>,
    pub lt: Option<f64>,
    pub le: Option<f64>,
    #[serde(default)]
    pub not: bool,
    pub normalize: Option<bool>,
    #[serde(default)]
    pub case_sensitive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencySpec {
    pub count: u32,
    /// Seconds.
    pub timeframe: u64,
    /// Count separately per value of this field (`srcip`); none: one count.
    #[serde(default)]
    pub same: Option<String>,
}
