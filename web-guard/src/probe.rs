//! The monitoring page both servers answer at `/metrics`, in the OpenMetrics text format
//! Prometheus scrapes, encoded by `prometheus-client` (the Prometheus project's own Rust
//! client) rather than by hand.
//!
//! Both servers read their figures when a scrape arrives (the driver's live status, the
//! store's counts) instead of keeping counters up to date on every call: the figures already
//! exist for the status pages, and a scrape every 15 s costs a few indexed counts. So a
//! [`Scrape`] is built per request, filled, and encoded.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Value = Gauge<f64, std::sync::atomic::AtomicU64>;
type Labels = Vec<(String, String)>;

/// One scrape's figures; names are prefixed `outpost_`.
pub struct Scrape {
    registry: Registry,
}

impl Default for Scrape {
    fn default() -> Self {
        Scrape { registry: Registry::with_prefix("outpost") }
    }
}

impl Scrape {
    /// One figure without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        let gauge = Value::default();
        gauge.set(value);
        self.registry.register(name, help, gauge);
    }

    /// One figure per label set, e.g. agents by state (`[("state", "ready")]`).
    pub fn gauges<'a>(
        &mut self,
        name: &str,
        help: &str,
        values: impl IntoIterator<Item = (Vec<(&'a str, String)>, f64)>,
    ) {
        let family = Family::<Labels, Value>::default();
        for (labels, value) in values {
            let labels: Labels = labels.into_iter().map(|(key, val)| (key.to_string(), val)).collect();
            family.get_or_create(&labels).set(value);
        }
        self.registry.register(name, help, family);
    }

    /// The OpenMetrics text.
    pub fn text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an encoding error would be a label this code
        // wrote, so it is reported in the page rather than hidden.
        if let Err(error) = encode(&mut text, &self.registry) {
            text = format!("# encoding failed: {error}\n");
        }
        text
    }
}

impl IntoResponse for Scrape {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            self.text(),
        )
            .into_response()
    }
}

/// How the log is written: lines for a person (the default), or one JSON object per event
/// for a log collector (`--log-format json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Starts the process's log: `RUST_LOG` filters it (`info` by default).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log.json().init(),
    }
}

/// The size of a file system and what an unprivileged writer may still use of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// [`DiskSpace`] of the file system holding `path` (statvfs through `rustix`, no unsafe).
pub fn disk_space(path: &std::path::Path) -> Option<DiskSpace> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(DiskSpace {
        free_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
        total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
    })
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
pub fn disk_free_bytes(path: &std::path::Path) -> Option<u64> {
    disk_space(path).map(|space| space.free_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_with_and_without_labels() {
        let mut scrape = Scrape::default();
        scrape.gauge("outbox_entries", "Entries waiting for HQ", 3.0);
        scrape.gauges(
            "agents",
            "Signed-in agents by state",
            [(vec![("state", "ready".to_string())], 2.0), (vec![("state", "busy".to_string())], 1.0)],
        );
        let text = scrape.text();
        assert!(text.contains("# TYPE outpost_outbox_entries gauge"), "{text}");
        assert!(text.contains("outpost_outbox_entries 3.0"), "{text}");
        assert!(text.contains("outpost_agents{state=\"ready\"} 2.0"), "{text}");
        assert!(text.contains("outpost_agents{state=\"busy\"} 1.0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn disk_free_of_a_real_directory() {
        let free = disk_free_bytes(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        assert!(free.is_some_and(|bytes| bytes > 0), "{free:?}");
        assert_eq!(disk_free_bytes(std::path::Path::new("/no/such/dir/here")), None);
    }
}
