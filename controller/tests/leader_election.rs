//! Leader election (`tollgate::serve::leader`) between replicas in one
//! process, against a real Kubernetes API server: etcd and the API server
//! built from Debian's sources (`e2e::kube_apiserver`), so resourceVersions,
//! 409 on a stale replace and 409 on a second create are the real API
//! machinery. The Lease itself is a stand-in: that server does not serve
//! coordination.k8s.io, so `KubeApiServer::start` registers a CRD at the real
//! Lease URL with the real spec fields (`e2e::kube_apiserver::LEASE_STAND_IN`).
//! The settings are short (2 s lease, 200 ms retry, 1.5 s renew deadline).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a broken setup should fail the test loudly

use std::time::Duration;

use e2e::kube_apiserver::KubeApiServer;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tollgate::serve::leader::{spawn, LeaseSettings};

const NAMESPACE: &str = "tollgate-system";
const LEASE: &str = "tollgate-leader";
const DURATION: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(200);

/// A client of `api`; the electors' log goes to the test's output.
async fn client(api: &KubeApiServer) -> kube::Client {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("tollgate=info")
        .try_init();
    let file = kube::config::Kubeconfig::read_from(&api.kubeconfig).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// One replica's elector: whether it leads, its stop switch, its task.
struct Elector {
    leads: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn elector(client: &kube::Client, identity: &str) -> Elector {
    let (stop, stopped) = watch::channel(false);
    let settings = LeaseSettings {
        namespace: NAMESPACE.to_owned(),
        name: LEASE.to_owned(),
        identity: identity.to_owned(),
        duration: DURATION,
        retry: RETRY,
        renew_deadline: Duration::from_millis(1500),
    };
    let (leads, task) = spawn(client.clone(), settings, stopped);
    Elector { leads, stop, task }
}

fn leads(elector: &Elector) -> bool {
    *elector.leads.borrow()
}

/// Polls `done` every 20 ms; panics naming `what` after `within`.
async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > within {
            panic!("{what}: not after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

async fn lease(client: &kube::Client) -> Lease {
    Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get(LEASE)
        .await
        .unwrap()
}

fn holder(lease: &Lease) -> String {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_replicas_leads_and_a_stopped_leader_hands_the_lease_over_within_a_retry_period()
{
    let api = KubeApiServer::start().unwrap();
    let client = client(&api).await;
    let a = elector(&client, "replica-a");
    let b = elector(&client, "replica-b");

    until("one of two replicas leads", Duration::from_secs(10), || {
        leads(&a) || leads(&b)
    })
    .await;
    // For a few renewals, exactly one leads, and the Lease names it.
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(1) {
        assert!(leads(&a) != leads(&b), "a: {}, b: {}", leads(&a), leads(&b));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (leader, follower, leader_id, follower_id) = if leads(&a) {
        (a, b, "replica-a", "replica-b")
    } else {
        (b, a, "replica-b", "replica-a")
    };
    let before = lease(&client).await;
    assert_eq!(holder(&before), leader_id, "{before:?}");
    let transitions = before.spec.as_ref().and_then(|s| s.lease_transitions);

    // The leader's stop: it stops leading, releases, and its task ends.
    leader.stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), leader.task)
        .await
        .expect("the stopped leader's task did not end within 5 s")
        .unwrap();
    assert!(
        !*leader.leads.borrow(),
        "a stopped leader still says it leads"
    );
    // Without the release the follower would wait for the 2 s duration.
    let took = until(
        "the follower leads after the leader's release",
        Duration::from_secs(5),
        || leads(&follower),
    )
    .await;
    assert!(
        took < Duration::from_millis(1500),
        "the follower took {took:?} to lead after the release (retry period {RETRY:?}, lease {DURATION:?})"
    );
    eprintln!("the follower led {took:?} after the release");
    let after = lease(&client).await;
    assert_eq!(holder(&after), follower_id, "{after:?}");
    assert_eq!(
        after.spec.as_ref().and_then(|s| s.lease_transitions),
        transitions.map(|t| t + 1),
        "{after:?}"
    );

    follower.stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), follower.task)
        .await
        .expect("the stopped follower's task did not end within 5 s")
        .unwrap();
    assert_eq!(holder(&lease(&client).await), "", "released at the end");

    // Why `leader` is hand-written: the stand-in, a CRD, refuses the
    // strategic-merge-patch that kube-lease-manager renews with.
    let refused = Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .patch(
            LEASE,
            &PatchParams::default(),
            &Patch::Strategic(serde_json::json!({"spec": {"holderIdentity": "x"}})),
        )
        .await;
    match refused {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 415, "{status:?}"),
        other => panic!("a strategic-merge-patch of the Lease stand-in: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_that_cannot_release_is_replaced_only_after_the_lease_duration() {
    let api = KubeApiServer::start().unwrap();
    let client = client(&api).await;
    let killed = elector(&client, "replica-killed");
    until("a lone replica leads", Duration::from_secs(10), || {
        leads(&killed)
    })
    .await;
    let survivor = elector(&client, "replica-survivor");
    // The survivor sees the leader renew, and follows.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!leads(&survivor), "two leaders");

    // A killed process: no release, the Lease stays held until it expires.
    killed.task.abort();
    let took = until(
        "the survivor leads after the leader was killed",
        DURATION + Duration::from_secs(3),
        || leads(&survivor),
    )
    .await;
    // The killed leader's last renew was about one retry period (and a
    // request) before the kill at most, and the survivor counts the duration
    // from when it saw that renew.
    assert!(
        took >= DURATION - 2 * RETRY - Duration::from_millis(100),
        "the survivor took over {took:?} after the kill, before the {DURATION:?} lease expired"
    );
    eprintln!("the survivor led {took:?} after the kill");
    assert_eq!(holder(&lease(&client).await), "replica-survivor");

    survivor.stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), survivor.task)
        .await
        .expect("the stopped survivor's task did not end within 5 s")
        .unwrap();
}
