//! Which replica writes status: leader election on a `coordination.k8s.io/v1`
//! Lease. Every replica of `serve --provider kubernetes` reads the API server
//! and serves its Envoys; only the leader writes status, so replicas do not
//! overwrite each other's conditions.
//!
//! Hand-written because kube-runtime has no leader election, and
//! kube-lease-manager renews with a strategic-merge patch, which a Lease
//! served by a CRD (the stand-in of our test API server) answers with 415.
//! This is client-go's algorithm with get + create / replace only: every
//! write carries the resourceVersion that was read, so of two replicas
//! racing for the Lease one wins and the other gets 409. It works the same on
//! the built-in Lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The Lease every replica of `serve` contends for, in its namespace.
pub const LEASE_NAME: &str = "tollgate-controller";

/// Where and how long: the Lease `namespace/name`, this replica's identity,
/// the lease duration (a leader that has not renewed for this long may be
/// replaced; client-go default 15 s), how often to try (client-go retry
/// period, 2 s), and the renew deadline (a leader that could not renew for
/// this long steps down by itself, client-go 10 s; must be < duration).
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub retry: Duration,
    pub renew_deadline: Duration,
}

/// Starts the election loop on the tokio runtime; the receiver says whether
/// this replica leads now. When `stop` turns true (or its sender is dropped),
/// a leader releases the Lease (clears holderIdentity and sets renewTime, so
/// that another replica takes over at once, as client-go's ReleaseOnCancel)
/// and the loop ends; the returned JoinHandle lets the caller wait for that
/// release. The receiver turns false before the release is sent.
pub fn spawn(
    client: kube::Client,
    settings: LeaseSettings,
    stop: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (leading, receiver) = watch::channel(false);
    let api = Api::namespaced(client, &settings.namespace);
    (receiver, tokio::spawn(run(api, settings, stop, leading)))
}

/// What to do with the Lease as last read.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Renew,
    Acquire,
    Follow,
}

/// client-go's rule. Another holder's lease has expired once its
/// `leaseDurationSeconds` have passed since `observed_at`: when WE first saw
/// its current resourceVersion, by our own monotonic clock. Its `renewTime`
/// is the holder's wall clock, and comparing it with ours would make a clock
/// skew of more than the lease duration give two leaders; every renew
/// changes the resourceVersion, which each replica times on its own clock.
fn decide(spec: &LeaseSpec, identity: &str, observed_at: Instant, now: Instant) -> Decision {
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => Decision::Renew,
        None | Some("") => Decision::Acquire,
        Some(_) => {
            let seconds = u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0);
            match observed_at.checked_add(Duration::from_secs(seconds)) {
                Some(expiry) if now >= expiry => Decision::Acquire,
                _ => Decision::Follow,
            }
        }
    }
}

/// What one read-and-write found.
enum Outcome {
    Leading,
    /// Held by this identity (empty if unknown).
    Following(String),
    /// Our create or replace got 409: someone wrote the Lease first.
    Conflict,
}

fn duration_seconds(settings: &LeaseSettings) -> i32 {
    let d = settings.duration;
    i32::try_from(d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or(i32::MAX)
}

/// GET the Lease, then create it, renew it, take it over, or follow.
async fn attempt(
    api: &Api<Lease>,
    s: &LeaseSettings,
    observed: &mut Option<(String, Instant)>,
) -> kube::Result<Outcome> {
    let found = api.get_opt(&s.name).await?;
    // After the read, as client-go: a slow answer delays the expiry we judge.
    let now = Instant::now();
    let stamp = Some(MicroTime(Timestamp::now()));
    let Some(mut lease) = found else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(s.name.clone()),
                namespace: Some(s.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(duration_seconds(s)),
                acquire_time: stamp.clone(),
                renew_time: stamp,
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return written(api.create(&PostParams::default(), &lease).await);
    };
    let version = lease.metadata.resource_version.clone().unwrap_or_default();
    if observed.as_ref().map(|(seen, _)| seen) != Some(&version) {
        *observed = Some((version, now));
    }
    let observed_at = observed.as_ref().map_or(now, |(_, at)| *at);
    let spec = lease.spec.take().unwrap_or_default();
    lease.spec = Some(match decide(&spec, &s.identity, observed_at, now) {
        Decision::Follow => {
            return Ok(Outcome::Following(spec.holder_identity.unwrap_or_default()))
        }
        Decision::Renew => LeaseSpec {
            renew_time: stamp,
            lease_duration_seconds: Some(duration_seconds(s)),
            ..spec
        },
        Decision::Acquire => LeaseSpec {
            holder_identity: Some(s.identity.clone()),
            lease_duration_seconds: Some(duration_seconds(s)),
            acquire_time: stamp.clone(),
            renew_time: stamp,
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0).saturating_add(1)),
            ..spec
        },
    });
    written(api.replace(&s.name, &PostParams::default(), &lease).await)
}

fn written(result: kube::Result<Lease>) -> kube::Result<Outcome> {
    match result {
        Ok(_) => Ok(Outcome::Leading),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Outcome::Conflict),
        Err(error) => Err(error),
    }
}

/// Hands the Lease over at once if we still hold it: no holder, renewed now,
/// a one-second duration (client-go's ReleaseOnCancel).
async fn release(api: &Api<Lease>, s: &LeaseSettings) -> kube::Result<bool> {
    let Some(mut lease) = api.get_opt(&s.name).await? else {
        return Ok(false);
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(false);
    };
    if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
        return Ok(false);
    }
    let stamp = Some(MicroTime(Timestamp::now()));
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.acquire_time = stamp.clone();
    spec.renew_time = stamp;
    api.replace(&s.name, &PostParams::default(), &lease).await?;
    Ok(true)
}

async fn run(
    api: Api<Lease>,
    s: LeaseSettings,
    mut stop: watch::Receiver<bool>,
    leading: watch::Sender<bool>,
) {
    let lease = format!("{}/{}", s.namespace, s.name);
    let id = s.identity.as_str();
    if s.renew_deadline >= s.duration {
        let (deadline, duration) = (s.renew_deadline, s.duration);
        tracing::warn!(
            %lease,
            "renew deadline {deadline:?} not below lease duration {duration:?}: two may lead"
        );
    }
    let mut observed = None;
    // While we lead: when our last successful renew was sent.
    let mut renewed: Option<Instant> = None;
    let (mut holder, mut failing, mut retried_conflict) = (String::new(), false, false);
    while !*stop.borrow_and_update() {
        let started = Instant::now();
        // A leader's attempt may last only until its renew deadline; it steps
        // down then, before another replica can judge the Lease expired.
        let until = renewed.unwrap_or(started) + s.renew_deadline;
        let result = tokio::time::timeout_at(until, attempt(&api, &s, &mut observed)).await;
        let mut conflict = false;
        match result {
            Ok(Ok(Outcome::Leading)) => {
                if renewed.replace(started).is_none() {
                    leading.send_replace(true);
                    tracing::info!(%lease, identity = id, "became the leader");
                }
                (holder, failing) = (s.identity.clone(), false);
            }
            Ok(Ok(Outcome::Following(now_holder))) => {
                if renewed.take().is_some() {
                    leading.send_replace(false);
                    tracing::info!(%lease, identity = id, "lost the lease to {now_holder}");
                } else if now_holder != holder {
                    tracing::info!(%lease, identity = id, "{now_holder} leads; following");
                }
                (holder, failing) = (now_holder, false);
            }
            Ok(Ok(Outcome::Conflict)) => {
                if renewed.take().is_some() {
                    leading.send_replace(false);
                    tracing::info!(%lease, identity = id, "lost the lease: written by another (409)");
                }
                // Read again at once to learn who holds it (only once in a row).
                (conflict, failing) = (!retried_conflict, false);
            }
            Ok(Err(error)) => {
                if !failing {
                    tracing::warn!(%lease, identity = id, "leader election: {error}");
                }
                failing = true;
            }
            Err(_elapsed) => {
                if !failing {
                    tracing::warn!(%lease, identity = id, "leader election: no answer in time");
                }
                failing = true;
            }
        }
        if renewed.is_some_and(|at| at.elapsed() >= s.renew_deadline) {
            renewed = None;
            leading.send_replace(false);
            let deadline = s.renew_deadline;
            tracing::info!(%lease, identity = id, "stepped down: no renew for {deadline:?}");
        }
        retried_conflict = conflict;
        if !conflict {
            tokio::select! {
                () = tokio::time::sleep(s.retry) => {}
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
    }
    if renewed.is_some() {
        leading.send_replace(false);
        match tokio::time::timeout(s.renew_deadline, release(&api, &s)).await {
            Ok(Ok(true)) => tracing::info!(%lease, identity = id, "released the lease"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(%lease, identity = id, "releasing the lease: {error}"),
            Err(_elapsed) => {
                tracing::warn!(%lease, identity = id, "releasing the lease: no answer in time")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(seconds),
            // Long ago by our clock: it must not matter.
            renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_we_hold_is_renewed_even_long_after_we_saw_it() {
        let seen = Instant::now();
        let now = seen + Duration::from_secs(3600);
        assert_eq!(
            decide(&held_by(Some("a"), 15), "a", seen, now),
            Decision::Renew
        );
    }

    #[test]
    fn a_lease_without_a_holder_is_taken_over_at_once() {
        let now = Instant::now();
        assert_eq!(decide(&held_by(None, 15), "a", now, now), Decision::Acquire);
        assert_eq!(
            decide(&held_by(Some(""), 15), "a", now, now),
            Decision::Acquire
        );
    }

    #[test]
    fn another_holder_is_followed_until_the_duration_has_passed_since_we_saw_its_lease_change() {
        let seen = Instant::now();
        let lease = held_by(Some("b"), 15);
        assert_eq!(decide(&lease, "a", seen, seen), Decision::Follow);
        let almost = seen + Duration::from_millis(14_999);
        assert_eq!(decide(&lease, "a", seen, almost), Decision::Follow);
    }

    #[test]
    fn another_holder_is_replaced_once_the_duration_has_passed_since_we_saw_its_lease_change() {
        let seen = Instant::now();
        let lease = held_by(Some("b"), 15);
        let later = seen + Duration::from_secs(15);
        assert_eq!(decide(&lease, "a", seen, later), Decision::Acquire);
    }

    #[test]
    fn the_holders_renew_time_is_not_compared_with_our_clock() {
        // renewTime is 1970, but we saw this version just now: it is valid.
        let now = Instant::now();
        assert_eq!(
            decide(&held_by(Some("b"), 15), "a", now, now),
            Decision::Follow
        );
    }

    #[test]
    fn a_lease_without_a_duration_is_expired_as_soon_as_it_is_seen() {
        let now = Instant::now();
        let mut lease = held_by(Some("b"), 0);
        lease.lease_duration_seconds = None;
        assert_eq!(decide(&lease, "a", now, now), Decision::Acquire);
    }

    #[test]
    fn a_duration_with_a_fraction_of_a_second_is_rounded_up() {
        let settings = |duration| LeaseSettings {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "a".into(),
            duration,
            retry: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(1),
        };
        assert_eq!(duration_seconds(&settings(Duration::from_secs(15))), 15);
        assert_eq!(duration_seconds(&settings(Duration::from_millis(1500))), 2);
    }
}
