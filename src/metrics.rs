//! Process metrics in the Prometheus text format (`GET /metrics`).
//!
//! A small registry of atomics: counters, gauges and fixed-bucket histograms.
//! Label values come from closed sets (outcomes, reasons, drop causes), never
//! from organizations, numbers or call ids, so the series count is bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of every histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// A counter split by one or two labels from closed sets.
#[derive(Debug, Default)]
pub struct LabeledCounter(Mutex<BTreeMap<(&'static str, &'static str), u64>>);

impl LabeledCounter {
    pub fn inc(&self, a: &'static str, b: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((a, b))
            .or_default() += 1;
    }

    /// The current value for a label pair.
    pub fn get(&self, a: &str, b: &str) -> u64 {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter()
            .filter(|((x, y), _)| *x == a && *y == b)
            .map(|(_, v)| *v)
            .sum()
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: (&str, &str)) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for ((a, b), v) in self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            if labels.1.is_empty() {
                let _ = writeln!(out, "{name}{{{}=\"{a}\"}} {v}", labels.0);
            } else {
                let _ = writeln!(
                    out,
                    "{name}{{{}=\"{a}\",{}=\"{b}\"}} {v}",
                    labels.0, labels.1
                );
            }
        }
    }
}

/// Every metric of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Calls by outcome (`redirect`, `reject`, ...) and reason.
    pub calls: LabeledCounter,
    /// Requests dropped without an answer, by cause.
    pub dropped: LabeledCounter,
    /// INVITE received → final response decided.
    pub decision_latency: Histogram,
    /// Workflow runs.
    pub workflow_run: Histogram,
    /// `http` steps.
    pub http_step: Histogram,
    pub live_transactions: AtomicI64,
    pub retransmissions: AtomicU64,
    /// INVITEs answered 503 at once because too many were pending or a UDP
    /// receive queue was running full.
    pub overload_503: AtomicU64,
    /// Datagrams the kernel dropped on a full UDP receive queue.
    pub udp_receive_drops: AtomicU64,
    pub snapshot_reloads: AtomicU64,
    /// Unix seconds of the last snapshot reload.
    pub snapshot_loaded_at: AtomicI64,
    pub database_errors: AtomicU64,
    /// Memory held by the flood limiter (fixed at start).
    pub limiter_bytes: AtomicU64,
}

/// The process-wide registry.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// Values owned elsewhere, sampled when rendering.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sampled {
    pub decision_queue_depth: usize,
    pub decision_dropped: u64,
    pub decisions_written: u64,
    pub decision_write_errors: u64,
    pub workflow_concurrency_cap: usize,
}

impl Metrics {
    /// Renders everything as Prometheus text.
    pub fn render(&self, sampled: Sampled) -> String {
        let mut out = String::with_capacity(4096);
        self.calls.render(
            &mut out,
            "inroute_calls_total",
            "INVITEs answered, by outcome and reason.",
            ("outcome", "reason"),
        );
        self.dropped.render(
            &mut out,
            "inroute_sip_dropped_total",
            "SIP messages dropped without an answer, by cause.",
            ("cause", ""),
        );
        self.decision_latency.render(
            &mut out,
            "inroute_decision_seconds",
            "INVITE received to final response decided.",
        );
        self.workflow_run.render(
            &mut out,
            "inroute_workflow_run_seconds",
            "Routing workflow runs.",
        );
        self.http_step.render(
            &mut out,
            "inroute_http_step_seconds",
            "Workflow http steps.",
        );
        let now = chrono::Utc::now().timestamp();
        let loaded = self.snapshot_loaded_at.load(Ordering::Relaxed);
        let gauges: [(&str, &str, &str, String); 13] = [
            (
                "inroute_flood_limiter_bytes",
                "gauge",
                "Memory of the per-source flood limiter (fixed).",
                self.limiter_bytes.load(Ordering::Relaxed).to_string(),
            ),
            (
                "inroute_sip_transactions",
                "gauge",
                "INVITE transactions alive.",
                self.live_transactions.load(Ordering::Relaxed).to_string(),
            ),
            (
                "inroute_sip_retransmissions_total",
                "counter",
                "Final responses retransmitted (Timer G).",
                self.retransmissions.load(Ordering::Relaxed).to_string(),
            ),
            (
                "inroute_sip_overload_rejections_total",
                "counter",
                "INVITEs answered 503 at once: sip.max_pending_invites unanswered, or a UDP receive queue past sip.udp_shed_queue_percent.",
                self.overload_503.load(Ordering::Relaxed).to_string(),
            ),
            (
                "inroute_sip_udp_receive_drops",
                "gauge",
                "Datagrams the kernel dropped on a full UDP receive queue (since the socket opened).",
                self.udp_receive_drops.load(Ordering::Relaxed).to_string(),
            ),
            (
                "inroute_snapshot_reloads_total",
                "counter",
                "Routing snapshot reloads.",
                self.snapshot_reloads.load(Ordering::Relaxed).to_string(),
            ),
            (
                "inroute_snapshot_age_seconds",
                "gauge",
                "Seconds since the last snapshot reload.",
                if loaded == 0 {
                    "0".into()
                } else {
                    (now - loaded).to_string()
                },
            ),
            (
                "inroute_database_errors_total",
                "counter",
                "Failed database operations.",
                self.database_errors.load(Ordering::Relaxed).to_string(),
            ),
            (
                "inroute_decision_log_queue_depth",
                "gauge",
                "Decision records waiting to be written.",
                sampled.decision_queue_depth.to_string(),
            ),
            (
                "inroute_decision_log_dropped_total",
                "counter",
                "Decision records dropped because the queue was full.",
                sampled.decision_dropped.to_string(),
            ),
            (
                "inroute_decision_log_written_total",
                "counter",
                "Decision records written.",
                sampled.decisions_written.to_string(),
            ),
            (
                "inroute_decision_log_write_errors_total",
                "counter",
                "Failed decision batch writes (retried).",
                sampled.decision_write_errors.to_string(),
            ),
            (
                "inroute_workflow_concurrency_limit",
                "gauge",
                "Workflow runs allowed in flight before 503.",
                sampled.workflow_concurrency_cap.to_string(),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.calls.inc("redirect", "agent");
        m.calls.inc("redirect", "agent");
        m.decision_latency.observe(Duration::from_micros(700));
        let text = m.render(Sampled::default());
        assert!(
            text.contains("inroute_calls_total{outcome=\"redirect\",reason=\"agent\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("inroute_decision_seconds_bucket{le=\"0.0005\"} 0\ninroute_decision_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("inroute_decision_seconds_count 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
