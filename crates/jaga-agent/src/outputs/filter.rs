//! Which alerts an output takes: `min_level`, rule `groups`, rule ids
//! (`rules`) and container name globs (`containers`). Empty lists take any.

use jaga_config::OutputConfig;
use jaga_model::glob_matches;
use jaga_model::Alert;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub min_level: u8,
    pub groups: Vec<String>,
    pub rules: Vec<String>,
    pub containers: Vec<String>,
}

impl Filter {
    pub fn of(config: &OutputConfig) -> Self {
        Self {
            min_level: config.min_level,
            groups: config.groups.clone(),
            rules: config.rules.clone(),
            containers: config.containers.clone(),
        }
    }

    pub fn takes(&self, alert: &Alert) -> bool {
        if alert.rule.level < self.min_level {
            return false;
        }
        if !self.rules.is_empty() && !self.rules.contains(&alert.rule.id) {
            return false;
        }
        if !self.groups.is_empty() && !alert.rule.groups.iter().any(|g| self.groups.contains(g)) {
            return false;
        }
        if !self.containers.is_empty() {
            let Some(container) = &alert.container else {
                return false;
            };
            let name = container.name.trim_start_matches('/');
            return self.containers.iter().any(|glob| glob_matches(glob, name));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaga_model::{AlertAgent, AlertRule, EventContainer};

    fn alert(rule: &str, level: u8, groups: &[&str], container: Option<&str>) -> Alert {
        Alert {
            id: "a".to_owned(),
            timestamp: "2024-01-01T00:00:00.000Z".to_owned(),
            rule: AlertRule {
                id: rule.to_owned(),
                level,
                description: String::new(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                mitre: Vec::new(),
            },
            agent: AlertAgent::default(),
            container: container.map(|name| EventContainer {
                name: name.to_owned(),
                ..EventContainer::default()
            }),
            data: Default::default(),
            location: String::new(),
            event: None,
            episode: None,
        }
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_matches("web-*", "web-1"));
        assert!(glob_matches("*-db", "shop-db"));
        assert!(glob_matches("w?b", "web"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("web", "web-1"));
        assert!(!glob_matches("a*b*c", "aXbY"));
        assert!(glob_matches("a*b*c", "aXbYc"));
        assert!(!glob_matches(&"*a".repeat(30), &"a".repeat(29)));
    }

    #[test]
    fn every_filter_narrows_and_empty_takes_any() {
        let any = Filter::default();
        assert!(any.takes(&alert("1", 0, &[], None)));
        let filter = Filter {
            min_level: 5,
            groups: vec!["attack".into(), "exec".into()],
            rules: vec!["91011".into(), "31100".into()],
            containers: vec!["web-*".into()],
        };
        assert!(filter.takes(&alert("91011", 6, &["docker", "exec"], Some("/web-1"))));
        assert!(!filter.takes(&alert("91011", 4, &["exec"], Some("web-1"))));
        assert!(!filter.takes(&alert("91001", 6, &["exec"], Some("web-1"))));
        assert!(!filter.takes(&alert("91011", 6, &["docker"], Some("web-1"))));
        assert!(!filter.takes(&alert("91011", 6, &["exec"], Some("db"))));
        assert!(!filter.takes(&alert("91011", 6, &["exec"], None)));
    }
}
