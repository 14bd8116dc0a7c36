//! How many MCP sessions an HTTP server keeps, and for how long.
//!
//! Each session holds a server task and its queues until it ends; a client that opens sessions
//! and never closes them would otherwise grow the server without bound (3,000 sessions took a
//! server from 38 to 205 MB). So both HTTP transports (streamable HTTP's sessions and the
//! legacy SSE streams) count against one cap, `max_sessions`: a session beyond it is refused
//! with 503 and `Retry-After`. A session with no message for `idle` is closed (streamable HTTP
//! by rmcp's session keep-alive, SSE by its own watch), which makes room again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio::sync::{Mutex, MutexGuard};

/// Sessions kept at most, by default.
pub(crate) const DEFAULT_MAX_SESSIONS: usize = 256;
/// Seconds without a message after which a session is closed, by default.
pub(crate) const DEFAULT_SESSION_IDLE_SECS: u64 = 30 * 60;
/// What a refused client is asked to wait before trying again, in seconds.
pub(crate) const RETRY_AFTER_SECS: u64 = 30;

/// The limits on sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions open at once, over both HTTP transports.
    pub max_sessions: usize,
    /// A session with no message for this long is closed.
    pub idle: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions: DEFAULT_MAX_SESSIONS,
            idle: Duration::from_secs(DEFAULT_SESSION_IDLE_SECS),
        }
    }
}

/// Refused: the cap is reached.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "server busy: {open} MCP sessions are open, the most this server keeps ([http] max_sessions or L402_MCP_MAX_SESSIONS); sessions idle for {idle_secs} s are closed: retry in a while, or end sessions you no longer use (HTTP DELETE /mcp)"
)]
pub struct Full {
    pub open: usize,
    pub idle_secs: u64,
}

/// The sessions of one server's HTTP transports, counted against one cap.
#[derive(Debug)]
pub(crate) struct SessionCap {
    limits: SessionLimits,
    /// Held while a session is being created, so that the count checked is the count kept.
    gate: Mutex<()>,
    /// Streamable HTTP's sessions (counted in rmcp's own map).
    streamable: Option<Arc<LocalSessionManager>>,
    /// Open legacy SSE sessions.
    legacy: AtomicUsize,
}

impl SessionCap {
    pub fn new(limits: SessionLimits, streamable: Option<Arc<LocalSessionManager>>) -> Arc<Self> {
        Arc::new(SessionCap {
            limits,
            gate: Mutex::new(()),
            streamable,
            legacy: AtomicUsize::new(0),
        })
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Sessions open now.
    pub async fn open(&self) -> usize {
        let streamable = match &self.streamable {
            Some(m) => m.sessions.read().await.len(),
            None => 0,
        };
        streamable + self.legacy.load(Ordering::SeqCst)
    }

    /// Room for one more session: create it while holding the guard (so that concurrent
    /// creations cannot pass the cap together), or [`Full`].
    pub async fn admit(&self) -> Result<MutexGuard<'_, ()>, Full> {
        let gate = self.gate.lock().await;
        let open = self.open().await;
        if open >= self.limits.max_sessions {
            return Err(Full {
                open,
                idle_secs: self.limits.idle.as_secs(),
            });
        }
        Ok(gate)
    }

    /// Count a legacy SSE session until the returned slot is dropped.
    pub(crate) fn legacy_slot(self: &Arc<Self>) -> LegacySlot {
        self.legacy.fetch_add(1, Ordering::SeqCst);
        LegacySlot(self.clone())
    }
}

/// A legacy SSE session counted against the cap.
#[derive(Debug)]
pub(crate) struct LegacySlot(Arc<SessionCap>);

impl Drop for LegacySlot {
    fn drop(&mut self) {
        self.0.legacy.fetch_sub(1, Ordering::SeqCst);
    }
}
