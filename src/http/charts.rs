//! `GET /api/v1/charts/done.svg` and `/api/v1/charts/queued.svg`: jobs done per minute and the
//! queue's depth over the last 24 h, per rule, drawn by the server ([`super::chart_svg`]).
//!
//! Jobs done come from the store (the finish times of the day's done jobs, at most
//! [`DONE_ROWS`] of them). The store keeps no history of the queue, so the server samples it:
//! each rule's queued count once a minute (and when the chart is drawn) into a ring of a day's
//! minutes ([`QueueSamples`]), from the moment the server started; a restart starts the line
//! again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State as Extract;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::store::history::JobFilter;
use crate::store::{Status, now_ms};

use super::State;
use super::chart_svg::{SPAN_MINUTES, Series, draw};
use super::error::ApiError;
use super::pool::Pool;

/// The most done jobs read for the chart: a day of a busy farm, and a bound on its cost.
pub const DONE_ROWS: usize = 50_000;

/// How often the queue is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// Per rule, queued jobs are counted up to this many (as the per-rule counts are).
const QUEUE_CAP: usize = super::live::COUNT_CAP;

/// One minute's sample: per rule, its queued jobs.
type Sample = (i64, Vec<(String, u64)>);

/// The queue's samples of the last day, oldest first, and when the last was taken (unix ms).
#[derive(Debug, Default)]
pub(crate) struct QueueSamples(Mutex<VecDeque<Sample>>, std::sync::atomic::AtomicI64);

/// A chart drawn sooner than this after the last sample reuses it: the chart is served without
/// the token, and each sample reads the store once per rule.
const FRESH_ENOUGH_MS: i64 = 10_000;

impl QueueSamples {
    fn push(&self, sample: Sample) {
        self.1.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        let mut ring = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.back().is_some_and(|(m, _)| *m == sample.0) {
            ring.pop_back();
        }
        ring.push_back(sample);
        while ring.len() > SPAN_MINUTES as usize {
            ring.pop_front();
        }
    }

    /// Per rule, its (minute, queued) points.
    fn series(&self) -> Vec<Series> {
        let ring = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut by_rule: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
        for (minute, counts) in ring.iter() {
            for (rule, queued) in counts {
                by_rule
                    .entry(rule.clone())
                    .or_default()
                    .push((*minute, *queued));
            }
        }
        by_rule
            .into_iter()
            .map(|(name, points)| Series { name, points })
            .collect()
    }
}

/// Samples the queue now and then every [`SAMPLE_EVERY`] until `stop`.
pub(crate) fn start_sampling(
    pool: Pool,
    samples: Arc<QueueSamples>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            sample(&pool, &samples).await;
            tokio::select! {
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    });
}

/// Counts each rule's queued jobs into this minute's sample (replacing one taken earlier in the
/// minute); a store that cannot answer leaves a gap (logged at debug).
async fn sample(pool: &Pool, samples: &QueueSamples) {
    let counted = pool
        .run(|h| {
            let names = h.rule_names()?;
            let mut counts = Vec::with_capacity(names.len());
            for name in names {
                let queued = h.count_jobs(&JobFilter {
                    status: Some(Status::Queued),
                    rule: Some(&name),
                    limit: QUEUE_CAP,
                    ..JobFilter::default()
                })?;
                counts.push((name, queued as u64));
            }
            Ok(counts)
        })
        .await;
    match counted {
        Ok(counts) => samples.push((now_ms() / 60_000, counts)),
        Err(e) => tracing::debug!(error = %e, "cannot sample the queue for its chart"),
    }
}

/// Jobs done per minute over the last day, per rule.
pub(crate) async fn done(Extract(state): Extract<State>) -> Result<Response, ApiError> {
    let now = now_ms();
    let rows = state
        .pool
        .run(move |h| {
            Ok(h.jobs(&JobFilter {
                status: Some(Status::Done),
                since_ms: Some(now - SPAN_MINUTES * 60_000),
                limit: DONE_ROWS,
                ..JobFilter::default()
            })?)
        })
        .await?;
    let mut by_rule: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    for row in rows {
        if let Some(at) = row.finished_at {
            *by_rule
                .entry(row.rule)
                .or_default()
                .entry(at / 60_000)
                .or_default() += 1;
        }
    }
    let series: Vec<Series> = by_rule
        .into_iter()
        .map(|(name, minutes)| Series {
            name,
            points: minutes.into_iter().collect(),
        })
        .collect();
    Ok(svg(draw(
        "jobs done per minute",
        &series,
        now / 60_000,
        true,
    )))
}

/// The queue's depth, sampled each minute since the server started (and when the chart is
/// drawn, so that its last point is now), per rule.
pub(crate) async fn queued(Extract(state): Extract<State>) -> Response {
    let last = state
        .queue_samples
        .1
        .load(std::sync::atomic::Ordering::Relaxed);
    if now_ms() - last > FRESH_ENOUGH_MS {
        sample(&state.pool, &state.queue_samples).await;
    }
    let series = state.queue_samples.series();
    svg(draw("jobs queued", &series, now_ms() / 60_000, false))
}

fn svg(body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
