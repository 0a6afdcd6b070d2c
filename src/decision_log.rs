//! The decision log: every routing decision becomes a record, written to the
//! store in batches by a background task through a bounded queue.
//!
//! The call path never waits on it: `record` is a `try_send`; when the queue
//! is full the record is dropped and counted. While the database is down the
//! writer keeps its batch and retries; records wait in the queue and are
//! written when it returns. Recent decisions are also kept in memory for a few
//! minutes, so the agent side can fetch one by the 302's decision id before
//! its batch lands.
//!
//! Allowed imports: `store`, tokio. Must not import `sip`, `admin`, `routing`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::DecisionsConfig;
use crate::store::types::DecisionRecord;
use crate::store::Store;

/// Handle to the decision log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DecisionLog {
    tx: mpsc::Sender<Arc<DecisionRecord>>,
    recent: Arc<Mutex<Recent>>,
    stats: Arc<Stats>,
    capacity: usize,
}

/// Counters the metrics endpoint reports.
#[derive(Debug)]
pub struct Stats {
    pub dropped: AtomicU64,
    pub write_errors: AtomicU64,
    /// Records written so far (a watch, so callers can wait for a flush).
    written: watch::Sender<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            written: watch::channel(0).0,
        }
    }
}

impl Stats {
    pub fn written(&self) -> u64 {
        *self.written.borrow()
    }
}

#[derive(Debug)]
struct Recent {
    by_id: HashMap<String, (Instant, Arc<DecisionRecord>)>,
    order: VecDeque<String>,
    capacity: usize,
    ttl: Duration,
}

impl Recent {
    fn insert(&mut self, record: Arc<DecisionRecord>) {
        let now = Instant::now();
        while let Some(oldest) = self.order.front() {
            let expired = self
                .by_id
                .get(oldest)
                .is_none_or(|(at, _)| now.duration_since(*at) > self.ttl);
            if expired || self.order.len() >= self.capacity {
                let id = self.order.pop_front().expect("front exists");
                self.by_id.remove(&id);
            } else {
                break;
            }
        }
        self.order.push_back(record.id.clone());
        self.by_id.insert(record.id.clone(), (now, record));
    }

    fn get(&self, id: &str) -> Option<Arc<DecisionRecord>> {
        self.by_id
            .get(id)
            .filter(|(at, _)| at.elapsed() <= self.ttl)
            .map(|(_, r)| Arc::clone(r))
    }
}

impl DecisionLog {
    /// Starts the batch writer and the retention purge. `closing` asks the
    /// writer to flush what is queued and stop.
    pub fn start(
        store: Store,
        config: &DecisionsConfig,
        closing: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let log = Self {
            tx,
            recent: Arc::new(Mutex::new(Recent {
                by_id: HashMap::new(),
                order: VecDeque::new(),
                capacity: config.recent_capacity,
                ttl: Duration::from_secs(config.recent_ttl_s),
            })),
            stats: Arc::new(Stats::default()),
            capacity: config.queue_capacity,
        };
        let writer = tokio::spawn(write_batches(
            store.clone(),
            rx,
            config.batch_size,
            Duration::from_millis(config.flush_interval_ms),
            Arc::clone(&log.stats),
            closing.clone(),
        ));
        tokio::spawn(purge(
            store,
            config.retention_days,
            Duration::from_secs(config.purge_interval_s),
            closing,
        ));
        (log, writer)
    }

    /// Queues a record without waiting; drops (and counts) it if the queue is full.
    pub fn record(&self, record: DecisionRecord) {
        let record = Arc::new(record);
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(Arc::clone(&record));
        if self.tx.try_send(record).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("decision log queue full; record dropped");
        }
    }

    /// A recent decision of `org_id`, from memory.
    pub fn recent(&self, org_id: &str, id: &str) -> Option<DecisionRecord> {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recent
            .get(id)
            .filter(|r| r.organization_id == org_id)
            .map(|r| (*r).clone())
    }

    /// Records waiting to be written.
    pub fn queued(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Waits until at least `n` records have been written to the store.
    pub async fn written_at_least(&self, n: u64) {
        let mut rx = self.stats.written.subscribe();
        let _ = rx.wait_for(|written| *written >= n).await;
    }
}

/// A new decision id: time-ordered (microseconds, hex) then random.
pub fn new_decision_id() -> String {
    let micros = Utc::now().timestamp_micros().max(0);
    format!("dec_{micros:014x}{}", crate::token::random_alnum(8))
}

async fn write_batches(
    store: Store,
    mut rx: mpsc::Receiver<Arc<DecisionRecord>>,
    batch_size: usize,
    flush_interval: Duration,
    stats: Arc<Stats>,
    closing: CancellationToken,
) {
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        let first = tokio::select! {
            r = rx.recv() => r,
            () = closing.cancelled() => rx.try_recv().ok(),
        };
        let Some(first) = first else { return };
        batch.push(first);
        gather(&mut rx, &mut batch, batch_size, flush_interval, &closing).await;
        let mut backoff = Duration::from_millis(200);
        loop {
            match store.insert_decisions(&batch).await {
                Ok(()) => {
                    stats.written.send_modify(|n| *n += batch.len() as u64);
                    batch.clear();
                    break;
                }
                Err(e) => {
                    stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, records = batch.len(), "decision log write failed; retrying");
                    if closing.is_cancelled() {
                        tracing::error!(
                            records = batch.len(),
                            "shutting down with unwritten decision records"
                        );
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = closing.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Adds records to `batch` until it holds `batch_size`, `flush_interval` has
/// passed, or the log is closing (then only what is already queued).
async fn gather(
    rx: &mut mpsc::Receiver<Arc<DecisionRecord>>,
    batch: &mut Vec<Arc<DecisionRecord>>,
    batch_size: usize,
    flush_interval: Duration,
    closing: &CancellationToken,
) {
    let deadline = Instant::now() + flush_interval;
    while batch.len() < batch_size {
        if let Ok(record) = rx.try_recv() {
            batch.push(record);
            continue;
        }
        let next = tokio::select! {
            r = tokio::time::timeout_at(deadline, rx.recv()) => r,
            () = closing.cancelled() => return,
        };
        match next {
            Ok(Some(record)) => batch.push(record),
            Ok(None) | Err(_) => return,
        }
    }
}

async fn purge(store: Store, retention_days: u32, every: Duration, closing: CancellationToken) {
    loop {
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(retention_days));
        match store.purge_decisions(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, retention_days, "purged old decisions"),
            Err(e) => tracing::warn!(error = %e, "decision purge failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = closing.cancelled() => return,
        }
    }
}
