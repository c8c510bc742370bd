//! The rules of one route that cannot be programmed as written, and what they
//! do to its status on each parent, as the spec's `PartiallyInvalid` condition
//! says: a route whose every rule is invalid is not Accepted; a route with some
//! valid rules stays `Accepted=True` and gains `PartiallyInvalid=True`
//! (`UnsupportedValue`, the message starting "Dropped Rule") naming the rules
//! dropped. A rule dropped for a filter or a value answers 500 on its matches
//! rather than vanish, so a request written for it never falls through to
//! another route that lacks its filters (the spec asks the same of an
//! unresolvable filter); a match Envoy could not take at all (a bad path or
//! regex) is left out, as no route can carry it.

use super::status::{Condition, RouteParentStatus};

/// Why a rule cannot be programmed as written: the condition's reason, and a
/// message starting with the field's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub reason: &'static str,
    pub message: String,
}

impl RuleError {
    pub fn unsupported(message: String) -> Self {
        Self {
            reason: "UnsupportedValue",
            message,
        }
    }

    pub fn incompatible(message: String) -> Self {
        Self {
            reason: "IncompatibleFilters",
            message,
        }
    }

    /// Places the message's path under `rules[index]`.
    pub fn in_rule(mut self, index: usize) -> Self {
        self.message = format!("rules[{index}].{}", self.message);
        self
    }
}

/// The invalid rules of a route with `rules` rules, each error's message
/// already under its `rules[i]` path.
pub struct InvalidRules {
    rules: usize,
    errors: Vec<(usize, RuleError)>,
}

impl InvalidRules {
    pub fn of(rules: usize) -> Self {
        Self {
            rules,
            errors: Vec::new(),
        }
    }

    /// Records that rule `index` cannot be programmed (once per message).
    pub fn push(&mut self, index: usize, error: RuleError) {
        let error = error.in_rule(index);
        if !self.errors.iter().any(|(_, e)| *e == error) {
            self.errors.push((index, error));
        }
    }

    fn dropped(&self) -> Vec<usize> {
        let mut rules: Vec<usize> = self.errors.iter().map(|(i, _)| *i).collect();
        rules.sort_unstable();
        rules.dedup();
        rules
    }

    fn messages(&self) -> String {
        let messages: Vec<&str> = self
            .errors
            .iter()
            .map(|(_, e)| e.message.as_str())
            .collect();
        messages.join("; ")
    }

    /// Sets each accepted parent's conditions: `Accepted=False` (the first
    /// error's reason, every message) when no rule is left, else
    /// `PartiallyInvalid=True`.
    pub fn apply(&self, parents: &mut [RouteParentStatus]) {
        let Some((_, first)) = self.errors.first() else {
            return;
        };
        let dropped = self.dropped();
        let condition = if dropped.len() >= self.rules {
            Condition::new("Accepted", false, first.reason, self.messages())
        } else {
            let list: Vec<String> = dropped.iter().map(usize::to_string).collect();
            let rules = if dropped.len() == 1 { "Rule" } else { "Rules" };
            Condition::new(
                "PartiallyInvalid",
                true,
                "UnsupportedValue",
                format!("Dropped {rules} {}: {}", list.join(", "), self.messages()),
            )
        };
        for parent in parents {
            let Some(accepted) = parent.conditions.first_mut() else {
                continue;
            };
            if accepted.status != "True" {
                continue; // not accepted: PartiallyInvalid MUST NOT be set
            }
            let mut condition = condition.clone();
            condition.observed_generation = accepted.observed_generation;
            if condition.kind == "Accepted" {
                *accepted = condition;
            } else {
                parent.conditions.push(condition);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::status::{observed, ParentReference};

    fn parent(accepted: bool) -> RouteParentStatus {
        RouteParentStatus {
            parent_ref: ParentReference {
                namespace: "default".to_owned(),
                name: "eg".to_owned(),
                section_name: None,
                port: None,
            },
            controller_name: "tollgate.dev/gateway-controller".to_owned(),
            conditions: observed(
                vec![
                    Condition::new("Accepted", accepted, "Accepted", String::new()),
                    Condition::new("ResolvedRefs", true, "ResolvedRefs", String::new()),
                ],
                7,
            ),
        }
    }

    fn kinds(p: &RouteParentStatus) -> Vec<(&str, &str, &str)> {
        p.conditions
            .iter()
            .map(|c| (c.kind, c.status, c.reason))
            .collect()
    }

    #[test]
    fn a_route_with_some_valid_rules_stays_accepted_and_is_partially_invalid() {
        let mut invalid = InvalidRules::of(3);
        invalid.push(1, RuleError::unsupported("filters[0]: nope".to_owned()));
        invalid.push(1, RuleError::unsupported("filters[0]: nope".to_owned()));
        let mut parents = [parent(true)];
        invalid.apply(&mut parents);
        assert_eq!(
            kinds(&parents[0]),
            [
                ("Accepted", "True", "Accepted"),
                ("ResolvedRefs", "True", "ResolvedRefs"),
                ("PartiallyInvalid", "True", "UnsupportedValue")
            ]
        );
        let partially = &parents[0].conditions[2];
        assert_eq!(
            partially.message,
            "Dropped Rule 1: rules[1].filters[0]: nope"
        );
        assert_eq!(partially.observed_generation, 7);
    }

    #[test]
    fn a_route_whose_every_rule_is_invalid_is_not_accepted() {
        let mut invalid = InvalidRules::of(2);
        invalid.push(0, RuleError::unsupported("a".to_owned()));
        invalid.push(1, RuleError::unsupported("b".to_owned()));
        let mut parents = [parent(true)];
        invalid.apply(&mut parents);
        assert_eq!(
            kinds(&parents[0])[0],
            ("Accepted", "False", "UnsupportedValue")
        );
        assert_eq!(parents[0].conditions[0].message, "rules[0].a; rules[1].b");
        assert_eq!(parents[0].conditions.len(), 2);
    }

    #[test]
    fn a_parent_that_did_not_accept_the_route_gets_no_partially_invalid() {
        let mut invalid = InvalidRules::of(2);
        invalid.push(0, RuleError::unsupported("a".to_owned()));
        let mut parents = [parent(false)];
        invalid.apply(&mut parents);
        assert_eq!(parents[0].conditions.len(), 2);
        assert_eq!(kinds(&parents[0])[0], ("Accepted", "False", "Accepted"));
    }

    #[test]
    fn a_valid_route_keeps_its_conditions() {
        let mut parents = [parent(true)];
        InvalidRules::of(2).apply(&mut parents);
        assert_eq!(kinds(&parents[0]).len(), 2);
    }
}
