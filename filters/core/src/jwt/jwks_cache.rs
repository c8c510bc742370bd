//! The remote JWKS cache's bookkeeping: when to fetch, who fetches, and what a
//! fetch result does to the cache. Host-independent; the filter keeps one
//! [`FetchState`] per JWKS source in proxy-wasm shared data, so every Envoy
//! worker sees the same schedule and one fetch serves them all.
//!
//! The rules, in one place:
//! - Keys are refreshed `cacheDuration` after a successful fetch; the old keys
//!   keep serving until the new ones arrive (and forever, if fetches fail).
//! - Only the worker that wins the compare-and-swap on the state ("claims a
//!   lease") fetches; the lease lasts the fetch timeout plus a margin, so a lost
//!   response cannot stall the schedule.
//! - A failed fetch is retried after 1 s, 2 s, 4 s … up to [`MAX_BACKOFF`].
//! - A token whose `kid` is not in the set may trigger one extra fetch per
//!   [`KID_REFETCH_INTERVAL`] (key rotation), never more, so random `kid`s
//!   cannot turn clients into a fetch flood against the identity provider.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::jwks::{self, Jwks};

/// Largest JWKS body accepted; identity providers' sets are a few KiB.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Smallest gap between fetches caused by unknown `kid`s.
pub const KID_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Longest wait between retries of a failing fetch.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How much longer than the fetch timeout a lease lasts.
const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// Why a fetch is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// First fetch, refresh after `cacheDuration`, or retry after a failure.
    Scheduled,
    /// A token named a `kid` the set does not have.
    UnknownKid,
}

/// One JWKS source's fetch schedule, shared by all workers. Times are
/// milliseconds since the Unix epoch; 0 means "never".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchState {
    /// Bumped by every successful fetch: a worker whose parsed keys are of an
    /// older version re-reads the body.
    pub version: u64,
    pub fetched_at: u64,
    /// When the next scheduled fetch (refresh or retry) is due.
    pub next_fetch: u64,
    /// A worker is fetching until then.
    pub lease_until: u64,
    /// Earliest time an unknown `kid` may start a fetch.
    pub kid_refetch_after: u64,
    /// Consecutive failed fetches.
    pub failures: u32,
}

/// What a provider's keys look like to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Never fetched and no fetch has failed yet: the first fetch is coming.
    Pending,
    /// Never fetched successfully and the last attempt failed.
    Unavailable,
}

impl FetchState {
    /// Reads the shared form; a missing or unreadable value is a fresh state
    /// (the next claim overwrites it).
    pub fn decode(bytes: Option<&[u8]>) -> FetchState {
        bytes
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn availability(&self) -> Availability {
        match (self.version, self.failures) {
            (0, 0) => Availability::Pending,
            (0, _) => Availability::Unavailable,
            _ => Availability::Ready,
        }
    }

    pub fn fetching(&self, now: u64) -> bool {
        self.lease_until > now
    }

    /// Whether a request with an unknown `kid` should wait for keys: a fetch is
    /// under way, or one may be started for it.
    pub fn kid_refetch_possible(&self, now: u64) -> bool {
        self.fetching(now) || self.kid_refetch_after <= now
    }

    /// The state to compare-and-swap in when this worker should fetch now, or
    /// None when no fetch is due or another worker holds the lease.
    pub fn claim(&self, now: u64, trigger: Trigger, timeout: Duration) -> Option<FetchState> {
        if self.fetching(now) {
            return None;
        }
        let due = match trigger {
            Trigger::Scheduled => self.next_fetch <= now,
            Trigger::UnknownKid => self.kid_refetch_after <= now,
        };
        due.then(|| FetchState {
            lease_until: now + millis(timeout + LEASE_MARGIN),
            kid_refetch_after: match trigger {
                Trigger::UnknownKid => now + millis(KID_REFETCH_INTERVAL),
                Trigger::Scheduled => self.kid_refetch_after,
            },
            ..self.clone()
        })
    }

    /// The state after a successful fetch at `now`.
    pub fn succeeded(&self, now: u64, cache_duration: Duration) -> FetchState {
        FetchState {
            version: self.version + 1,
            fetched_at: now,
            next_fetch: now + millis(cache_duration),
            lease_until: 0,
            kid_refetch_after: self.kid_refetch_after,
            failures: 0,
        }
    }

    /// The state after a failed fetch at `now`: keys (if any) stay, a retry is
    /// scheduled with exponential backoff.
    pub fn failed(&self, now: u64) -> FetchState {
        let failures = self.failures.saturating_add(1);
        FetchState {
            next_fetch: now + millis(backoff(failures)),
            lease_until: 0,
            failures,
            ..self.clone()
        }
    }
}

/// Wait before retry number `failures` (1-based): 1 s doubling up to [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Checks a JWKS fetch response and parses it. `status` is the `:status`
/// header, `size` the body size the host announced (checked before the body is
/// read, so an oversized answer is never copied into the VM).
pub fn accept_response(
    status: Option<&str>,
    size: usize,
    body: impl FnOnce() -> Option<Vec<u8>>,
) -> Result<(Jwks, Vec<String>), String> {
    match status {
        Some("200") => {}
        Some(other) => return Err(format!("HTTP status {other}")),
        None => return Err("no response (connection failure or timeout)".into()),
    }
    if size > MAX_JWKS_BYTES {
        return Err(format!(
            "body of {size} bytes is over the {MAX_JWKS_BYTES}-byte limit"
        ));
    }
    let body = body().unwrap_or_default();
    let text = std::str::from_utf8(&body).map_err(|_| "body is not UTF-8".to_string())?;
    jwks::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);
    const HOUR: Duration = Duration::from_secs(3600);
    const JWKS: &str =
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}]}"#;

    #[test]
    fn first_fetch_is_claimed_once_and_requests_wait_for_it() {
        let fresh = FetchState::decode(None);
        assert_eq!(fresh.availability(), Availability::Pending);
        let claimed = fresh.claim(1_000, Trigger::Scheduled, TIMEOUT).unwrap();
        assert!(claimed.fetching(1_000));
        assert_eq!(claimed.lease_until, 1_000 + 6_000);
        assert_eq!(
            claimed.claim(1_001, Trigger::Scheduled, TIMEOUT),
            None,
            "a second worker must not fetch while the lease holds"
        );
        assert_eq!(claimed.availability(), Availability::Pending);
        assert!(
            claimed.claim(7_001, Trigger::Scheduled, TIMEOUT).is_some(),
            "a lost fetch releases its lease when it runs out"
        );
    }

    #[test]
    fn success_schedules_the_refresh_and_bumps_the_version() {
        let s = FetchState::default()
            .claim(1_000, Trigger::Scheduled, TIMEOUT)
            .unwrap()
            .succeeded(1_500, HOUR);
        assert_eq!(s.availability(), Availability::Ready);
        assert_eq!(s.version, 1);
        assert_eq!(s.next_fetch, 1_500 + 3_600_000);
        assert!(!s.fetching(1_500));
        assert_eq!(s.claim(1_600, Trigger::Scheduled, TIMEOUT), None);
        assert!(s.claim(3_601_500, Trigger::Scheduled, TIMEOUT).is_some());
        let s2 = s.succeeded(3_602_000, HOUR);
        assert_eq!(s2.version, 2);
    }

    #[test]
    fn failures_keep_the_keys_and_back_off() {
        let ready = FetchState::default().succeeded(0, HOUR);
        let f1 = ready.failed(10_000);
        assert_eq!(
            f1.availability(),
            Availability::Ready,
            "old keys keep serving"
        );
        assert_eq!(f1.version, ready.version);
        assert_eq!(f1.next_fetch, 11_000);
        let f2 = f1.failed(11_000);
        assert_eq!(f2.next_fetch, 13_000);
        assert_eq!(f2.succeeded(14_000, HOUR).failures, 0);
        let never = FetchState::default().failed(0);
        assert_eq!(never.availability(), Availability::Unavailable);
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(7), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn unknown_kid_refetches_at_most_once_per_interval() {
        let ready = FetchState::default().succeeded(0, HOUR);
        assert!(ready.kid_refetch_possible(1_000));
        let claimed = ready.claim(1_000, Trigger::UnknownKid, TIMEOUT).unwrap();
        assert!(
            claimed.kid_refetch_possible(1_500),
            "fetch under way: wait for it"
        );
        let done = claimed.succeeded(1_500, HOUR);
        assert!(!done.kid_refetch_possible(2_000));
        assert_eq!(done.claim(2_000, Trigger::UnknownKid, TIMEOUT), None);
        assert!(done.claim(11_000, Trigger::UnknownKid, TIMEOUT).is_some());
        assert_eq!(
            done.next_fetch,
            1_500 + 3_600_000,
            "a rotation fetch also restarts the refresh clock"
        );
    }

    #[test]
    fn a_scheduled_fetch_does_not_use_up_the_rotation_refetch() {
        let s = FetchState::default()
            .claim(1_000, Trigger::Scheduled, TIMEOUT)
            .unwrap()
            .succeeded(1_200, HOUR);
        assert!(s.claim(1_300, Trigger::UnknownKid, TIMEOUT).is_some());
    }

    #[test]
    fn state_round_trips_and_garbage_reads_as_fresh() {
        let s = FetchState::default()
            .succeeded(5, HOUR)
            .claim(10, Trigger::UnknownKid, TIMEOUT)
            .unwrap();
        assert_eq!(FetchState::decode(Some(&s.encode())), s);
        assert_eq!(FetchState::decode(Some(b"{nope")), FetchState::default());
    }

    #[test]
    fn responses_are_checked_before_use() {
        let body = || Some(JWKS.as_bytes().to_vec());
        assert!(accept_response(Some("200"), JWKS.len(), body).is_ok());
        let err = |status, size, body: &str| {
            let body = body.as_bytes().to_vec();
            accept_response(status, size, move || Some(body)).unwrap_err()
        };
        assert_eq!(err(Some("503"), 0, ""), "HTTP status 503");
        assert!(err(None, 0, "").contains("no response"));
        assert!(err(Some("200"), MAX_JWKS_BYTES + 1, JWKS).contains("limit"));
        assert!(err(Some("200"), 5, "<html>").contains("not a JWKS"));
        assert!(err(Some("200"), 11, r#"{"keys": []}"#).contains("no usable key"));
        let mut read = false;
        let _ = accept_response(Some("200"), MAX_JWKS_BYTES + 1, || {
            read = true;
            None
        });
        assert!(!read, "an oversized body is never read");
    }
}
