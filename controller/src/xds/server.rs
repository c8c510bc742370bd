//! The gRPC service: one task per ADS stream, feeding the client's requests
//! and the snapshots of its view into the protocol's bookkeeping
//! ([`super::sotw`], [`super::delta`]) and sending what comes out.

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::metrics::Metrics;
use super::snapshot::Snapshot;
use super::{delta, sotw, Views};

/// Responses queued per stream before the stream task waits for the client.
const QUEUE: usize = 16;

pub struct AdsServer {
    views: Arc<dyn Views>,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
}

impl AdsServer {
    /// Streams end when `stop` turns true (or its sender goes): tonic's
    /// graceful shutdown waits for every open call, and an ADS stream never
    /// ends by itself. Envoy keeps its configuration and reconnects.
    pub fn new(views: Arc<dyn Views>, metrics: Metrics, stop: watch::Receiver<bool>) -> AdsServer {
        AdsServer {
            views,
            metrics,
            stop,
        }
    }
}

type ResponseStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(spawn::<sotw::Stream>(
            request.into_inner(),
            self,
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(spawn::<delta::Stream>(
            request.into_inner(),
            self,
        )))
    }
}

/// What the stream task needs of SotW and Delta alike.
trait Protocol: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const NAME: &'static str;
    fn node(request: &Self::Request) -> Option<&Node>;
    fn new(node: String, metrics: Metrics) -> Self;
    fn on_request(
        &mut self,
        request: Self::Request,
        snapshot: Option<&Snapshot>,
    ) -> Vec<Self::Response>;
    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<Self::Response>;
    fn acknowledged(&self, snapshot: &Snapshot) -> Option<&str>;
}

impl Protocol for sotw::Stream {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const NAME: &'static str = "sotw";
    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn new(node: String, metrics: Metrics) -> Self {
        sotw::Stream::new(node, metrics)
    }
    fn on_request(&mut self, r: DiscoveryRequest, s: Option<&Snapshot>) -> Vec<DiscoveryResponse> {
        sotw::Stream::on_request(self, r, s)
    }
    fn on_snapshot(&mut self, s: &Snapshot) -> Vec<DiscoveryResponse> {
        sotw::Stream::on_snapshot(self, s)
    }
    fn acknowledged(&self, snapshot: &Snapshot) -> Option<&str> {
        sotw::Stream::acknowledged(self, snapshot)
    }
}

impl Protocol for delta::Stream {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const NAME: &'static str = "delta";
    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn new(node: String, metrics: Metrics) -> Self {
        delta::Stream::new(node, metrics)
    }
    fn on_request(
        &mut self,
        r: DeltaDiscoveryRequest,
        s: Option<&Snapshot>,
    ) -> Vec<DeltaDiscoveryResponse> {
        delta::Stream::on_request(self, r, s)
    }
    fn on_snapshot(&mut self, s: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        delta::Stream::on_snapshot(self, s)
    }
    fn acknowledged(&self, snapshot: &Snapshot) -> Option<&str> {
        delta::Stream::acknowledged(self, snapshot)
    }
}

fn spawn<P>(requests: Streaming<P::Request>, server: &AdsServer) -> ResponseStream<P::Response>
where
    P: Protocol,
    P::Request: prost::Message + Default,
{
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run::<P>(
        requests,
        server.views.clone(),
        server.metrics.clone(),
        server.stop.clone(),
        tx,
    ));
    Box::pin(ReceiverStream::new(rx))
}

/// Serves one stream until the client goes away. The first request names the
/// node (Envoy sends it only there, `set_node_on_first_message_only`), which
/// picks the view of the configuration this stream follows.
async fn run<P>(
    mut requests: Streaming<P::Request>,
    views: Arc<dyn Views>,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<P::Response, Status>>,
) where
    P: Protocol,
    P::Request: prost::Message + Default,
{
    let _open = metrics.stream_opened();
    let first = tokio::select! {
        message = requests.message() => match message {
            Ok(Some(first)) => first,
            Ok(None) => return,
            Err(status) => {
                tracing::debug!(%status, "xDS stream ended before its first request");
                return;
            }
        },
        _ = stop.wait_for(|stop| *stop) => return,
    };
    let node = P::node(&first).cloned().unwrap_or_default();
    let mut snapshots = views.subscribe(&node);
    tracing::info!(node = ?node.id, cluster = ?node.cluster, protocol = P::NAME, "xDS stream opened");
    let mut stream = P::new(node.id.clone(), metrics);
    let mut next = Some(first);
    let mut reported: Option<String> = None;
    'serve: loop {
        let responses = match next.take() {
            Some(request) => {
                // Not marked seen: a snapshot published since the last push
                // is still pushed whole (`changed` below), whatever this
                // request was answered with.
                let snapshot = snapshots.borrow().clone();
                let responses = stream.on_request(request, snapshot.as_deref());
                if let Some(version) = snapshot.as_deref().and_then(|s| stream.acknowledged(s)) {
                    if reported.as_deref() != Some(version) {
                        views.acknowledged(&node, version);
                        reported = Some(version.to_owned());
                    }
                }
                responses
            }
            None => tokio::select! {
                message = requests.message() => match message {
                    Ok(Some(request)) => {
                        next = Some(request);
                        continue;
                    }
                    Ok(None) => break 'serve,
                    Err(status) => {
                        tracing::debug!(node = ?node.id, %status, "xDS stream failed");
                        break 'serve;
                    }
                },
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break 'serve; // the view is gone: the server is stopping
                    }
                    let snapshot = snapshots.borrow_and_update().clone();
                    match snapshot {
                        Some(snapshot) => stream.on_snapshot(&snapshot),
                        None => Vec::new(),
                    }
                }
                _ = stop.wait_for(|stop| *stop) => break 'serve,
            },
        };
        for response in responses {
            if tx.send(Ok(response)).await.is_err() {
                break 'serve; // the client is gone
            }
        }
    }
    tracing::info!(node = ?node.id, protocol = P::NAME, "xDS stream closed");
}
