//! The ADS server in-process on a loopback port, driven by envoy-types' tonic
//! client the way Envoy drives it: versions, nonces, ACK and NACK, per-type
//! subscriptions, SotW and Delta.
//!
//! "Nothing was resent" is checked without timing: the stream is ordered, so
//! when the next response after an ACK (or NACK) is the one for a snapshot
//! published afterwards, nothing came in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prometheus_client::registry::Registry;
use prost::{Message, Name};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::{AdsServer, Metrics, Snapshot, Views};

const WAIT: Duration = Duration::from_secs(10);

/// Every node gets the same snapshots; the last version a stream reported
/// acknowledged is kept.
struct OneView {
    snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    acknowledged: watch::Sender<Option<String>>,
}

impl Views for OneView {
    fn subscribe(&self, _node: &Node) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.snapshots.clone()
    }

    fn acknowledged(&self, _node: &Node, version: &str) {
        self.acknowledged.send_replace(Some(version.to_owned()));
    }
}

struct Server {
    publish: watch::Sender<Option<Arc<Snapshot>>>,
    stop: watch::Sender<bool>,
    registry: Registry,
    client: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
    acknowledged: watch::Receiver<Option<String>>,
}

impl Server {
    async fn start(first: Option<Snapshot>) -> Server {
        let (publish, rx) = watch::channel(first.map(Arc::new));
        let metrics = Metrics::default();
        let mut registry = Registry::with_prefix("tollgate");
        metrics.register(&mut registry);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let (acknowledged_tx, acknowledged) = watch::channel(None);
        let service = AggregatedDiscoveryServiceServer::new(AdsServer::new(
            Arc::new(OneView {
                snapshots: rx,
                acknowledged: acknowledged_tx,
            }),
            metrics,
            stop_rx,
        ));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        Server {
            publish,
            stop,
            registry,
            client,
            acknowledged,
        }
    }

    /// The version a stream last reported its client accepted all of.
    fn acknowledged(&self) -> Option<String> {
        self.acknowledged.borrow().clone()
    }

    /// Waits (bounded) until a stream reports `version` acknowledged: the
    /// stream task reports it just after counting the ACK.
    async fn acknowledged_becomes(&self, version: &str) {
        let mut acknowledged = self.acknowledged.clone();
        tokio::time::timeout(
            WAIT,
            acknowledged.wait_for(|v| v.as_deref() == Some(version)),
        )
        .await
        .expect("acknowledged in time")
        .unwrap();
    }

    fn publish(&self, snapshot: &Snapshot) {
        self.publish.send_replace(Some(Arc::new(snapshot.clone())));
    }

    async fn sotw(&mut self) -> (mpsc::Sender<DiscoveryRequest>, Streaming<DiscoveryResponse>) {
        let (tx, rx) = mpsc::channel(16);
        let responses = self
            .client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        (tx, responses)
    }

    async fn delta(
        &mut self,
    ) -> (
        mpsc::Sender<DeltaDiscoveryRequest>,
        Streaming<DeltaDiscoveryResponse>,
    ) {
        let (tx, rx) = mpsc::channel(16);
        let responses = self
            .client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        (tx, responses)
    }

    fn metric(&self, sample: &str) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(name, _)| *name == sample)
            .map_or(0, |(_, v)| v.parse().unwrap())
    }

    /// Polls a counter (bounded) until it reaches `value`: the server counts a
    /// request when its stream task reads it, after the client sent it.
    async fn metric_reaches(&self, sample: &str, value: u64) {
        let started = Instant::now();
        while self.metric(sample) < value {
            assert!(started.elapsed() < WAIT, "{sample} never reached {value}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Server {
    async fn metric_reaches_zero(&self, sample: &str) {
        let started = Instant::now();
        while self.metric(sample) > 0 {
            assert!(started.elapsed() < WAIT, "{sample} never reached 0");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn next<T>(responses: &mut Streaming<T>) -> T {
    tokio::time::timeout(WAIT, responses.message())
        .await
        .expect("a response in time")
        .expect("no stream error")
        .expect("the stream is open")
}

fn node() -> Option<Node> {
    Some(Node {
        id: "test-node".into(),
        cluster: "test".into(),
        ..Node::default()
    })
}

fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// `clusters` and `routes` as (name, a value that changes the resource);
/// one listener per route configuration.
fn snapshot(clusters: &[(&str, u32)], routes: &[(&str, u32)]) -> Snapshot {
    let clusters = clusters.iter().map(|(name, v)| {
        let c = Cluster {
            name: (*name).into(),
            per_connection_buffer_limit_bytes: Some(UInt32Value { value: *v }),
            ..Cluster::default()
        };
        ((*name).to_owned(), any(&c))
    });
    let routes = routes.iter().flat_map(|(name, v)| {
        let r = RouteConfiguration {
            name: (*name).into(),
            max_direct_response_body_size_bytes: Some(UInt32Value { value: *v }),
            ..RouteConfiguration::default()
        };
        let l = Listener {
            name: (*name).into(),
            ..Listener::default()
        };
        [((*name).to_owned(), any(&r)), ((*name).to_owned(), any(&l))]
    });
    Snapshot::new(clusters.chain(routes).collect::<Vec<_>>())
}

fn names(resources: &[Any]) -> Vec<String> {
    resources
        .iter()
        .map(|a| {
            if a.type_url == Cluster::type_url() {
                Cluster::decode(a.value.as_slice()).unwrap().name
            } else if a.type_url == Listener::type_url() {
                Listener::decode(a.value.as_slice()).unwrap().name
            } else {
                RouteConfiguration::decode(a.value.as_slice()).unwrap().name
            }
        })
        .collect()
}

fn request(type_url: String, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        node: node(),
        type_url,
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..DiscoveryRequest::default()
    }
}

fn ack(response: &DiscoveryResponse, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: response.version_info.clone(),
        response_nonce: response.nonce.clone(),
        type_url: response.type_url.clone(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..DiscoveryRequest::default()
    }
}

fn rejection(message: &str) -> Option<RpcStatus> {
    Some(RpcStatus {
        code: 3,
        message: message.into(),
        ..RpcStatus::default()
    })
}

#[tokio::test]
async fn sotw_versions_nonces_ack_and_nack() {
    let v1 = snapshot(&[("a", 1), ("b", 1)], &[]);
    let v2 = snapshot(&[("a", 2), ("b", 1)], &[]);
    let v3 = snapshot(&[("a", 3), ("b", 1)], &[]);
    let cds = Cluster::type_url();
    let mut server = Server::start(Some(v1.clone())).await;
    let (tx, mut rx) = server.sotw().await;

    tx.send(request(cds.clone(), &[])).await.unwrap();
    let r1 = next(&mut rx).await;
    assert_eq!(r1.version_info, v1.resources(&cds).version);
    assert!(!r1.nonce.is_empty());
    assert_eq!(names(&r1.resources), ["a", "b"], "wildcard: every cluster");

    assert_eq!(server.acknowledged(), None, "sent, not answered yet");
    tx.send(ack(&r1, &[])).await.unwrap();
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"Cluster\"}", 1)
        .await;
    server.acknowledged_becomes(v1.version()).await;
    server.publish(&v2);
    let r2 = next(&mut rx).await;
    assert_eq!(r2.version_info, v2.resources(&cds).version, "V1 not resent");
    assert_ne!(r2.nonce, r1.nonce);

    let nack = DiscoveryRequest {
        version_info: r1.version_info.clone(), // Envoy keeps what it had
        error_detail: rejection("cluster a: invalid"),
        ..ack(&r2, &[])
    };
    tx.send(nack).await.unwrap();
    server
        .metric_reaches("tollgate_xds_nacks_total{type=\"Cluster\"}", 1)
        .await;
    assert_eq!(
        server.acknowledged().as_deref(),
        Some(v1.version()),
        "a NACKed version is not acknowledged"
    );
    server.publish(&v3);
    let r3 = next(&mut rx).await;
    assert_eq!(
        r3.version_info,
        v3.resources(&cds).version,
        "the NACKed V2 is not resent; V3 arrives"
    );
    tx.send(ack(&r3, &[])).await.unwrap();
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"Cluster\"}", 2)
        .await;
    server.acknowledged_becomes(v3.version()).await;
    assert_eq!(
        server.metric("tollgate_xds_acks_total{type=\"Cluster\"}"),
        2
    );
    assert_eq!(server.metric("tollgate_xds_streams"), 1);
    assert_eq!(
        server.metric("tollgate_xds_bytes_sent_total{type=\"Cluster\"}"),
        [&r1, &r2, &r3]
            .map(|r| r.encoded_len() as u64)
            .iter()
            .sum::<u64>(),
        "every response counted at its encoded size"
    );
}

#[tokio::test]
async fn sotw_an_identical_snapshot_pushes_nothing_and_a_stale_nonce_is_ignored() {
    let v1 = snapshot(&[("a", 1)], &[]);
    let v2 = snapshot(&[("a", 2)], &[]);
    let cds = Cluster::type_url();
    let mut server = Server::start(Some(v1.clone())).await;
    let (tx, mut rx) = server.sotw().await;
    tx.send(request(cds.clone(), &[])).await.unwrap();
    let r1 = next(&mut rx).await;
    tx.send(ack(&r1, &[])).await.unwrap();
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"Cluster\"}", 1)
        .await;
    server.publish(&v1); // same content, same version
    server.publish(&v2);
    let r2 = next(&mut rx).await;
    assert_eq!(r2.version_info, v2.resources(&cds).version);
    // A late answer to r1 (stale nonce) neither counts nor triggers a response.
    tx.send(ack(&r1, &[])).await.unwrap();
    tx.send(ack(&r2, &[])).await.unwrap();
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"Cluster\"}", 2)
        .await;
    assert_eq!(
        server.metric("tollgate_xds_acks_total{type=\"Cluster\"}"),
        2
    );
}

#[tokio::test]
async fn sotw_route_configurations_by_name_and_push_order() {
    let v1 = snapshot(&[("a", 1)], &[("r1", 1), ("r2", 1)]);
    let v2 = snapshot(&[("a", 2)], &[("r1", 2), ("r2", 1)]);
    let (cds, lds, rds) = (
        Cluster::type_url(),
        Listener::type_url(),
        RouteConfiguration::type_url(),
    );
    let mut server = Server::start(None).await;
    let (tx, mut rx) = server.sotw().await;
    // Subscribed before any snapshot exists: answered once one is published.
    tx.send(request(rds.clone(), &["r1"])).await.unwrap();
    tx.send(request(lds.clone(), &[])).await.unwrap();
    tx.send(request(cds.clone(), &[])).await.unwrap();
    // Whether the publish is seen before or after a request is read, each
    // type is answered exactly once.
    server.publish(&v1);
    let mut first: Vec<DiscoveryResponse> = Vec::new();
    while first.len() < 3 {
        first.push(next(&mut rx).await);
    }
    let route = first.iter().find(|r| r.type_url == rds).unwrap();
    assert_eq!(names(&route.resources), ["r1"], "only the subscribed name");
    for r in &first {
        tx.send(ack(
            r,
            if r.type_url == rds {
                &["r1", "r2"]
            } else {
                &[]
            },
        ))
        .await
        .unwrap();
    }
    // Subscribing to r2 too is answered with both, at the same version.
    let both = next(&mut rx).await;
    assert_eq!(both.type_url, rds);
    assert_eq!(names(&both.resources), ["r1", "r2"]);
    assert_eq!(both.version_info, route.version_info);
    tx.send(ack(&both, &["r1", "r2"])).await.unwrap();
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"RouteConfiguration\"}", 2)
        .await;

    // Clusters and routes change, listeners do not: CDS first, then RDS.
    server.publish(&v2);
    let a = next(&mut rx).await;
    let b = next(&mut rx).await;
    assert_eq!(
        (a.type_url.as_str(), b.type_url.as_str()),
        (cds.as_str(), rds.as_str())
    );
    assert_eq!(b.version_info, v2.resources(&rds).version);
}

fn delta_request(type_url: String, subscribe: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: node(),
        type_url,
        resource_names_subscribe: subscribe.iter().map(|n| (*n).to_owned()).collect(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn delta_ack(response: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: response.type_url.clone(),
        response_nonce: response.nonce.clone(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn delta_names(response: &DeltaDiscoveryResponse) -> Vec<String> {
    response.resources.iter().map(|r| r.name.clone()).collect()
}

#[tokio::test]
async fn delta_sends_only_changes_and_removals() {
    let v1 = snapshot(&[("a", 1), ("b", 1)], &[]);
    let v2 = snapshot(&[("a", 1), ("b", 2), ("c", 1)], &[]);
    let v3 = snapshot(&[("a", 1), ("b", 2)], &[]);
    let cds = Cluster::type_url();
    let mut server = Server::start(Some(v1.clone())).await;
    let (tx, mut rx) = server.delta().await;
    tx.send(delta_request(cds.clone(), &[])).await.unwrap();
    let r1 = next(&mut rx).await;
    assert_eq!(delta_names(&r1), ["a", "b"]);
    assert_eq!(r1.system_version_info, v1.version());
    assert_eq!(
        r1.resources[0].version,
        v1.resources(&cds).entries["a"].version
    );
    tx.send(delta_ack(&r1)).await.unwrap();
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"Cluster\"}", 1)
        .await;

    server.publish(&v2);
    let r2 = next(&mut rx).await;
    assert_eq!(delta_names(&r2), ["b", "c"], "a did not change");
    assert!(r2.removed_resources.is_empty());
    tx.send(delta_ack(&r2)).await.unwrap();

    server.publish(&v3);
    let r3 = next(&mut rx).await;
    assert!(r3.resources.is_empty());
    assert_eq!(r3.removed_resources, ["c"]);
    assert_eq!(
        server.metric("tollgate_xds_bytes_sent_total{type=\"Cluster\"}"),
        [&r1, &r2, &r3]
            .map(|r| r.encoded_len() as u64)
            .iter()
            .sum::<u64>(),
        "every response counted at its encoded size"
    );
}

#[tokio::test]
async fn delta_subscribe_unsubscribe_and_missing_names() {
    let v1 = snapshot(&[], &[("r1", 1), ("r2", 1)]);
    let v2 = snapshot(&[], &[("r1", 2), ("r2", 2)]);
    let rds = RouteConfiguration::type_url();
    let mut server = Server::start(Some(v1)).await;
    let (tx, mut rx) = server.delta().await;
    tx.send(delta_request(rds.clone(), &["r1"])).await.unwrap();
    let r1 = next(&mut rx).await;
    assert_eq!(delta_names(&r1), ["r1"], "RDS is not wildcard");

    tx.send(DeltaDiscoveryRequest {
        resource_names_subscribe: vec!["r2".into(), "missing".into()],
        ..delta_ack(&r1)
    })
    .await
    .unwrap();
    let r2 = next(&mut rx).await;
    assert_eq!(delta_names(&r2), ["r2"]);
    assert_eq!(
        r2.removed_resources,
        ["missing"],
        "a name that does not exist"
    );

    tx.send(DeltaDiscoveryRequest {
        resource_names_unsubscribe: vec!["r1".into(), "missing".into()],
        ..delta_ack(&r2)
    })
    .await
    .unwrap();
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"RouteConfiguration\"}", 2)
        .await;
    server.publish(&v2);
    let r3 = next(&mut rx).await;
    assert_eq!(delta_names(&r3), ["r2"], "r1 was unsubscribed");
    assert!(r3.removed_resources.is_empty());
}

#[tokio::test]
async fn delta_initial_versions_and_nack() {
    let v1 = snapshot(&[("a", 1), ("b", 1)], &[]);
    let v2 = snapshot(&[("a", 2), ("b", 1)], &[]);
    let v3 = snapshot(&[("a", 3), ("b", 1)], &[]);
    let cds = Cluster::type_url();
    let mut server = Server::start(Some(v1.clone())).await;
    let (tx, mut rx) = server.delta().await;
    // A reconnecting client already has a at this version, and a cluster
    // that no longer exists.
    let a_version = v1.resources(&cds).entries["a"].version.clone();
    tx.send(DeltaDiscoveryRequest {
        initial_resource_versions: [("a".to_owned(), a_version), ("gone".into(), "x".into())]
            .into_iter()
            .collect(),
        ..delta_request(cds.clone(), &[])
    })
    .await
    .unwrap();
    let r1 = next(&mut rx).await;
    assert_eq!(delta_names(&r1), ["b"]);
    assert_eq!(r1.removed_resources, ["gone"]);
    tx.send(delta_ack(&r1)).await.unwrap();
    server.acknowledged_becomes(v1.version()).await;

    server.publish(&v2);
    let r2 = next(&mut rx).await;
    assert_eq!(delta_names(&r2), ["a"]);
    tx.send(DeltaDiscoveryRequest {
        error_detail: rejection("cluster a: invalid"),
        ..delta_ack(&r2)
    })
    .await
    .unwrap();
    server
        .metric_reaches("tollgate_xds_nacks_total{type=\"Cluster\"}", 1)
        .await;
    server.publish(&v3);
    let r3 = next(&mut rx).await;
    assert_eq!(delta_names(&r3), ["a"]);
    assert_eq!(
        r3.resources[0].version,
        v3.resources(&cds).entries["a"].version,
        "the NACKed a is not resent; its next version arrives"
    );
    assert_eq!(
        server.acknowledged().as_deref(),
        Some(v1.version()),
        "the NACKed v2 is not acknowledged"
    );
    tx.send(delta_ack(&r3)).await.unwrap();
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"Cluster\"}", 2)
        .await;
    server.acknowledged_becomes(v3.version()).await;
}

#[tokio::test]
async fn streams_end_when_the_server_stops() {
    let mut server = Server::start(Some(snapshot(&[("a", 1)], &[]))).await;
    let (tx, mut rx) = server.sotw().await;
    tx.send(request(Cluster::type_url(), &[])).await.unwrap();
    next(&mut rx).await;
    server.stop.send_replace(true);
    let end = tokio::time::timeout(WAIT, rx.message())
        .await
        .expect("the stream ends in time");
    assert!(matches!(end, Ok(None)), "{end:?}");
    server.metric_reaches_zero("tollgate_xds_streams").await;
}

/// A cluster that goes away is removed only after the routes that used it
/// changed: SotW sends the clusters with the dropped one first, the
/// routes, then the clusters without it.
#[tokio::test]
async fn sotw_a_dropped_cluster_goes_after_the_routes() {
    let v1 = snapshot(&[("a", 1), ("b", 1)], &[("r1", 1)]);
    let v2 = snapshot(&[("a", 1)], &[("r1", 2)]);
    let (cds, rds) = (Cluster::type_url(), RouteConfiguration::type_url());
    let mut server = Server::start(Some(v1)).await;
    let (tx, mut rx) = server.sotw().await;
    tx.send(request(cds.clone(), &[])).await.unwrap();
    tx.send(request(rds.clone(), &["r1"])).await.unwrap();
    for _ in 0..2 {
        let r = next(&mut rx).await;
        let names: &[&str] = if r.type_url == rds { &["r1"] } else { &[] };
        tx.send(ack(&r, names)).await.unwrap();
    }
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"RouteConfiguration\"}", 1)
        .await;
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"Cluster\"}", 1)
        .await;
    server.publish(&v2);
    let (first, second, third) = (
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
    );
    assert_eq!(first.type_url, cds);
    assert_eq!(names(&first.resources), ["a", "b"], "b still held");
    assert_ne!(first.version_info, v2.resources(&cds).version);
    assert_eq!(second.type_url, rds);
    assert_eq!(third.type_url, cds);
    assert_eq!(names(&third.resources), ["a"]);
    assert_eq!(third.version_info, v2.resources(&cds).version);
}

#[tokio::test]
async fn delta_a_removed_cluster_goes_after_the_routes() {
    let v1 = snapshot(&[("a", 1), ("b", 1)], &[("r1", 1)]);
    let v2 = snapshot(&[("a", 2)], &[("r1", 2)]);
    let (cds, rds) = (Cluster::type_url(), RouteConfiguration::type_url());
    let mut server = Server::start(Some(v1)).await;
    let (tx, mut rx) = server.delta().await;
    tx.send(delta_request(cds.clone(), &[])).await.unwrap();
    tx.send(delta_request(rds.clone(), &["r1"])).await.unwrap();
    for _ in 0..2 {
        let r = next(&mut rx).await;
        tx.send(delta_ack(&r)).await.unwrap();
    }
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"RouteConfiguration\"}", 1)
        .await;
    server
        .metric_reaches("tollgate_xds_acks_total{type=\"Cluster\"}", 1)
        .await;
    server.publish(&v2);
    let (first, second, third) = (
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
    );
    assert_eq!(first.type_url, cds);
    assert_eq!(delta_names(&first), ["a"]);
    assert!(first.removed_resources.is_empty(), "b still held");
    assert_eq!(second.type_url, rds);
    assert_eq!(third.type_url, cds);
    assert!(third.resources.is_empty());
    assert_eq!(third.removed_resources, ["b"]);
}
