//! Prometheus metrics served at `/v1/metrics` (text exposition format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route, e.g. `/v1/chat/completions`.
    pub route: String,
    /// HTTP status code.
    pub status: u16,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route and status.
    pub requests: Family<RouteLabels, Counter>,
    /// Prompt tokens seen (whole rendered conversations).
    pub prompt_tokens: Counter,
    /// Prompt tokens whose KV state was reused from a session.
    pub cached_tokens: Counter,
    /// Tokens generated.
    pub completion_tokens: Counter,
    /// Seconds from request to the first generated token.
    pub time_to_first_token: Histogram,
    /// Sessions currently held in memory.
    pub sessions_in_memory: Gauge,
    /// Requests waiting for or holding the engine.
    pub queue_depth: Gauge,
}

impl Metrics {
    /// Create and register the metrics.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("engram");
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let prompt_tokens = Counter::default();
        registry.register("prompt_tokens", "Prompt tokens seen", prompt_tokens.clone());
        let cached_tokens = Counter::default();
        registry.register(
            "cached_prompt_tokens",
            "Prompt tokens reused from a session's KV cache",
            cached_tokens.clone(),
        );
        let completion_tokens = Counter::default();
        registry.register(
            "completion_tokens",
            "Tokens generated",
            completion_tokens.clone(),
        );
        let time_to_first_token = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "time_to_first_token_seconds",
            "Seconds from request to first generated token",
            time_to_first_token.clone(),
        );
        let sessions_in_memory = Gauge::default();
        registry.register(
            "sessions_in_memory",
            "Sessions whose KV cache is held in memory",
            sessions_in_memory.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "engine_queue_depth",
            "Generation requests waiting for or holding the engine",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            requests,
            prompt_tokens,
            cached_tokens,
            completion_tokens,
            time_to_first_token,
            sessions_in_memory,
            queue_depth,
        }
    }

    /// Render in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
