//! Process signals and the two ways to stop.
//!
//! SIGTERM asks for a drain: stop taking new work, finish what is in flight,
//! within `shutdown.grace_ms`. SIGINT (Ctrl-C), or any second signal, stops at once.

/// How the daemon was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownKind {
    /// Finish work in flight within the grace period.
    Drain,
    /// Stop now.
    Fast,
}

/// Waits for the next SIGTERM (drain) or SIGINT (fast).
pub async fn signal() -> ShutdownKind {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return ShutdownKind::Fast;
        };
        tokio::select! {
            _ = term.recv() => ShutdownKind::Drain,
            _ = tokio::signal::ctrl_c() => ShutdownKind::Fast,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        ShutdownKind::Fast
    }
}
