//! Keeping every instance's snapshot current when several daemons share one
//! PostgreSQL (DESIGN section 9).
//!
//! A write through any instance's admin API bumps the organization's change
//! counter and sends `NOTIFY inroute_changes, '<org>'`. Every instance
//! listens and reloads that organization at once. A periodic reconciliation
//! compares the counters with what this instance has loaded, which repairs
//! notifications missed while the listener was reconnecting (the listener
//! reconnects by itself after a database restart).
//!
//! Allowed imports: `store`, `snapshot`. Must not import `sip` or `admin`.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::snapshot::Routing;
use crate::store::{Change, Store};

/// Starts the listener (PostgreSQL only) and the reconciliation loop.
pub fn start(
    store: Store,
    routing: Routing,
    reconcile_every: Duration,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let listener = tokio::spawn(listen(store.clone(), routing.clone(), shutdown.clone()));
    let reconciler = tokio::spawn(reconcile_loop(store, routing, reconcile_every, shutdown));
    vec![listener, reconciler]
}

async fn listen(store: Store, routing: Routing, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut listener = match store.listen_changes().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "change listener could not connect; retrying");
                if wait(&shutdown, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        tracing::info!("listening for routing changes");
        // Changes made while we were not listening are picked up here.
        reconcile(&store, &routing, &mut HashMap::new()).await;
        loop {
            let next = tokio::select! {
                n = listener.next() => n,
                () = shutdown.cancelled() => return,
            };
            match next {
                Ok(Change::Org(org)) => {
                    if let Err(e) = routing.reload_org(&store, &org).await {
                        tracing::warn!(org, error = %e, "reload after notification failed; reconciliation will retry");
                    }
                }
                Ok(Change::Resync) => {
                    tracing::info!("change listener reconnected; resynchronising");
                    reconcile(&store, &routing, &mut HashMap::new()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change listener lost the database");
                    if wait(&shutdown, backoff).await {
                        return;
                    }
                }
            }
        }
    }
}

async fn reconcile_loop(
    store: Store,
    routing: Routing,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut seen = HashMap::new();
    // The snapshot was just loaded: start from the current counters.
    if let Ok(counters) = store.change_counters().await {
        seen.extend(counters);
    }
    while !wait(&shutdown, every).await {
        reconcile(&store, &routing, &mut seen).await;
    }
}

/// Reloads every organization whose change counter differs from `seen`
/// (everything, when `seen` is empty).
async fn reconcile(store: &Store, routing: &Routing, seen: &mut HashMap<String, i64>) {
    let counters = match store.change_counters().await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "reconciliation skipped: database unavailable");
            return;
        }
    };
    for (org, version) in counters {
        if seen.get(&org) == Some(&version) {
            continue;
        }
        match routing.reload_org(store, &org).await {
            Ok(()) => {
                seen.insert(org, version);
            }
            Err(e) => tracing::warn!(org, error = %e, "reconciliation reload failed"),
        }
    }
}

/// Sleeps for `d`; `true` if shutdown came first.
async fn wait(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = shutdown.cancelled() => true,
    }
}
