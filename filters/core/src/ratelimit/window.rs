//! Fixed windows aligned to their unit, and the draft-03 `x-ratelimit-*` headers.

use super::policy::Limit;

/// Start of the window `now` (seconds since the epoch) falls in.
pub fn window_start(now: u64, limit: &Limit) -> u64 {
    let len = limit.unit.seconds();
    now - now % len
}

/// Seconds until the window `now` falls in ends.
pub fn reset_after(now: u64, limit: &Limit) -> u64 {
    let len = limit.unit.seconds();
    len - now % len
}

/// One rule's state for this request, to build the response headers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: Limit,
    /// Requests left in the window after this one (0 when over).
    pub remaining: u64,
    pub reset: u64,
}

/// `x-ratelimit-limit`, `-remaining` and `-reset` for the quotas that applied:
/// the closest one (fewest remaining, then soonest reset) is reported, and the
/// limit header lists every policy (`3, 3;w=3600, 100;w=60`).
pub fn headers(quotas: &[Quota]) -> Option<[(&'static str, String); 3]> {
    use std::fmt::Write;
    let closest = quotas.iter().min_by_key(|q| (q.remaining, q.reset))?;
    // Written in place: this runs on every allowed request.
    let mut limit = String::with_capacity(24 * (quotas.len() + 1));
    let _ = write!(limit, "{}", closest.limit.requests);
    for q in quotas {
        let _ = write!(limit, ", {};w={}", q.limit.requests, q.limit.unit.seconds());
    }
    let number = |n: u64| {
        let mut s = String::with_capacity(20);
        let _ = write!(s, "{n}");
        s
    };
    Some([
        ("x-ratelimit-limit", limit),
        ("x-ratelimit-remaining", number(closest.remaining)),
        ("x-ratelimit-reset", number(closest.reset)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::policy::Unit;

    fn limit(requests: u64, unit: Unit) -> Limit {
        Limit { requests, unit }
    }

    #[test]
    fn windows_align_to_the_unit() {
        let hour = limit(3, Unit::Hour);
        assert_eq!(window_start(7_205, &hour), 7_200);
        assert_eq!(reset_after(7_205, &hour), 3_595);
        assert_eq!(reset_after(7_200, &hour), 3_600);
        let second = limit(1, Unit::Second);
        assert_eq!(window_start(99, &second), 99);
        assert_eq!(reset_after(99, &second), 1);
    }

    #[test]
    fn headers_report_the_closest_quota_and_list_all() {
        let q = |requests, unit, remaining, reset| Quota {
            limit: limit(requests, unit),
            remaining,
            reset,
        };
        let h = headers(&[q(3, Unit::Hour, 0, 3000)]).unwrap();
        assert_eq!(h[0].1, "3, 3;w=3600");
        assert_eq!(h[1].1, "0");
        assert_eq!(h[2].1, "3000");
        let h = headers(&[q(100, Unit::Minute, 40, 20), q(3, Unit::Hour, 2, 3000)]).unwrap();
        assert_eq!(h[0].1, "3, 100;w=60, 3;w=3600");
        assert_eq!(h[1].1, "2");
        assert!(headers(&[]).is_none());
    }
}
