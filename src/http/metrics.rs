//! `/metrics`: the Prometheus text exposition of the store's job counts and the engine's
//! telemetry snapshot, encoded by `prometheus-client` (never formatted by hand).
//!
//! Labels are the rule and the job state only: file paths never become labels (one series per
//! file would swamp any Prometheus). Label values are escaped here, because the encoder writes
//! them as given and a rule name may hold quotes, backslashes or newlines.

use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, LabelValueEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::engine::telemetry::{Histogram, Telemetry};
use crate::store::history::JobHistory;
use crate::store::{Status, StatusReport, StoreError};

/// Why the metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The store could not be read.
    #[error("cannot read the job store for metrics")]
    Store(#[from] StoreError),
    /// The encoder failed (it writes into a `String`, so only on a broken metric).
    #[error("cannot encode the metrics")]
    Encode(#[from] std::fmt::Error),
}

/// The `Content-Type` to serve [`render`]'s text with: `prometheus-client` writes the
/// OpenMetrics text format (which Prometheus's classic text parser also reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics page: job counts by rule and state, queue depth and oldest queued age from the
/// store (`history`), and, when an engine runs in this process, its counters and histograms.
///
/// # Errors
/// [`MetricsError::Store`] when the store cannot be read.
pub fn render(
    telemetry: Option<&Telemetry>,
    history: &dyn JobHistory,
) -> Result<String, MetricsError> {
    let scrape = Scrape {
        counts: history.counts_by_rule_and_status()?,
        status: history.status()?,
        telemetry: telemetry.cloned(),
    };
    let mut registry = Registry::with_prefix("shotrouter");
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// What one scrape shows, read once so every metric of the page agrees.
#[derive(Debug)]
struct Scrape {
    counts: Vec<(String, Status, u64)>,
    status: StatusReport,
    telemetry: Option<Telemetry>,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut rules: Vec<&str> = self.counts.iter().map(|(r, _, _)| r.as_str()).collect();
        rules.sort_unstable();
        rules.dedup();
        let mut family = encoder.encode_descriptor(
            "jobs",
            "Jobs in the store, by rule and state.",
            None,
            MetricType::Gauge,
        )?;
        for rule in &rules {
            // Every state, so a state with no job still shows as 0 for each rule (an alert on
            // `failed > 0` needs the series to exist).
            for state in Status::ALL {
                let n = self
                    .counts
                    .iter()
                    .find(|(r, s, _)| r == rule && *s == state)
                    .map_or(0, |(_, _, n)| *n);
                let labels = [("rule", Escaped(rule)), ("state", Escaped(state.as_str()))];
                family.encode_family(&labels)?.encode_gauge(&n)?;
            }
        }
        gauge(
            &mut encoder,
            "queue_depth",
            "Jobs queued in the store (every node's).",
            self.status.queued,
        )?;
        gauge(
            &mut encoder,
            "oldest_queued_age_seconds",
            "Age of the oldest queued job, seconds (0 when none is queued).",
            self.status.oldest_queued_s.unwrap_or(0).max(0),
        )?;
        let Some(t) = &self.telemetry else {
            return Ok(());
        };
        let c = &t.counters;
        for (name, help, value) in [
            (
                "watcher_events",
                "File events received from the sources.",
                c.events,
            ),
            (
                "watcher_overflows",
                "Kernel event-queue overflows.",
                c.overflows,
            ),
            (
                "rescans",
                "Rescans of the tree (after an overflow or a lost root's return).",
                c.rescans,
            ),
            (
                "jobs_planned",
                "Jobs planned since the engine started.",
                c.planned,
            ),
            (
                "attempts_succeeded",
                "Attempts that succeeded.",
                c.succeeded,
            ),
            (
                "attempts_retried",
                "Attempts that failed and were queued again.",
                c.retried,
            ),
            (
                "jobs_failed",
                "Jobs that failed for good, could not be planned, or were cancelled.",
                c.failed,
            ),
            (
                "verify_failures",
                "Attempts whose product failed `verify:`.",
                c.verify_failed,
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        gauge(
            &mut encoder,
            "engine_queued",
            "Jobs this engine holds waiting for a slot (retries included).",
            t.queued as u64,
        )?;
        gauge(
            &mut encoder,
            "running_jobs",
            "Jobs in this engine's workers' hands.",
            t.active.len() as u64,
        )?;
        gauge(
            &mut encoder,
            "files_waiting",
            "Files waiting to be ready (settling, or holding still after a scan).",
            t.files_waiting as u64,
        )?;
        gauge(
            &mut encoder,
            "start_time_seconds",
            "When the engine started, unix seconds.",
            t.started_at_ms / 1000,
        )?;
        let mut family = encoder.encode_descriptor(
            "job_duration_seconds",
            "How long attempts ran, by rule.",
            None,
            MetricType::Histogram,
        )?;
        for (rule, histogram) in &t.timings.jobs {
            let labels = [("rule", Escaped(rule))];
            encode_histogram(family.encode_family(&labels)?, histogram)?;
        }
        for (name, help, histogram) in [
            (
                "store_commit_duration_seconds",
                "How long the store's group commits took.",
                &t.timings.commits,
            ),
            (
                "poll_pass_duration_seconds",
                "How long the passes over polled folders took (poll roots, and folders inotify cannot watch).",
                &t.timings.poll_passes,
            ),
        ] {
            let family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            encode_histogram(family, histogram)?;
        }
        Ok(())
    }
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: V,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn encode_histogram(
    mut metric: prometheus_client::encoding::MetricEncoder<'_>,
    histogram: &Histogram,
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = histogram
        .bounds_us
        .iter()
        .map(|&us| us as f64 / 1e6)
        .chain([f64::MAX])
        .zip(histogram.counts.iter().copied().chain(std::iter::repeat(0)))
        .collect();
    metric.encode_histogram::<NoLabelSet>(
        histogram.sum_us as f64 / 1e6,
        histogram.count,
        &buckets,
        None,
    )
}

/// A label value escaped as the text format requires (`\\`, `\"`, `\n`).
#[derive(Debug, Clone, Copy)]
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut registry = Registry::default();
        #[derive(Debug)]
        struct One(String);
        impl Collector for One {
            fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                let mut family = encoder.encode_descriptor("x", "x", None, MetricType::Gauge)?;
                family
                    .encode_family(&[("rule", Escaped(&self.0))])?
                    .encode_gauge(&1u64)
            }
        }
        registry.register_collector(Box::new(One(text.to_string())));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        out.lines()
            .find(|l| l.starts_with("x{"))
            .expect("the sample")
            .to_string()
    }

    #[test]
    fn label_values_are_escaped_as_the_text_format_requires() {
        assert_eq!(escaped("plain"), r#"x{rule="plain"} 1"#);
        assert_eq!(
            escaped("a \"q\" \\ b\nc <script>"),
            r#"x{rule="a \"q\" \\ b\nc <script>"} 1"#
        );
    }
}
