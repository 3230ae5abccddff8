//! Permissions compiled for matching: `{action, path}` where the path is absent (every
//! path), a name, or `~regex` matching the whole name.

use regex::Regex;

use super::Action;
use crate::config::Permission;

#[derive(Debug, Clone)]
enum PathRule {
    Any,
    Exact(String),
    /// None: the expression does not compile (only possible for a `Config` built in code, or
    /// a JWT claim), so it matches nothing.
    Regex(Option<Regex>),
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    action: Action,
    path: PathRule,
}

impl Rule {
    pub(crate) fn new(action: Action, path: Option<&str>) -> Rule {
        let path = match path {
            None | Some("") => PathRule::Any,
            Some(p) => match p.strip_prefix('~') {
                Some(re) if !re.is_empty() => {
                    PathRule::Regex(Regex::new(&format!("^(?:{re})$")).ok())
                }
                Some(_) => PathRule::Regex(None),
                None => PathRule::Exact(p.to_string()),
            },
        };
        Rule { action, path }
    }

    /// Like MediaMTX, the path only matters for the actions that concern one.
    pub(crate) fn allows(&self, action: Action, path: &str) -> bool {
        if self.action != action {
            return false;
        }
        if !action.has_path() {
            return true;
        }
        match &self.path {
            PathRule::Any => true,
            PathRule::Exact(p) => p == path,
            PathRule::Regex(re) => re.as_ref().is_some_and(|r| r.is_match(path)),
        }
    }
}

pub(crate) fn compile(perms: &[Permission]) -> Vec<Rule> {
    perms
        .iter()
        .map(|p| Rule::new(p.action, p.path.as_deref()))
        .collect()
}

pub(crate) fn any_allows(rules: &[Rule], action: Action, path: &str) -> bool {
    rules.iter().any(|r| r.allows(action, path))
}
