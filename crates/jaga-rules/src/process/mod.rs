//! Process rules: conditions on each execution inside a container, in the
//! YAML conventions of the log rules (same `match`, `allow`, `frequency`,
//! levels, groups and MITRE ids), compiled by the same engine.
//!
//! ```yaml
//! lists:                       # named lists for `{ list: NAME }`
//!   shell_binaries: [sh, bash, ash]
//! process_rules:
//!   - id: "96100"
//!     level: 8
//!     description: Shell in the payments container
//!     falco: Terminal shell in container   # optional: the Falco rule it follows
//!     groups: [process, shell]
//!     mitre: [T1059.004]
//!     match:
//!       name: { list: shell_binaries }
//!       container_name: { regex: '^payments' }
//!     allow:
//!       - user: { equals: deploy }
//! allow_images:                # per image: these rules stay quiet there
//!   - images: ["debug/*", "*:dev"]
//!     rules: ["96000", "96005"]   # empty or absent: every process rule
//! ```
//!
//! Fields: see `rules/process.yml`. Values are matched as they are: a
//! process's arguments are not URL text, so conditions are not normalized
//! unless they say `normalize: true`.

use std::collections::{BTreeMap, HashMap};

use jaga_decode::Fields;
use serde::Deserialize;

use crate::logs::engine::{line_of_value, parse_yaml, Lists};
use crate::logs::format::RuleSpec;
use crate::logs::{FrequencyState, RuleFileError, RuleMatch, RuleSet, RuleSource};

/// The built-in process rules.
pub const PROCESS_RULES: &str = include_str!("../../rules/process.yml");
pub const PROCESS_RULES_NAME: &str = "built-in process rules";

/// What a decoded execution is called (the `decoder` of its fields).
pub const PROCESS_DECODER: &str = "process";

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRuleFile {
    #[serde(default)]
    pub lists: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub process_rules: Vec<RuleSpec>,
    #[serde(default)]
    pub allow_images: Vec<ImageAllow>,
}

/// Rules that stay quiet for containers of some images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageAllow {
    /// Image globs (`*`, `?`), as the container names its image.
    pub images: Vec<String>,
    /// Rule ids; empty: every process rule.
    #[serde(default)]
    pub rules: Vec<String>,
}

/// Whether a rule file holds process rules (a top-level `process_rules:`).
pub fn is_process_rule_file(text: &str) -> bool {
    text.lines().any(|line| line.starts_with("process_rules:"))
}

/// Process rules compiled.
#[derive(Debug)]
pub struct ProcessRules {
    set: RuleSet,
    falco: HashMap<String, String>,
    allow_images: Vec<ImageAllow>,
}

impl ProcessRules {
    /// The built-in rules, then `sources` in order; errors name the file
    /// and the line.
    pub fn parse_sources(sources: &[RuleSource<'_>]) -> Result<Self, RuleFileError> {
        let mut specs: Vec<(usize, RuleSpec)> = Vec::new();
        let mut lists = Lists::new();
        let mut allow_images = Vec::new();
        for (index, source) in sources.iter().enumerate() {
            let parsed: ProcessRuleFile = parse_yaml(source)?;
            if let Some(spec) = parsed.process_rules.iter().find(|s| s.decoder.is_some()) {
                return Err(RuleFileError::Syntax {
                    file: source.name.map(str::to_owned),
                    line: line_of_value(source.text, "id", &spec.id, 0),
                    message: format!("rule {}: process rules have no decoder", spec.id),
                });
            }
            lists.extend(parsed.lists);
            allow_images.extend(parsed.allow_images);
            specs.extend(parsed.process_rules.into_iter().map(|mut spec| {
                as_is(&mut spec);
                (index, spec)
            }));
        }
        let falco = specs
            .iter()
            .filter_map(|(_, spec)| Some((spec.id.clone(), spec.falco.clone()?)))
            .collect();
        let set = RuleSet::compile(sources, &[], &specs, &lists)?;
        Ok(Self {
            set,
            falco,
            allow_images,
        })
    }

    /// The built-in rules alone.
    pub fn builtin() -> Result<Self, RuleFileError> {
        Self::parse_sources(&[RuleSource {
            name: Some(PROCESS_RULES_NAME),
            text: PROCESS_RULES,
        }])
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The Falco rule that rule `id` follows, when it names one.
    pub fn falco_name(&self, id: &str) -> Option<&str> {
        self.falco.get(id).map(String::as_str)
    }

    /// The rules an execution's `fields` match, less those allowed for
    /// the container's `image`; `now` in seconds for frequency windows.
    pub fn evaluate(
        &self,
        fields: &Fields,
        image: &str,
        now: u64,
        state: &mut FrequencyState,
    ) -> Vec<RuleMatch> {
        let mut matches = self.set.evaluate(fields, now, state);
        matches.retain(|m| !self.allowed(&m.id, image));
        matches
    }

    fn allowed(&self, rule: &str, image: &str) -> bool {
        self.allow_images.iter().any(|allow| {
            (allow.rules.is_empty() || allow.rules.iter().any(|r| r == rule))
                && allow
                    .images
                    .iter()
                    .any(|glob| jaga_model::glob_matches(glob, image))
        })
    }
}

/// One execution, as process rules see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Execution {
    /// The executable's path inside the container; `None` when unknown.
    pub exe: Option<String>,
    /// The process's name (`comm`): a busybox applet's own name.
    pub name: String,
    /// With `argv[0]`.
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub tty: bool,
    pub parent_exe: Option<String>,
    pub grandparent_exe: Option<String>,
    /// The executable lives in the container's writable layer; `None`: unknown.
    pub exe_writable_layer: Option<bool>,
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    pub pid: u32,
    pub ppid: u32,
}

/// The last part of a path.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Execution {
    /// The fields rules match (see `rules/process.yml`).
    pub fn fields(&self) -> Fields<'static> {
        let mut fields = Fields::new(PROCESS_DECODER);
        let mut set =
            |name: &'static str, value: String| fields.values.push((name.into(), value.into()));
        let name = if self.name.is_empty() {
            self.exe.as_deref().map(base_name).unwrap_or_default()
        } else {
            &self.name
        };
        set("name", name.to_owned());
        if let Some(exe) = &self.exe {
            set("exe", exe.clone());
        }
        if let Some(argv0) = self.args.first() {
            set("argv0", argv0.clone());
        }
        set("args", self.args.get(1..).unwrap_or_default().join(" "));
        set("cmdline", self.args.join(" "));
        if let Some(cwd) = &self.cwd {
            set("cwd", cwd.clone());
        }
        if let Some(user) = &self.user {
            set("user", user.clone());
        }
        if let Some(uid) = self.uid {
            set("uid", uid.to_string());
        }
        set("tty", self.tty.to_string());
        if let Some(parent) = &self.parent_exe {
            set("parent", base_name(parent).to_owned());
            set("parent_exe", parent.clone());
        }
        if let Some(grandparent) = &self.grandparent_exe {
            set("gparent", base_name(grandparent).to_owned());
            set("gparent_exe", grandparent.clone());
        }
        set(
            "exe_writable_layer",
            self.exe_writable_layer
                .map_or("unknown".to_owned(), |w| w.to_string()),
        );
        set("container_id", self.container_id.clone());
        set("container_name", self.container_name.clone());
        set("image", self.image.clone());
        set("pid", self.pid.to_string());
        set("ppid", self.ppid.to_string());
        fields
    }
}

/// Process fields are matched as they are unless a condition asks.
fn as_is(spec: &mut RuleSpec) {
    let conditions = spec
        .conditions
        .values_mut()
        .chain(spec.allow.iter_mut().flat_map(|a| a.values_mut()));
    for condition in conditions {
        condition.normalize.get_or_insert(false);
    }
}

#[cfg(test)]
mod tests;
