//! A request's standing against every rule that applied to it, whichever mode
//! counted it: refused or not, and the response headers to send.

use super::policy::Limit;
use super::window::{self, Quota};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    over: bool,
    shadow_over: u32,
    quotas: Vec<Quota>,
}

/// One rule's standing after this request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub limit: Limit,
    pub shadow: bool,
    pub over: bool,
    /// Requests left in the window (0 when over).
    pub remaining: u64,
    /// Seconds until the window ends.
    pub reset: u64,
}

impl Verdict {
    /// Adds one rule's standing. A `shadowMode` rule over its limit is only
    /// counted as such; it neither refuses nor shows in the headers.
    pub fn record(&mut self, s: Standing) {
        if s.shadow {
            if s.over {
                self.shadow_over += 1;
            }
            return;
        }
        self.over |= s.over;
        self.quotas.push(Quota {
            limit: s.limit,
            remaining: s.remaining,
            reset: s.reset,
        });
    }

    /// Refused without a per-rule standing (a service that answers only its
    /// overall code).
    pub fn refuse(&mut self) {
        self.over = true;
    }

    /// Counted as a shadow rule over its limit, without a per-rule standing.
    pub fn shadow_refuse(&mut self) {
        self.shadow_over += 1;
    }

    pub fn is_over(&self) -> bool {
        self.over
    }

    /// How many `shadowMode` rules this request exceeded.
    pub fn shadow_over(&self) -> u32 {
        self.shadow_over
    }

    /// `x-ratelimit-*` for the closest quota; None when no enforced rule applied.
    pub fn headers(&self) -> Option<[(&'static str, String); 3]> {
        window::headers(&self.quotas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::policy::Unit;

    fn standing(requests: u64, shadow: bool, over: bool, remaining: u64) -> Standing {
        Standing {
            limit: Limit {
                requests,
                unit: Unit::Hour,
            },
            shadow,
            over,
            remaining,
            reset: 100,
        }
    }

    #[test]
    fn any_enforced_rule_over_refuses_and_shadow_rules_only_count() {
        let mut v = Verdict::default();
        v.record(standing(3, false, false, 2));
        assert!(!v.is_over());
        v.record(standing(1, true, true, 0));
        assert!(!v.is_over());
        assert_eq!(v.shadow_over(), 1);
        v.record(standing(5, false, true, 0));
        assert!(v.is_over());
        let h = v.headers().unwrap();
        assert_eq!(
            h[0].1, "5, 3;w=3600, 5;w=3600",
            "shadow rules are not listed"
        );
        assert_eq!(h[1].1, "0");
    }

    #[test]
    fn no_enforced_rule_means_no_headers() {
        let mut v = Verdict::default();
        v.record(standing(1, true, false, 0));
        assert!(v.headers().is_none());
        v.refuse();
        assert!(v.is_over());
    }
}
