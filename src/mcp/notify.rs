//! Money events ([`crate::events`]) to MCP clients:
//!
//! - as log notifications (`notifications/message`, logger `l402-mcp.money`): on 2025-11-25
//!   to a session that asked with `logging/setLevel`, every event of the wallet at or above its
//!   level; on 2026-07-28 (no setLevel) the events a call causes, to a request that names a
//!   level in its `_meta`;
//! - as progress of the call that caused them, when the request carries a progress token, and
//!   every few seconds while the call waits (for a person's answer, say), so a client that
//!   resets its timeout on progress keeps waiting.
//!
//! An event carries no secret; nothing is sent to a client that did not ask.

#![allow(deprecated)] // logging is deprecated by SEP-2577 (2026-07-28) but 2025-11-25 clients use it

use std::time::Duration;

use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer};
use tokio::sync::broadcast::error::RecvError;

use super::L402Server;
use crate::budget::sats;
use crate::events::{MoneyEvent, Weight};

/// The logger named in log notifications.
const LOGGER: &str = "l402-mcp.money";
/// How often a waiting call reports progress.
const HEARTBEAT: Duration = Duration::from_secs(5);

fn rank(l: LoggingLevel) -> u8 {
    match l {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

fn level(e: &MoneyEvent) -> LoggingLevel {
    match e.weight() {
        Weight::Info => LoggingLevel::Info,
        Weight::Warning => LoggingLevel::Warning,
    }
}

/// The event in a few words, for a progress message.
fn said(e: &MoneyEvent) -> String {
    let amount = e.amount_msat.map(sats).unwrap_or_default();
    let to = e
        .host
        .as_deref()
        .map(|h| format!(" to {h}"))
        .unwrap_or_default();
    match e.event {
        "reserved" => format!("{amount}{to} reserved in the budget; paying"),
        "paid" => format!("paid {amount}{to}"),
        "held" => format!(
            "{amount}{to} waits for a person's approval (approval {})",
            e.approval.as_deref().unwrap_or("?")
        ),
        "approved" => format!("approved by a person: paying {amount}{to}"),
        "denied" => format!("denied by a person: {amount}{to} not paid"),
        other => format!("{other}: {amount}{to}"),
    }
}

async fn log(peer: &Peer<RoleServer>, e: &MoneyEvent) -> bool {
    let data = serde_json::to_value(e).unwrap_or_default();
    peer.notify_logging_message(
        LoggingMessageNotificationParam::new(level(e), data).with_logger(LOGGER),
    )
    .await
    .is_ok()
}

impl L402Server {
    /// `logging/setLevel` (2025-11-25): keep the session's level, and from now on send it the
    /// wallet's money events at or above it.
    pub(crate) fn set_log_level(&self, min: LoggingLevel, ctx: &RequestContext<RoleServer>) {
        if let Ok(mut l) = self.log_level.lock() {
            *l = Some(min);
        }
        if self.forwarding.set(()).is_err() {
            return;
        }
        let (peer, wanted, mut rx) = (
            ctx.peer.clone(),
            self.log_level.clone(),
            self.app().payer.events().subscribe(),
        );
        tokio::spawn(async move {
            loop {
                let e = match rx.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let min = wanted.lock().ok().and_then(|l| *l);
                if min.is_some_and(|m| rank(level(&e)) >= rank(m)) && !log(&peer, &e).await {
                    return; // the session is gone
                }
            }
        });
    }

    /// Run a call's work, sending its money events as progress (with a progress token) and, on
    /// 2026-07-28, as log notifications (when the request names a level).
    pub(crate) async fn reporting<F>(
        &self,
        ctx: &RequestContext<RoleServer>,
        work: F,
    ) -> Result<rmcp::model::CallToolResponse, ErrorData>
    where
        F: std::future::Future<Output = Result<rmcp::model::CallToolResponse, ErrorData>>,
    {
        let token = ctx.meta.get_progress_token();
        let modern = ctx
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28);
        let wanted = modern.then(|| ctx.meta.log_level()).flatten();
        if token.is_none() && wanted.is_none() {
            return work.await;
        }
        let call = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut rx = self.app().payer.events().subscribe();
        let mut report = Report {
            peer: &ctx.peer,
            token,
            wanted,
            step: 0,
        };
        let work = crate::events::in_call(call, work);
        tokio::pin!(work);
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.tick().await;
        loop {
            tokio::select! {
                r = &mut work => {
                    // What the call caused just before it ended.
                    while let Ok(e) = rx.try_recv() {
                        if e.call == Some(call) {
                            report.event(&e).await;
                        }
                    }
                    return r;
                }
                e = rx.recv() => {
                    if let Ok(e) = e && e.call == Some(call) {
                        report.event(&e).await;
                    }
                }
                _ = beat.tick() => report.progress("still working (waiting for an answer or the wallet)").await,
            }
        }
    }
}

/// Where one call's events go.
struct Report<'a> {
    peer: &'a Peer<RoleServer>,
    token: Option<ProgressToken>,
    wanted: Option<LoggingLevel>,
    step: u32,
}

impl Report<'_> {
    async fn progress(&mut self, message: &str) {
        let Some(token) = &self.token else {
            return;
        };
        self.step += 1;
        let _ = self
            .peer
            .notify_progress(
                ProgressNotificationParam::new(token.clone(), f64::from(self.step))
                    .with_message(message),
            )
            .await;
    }

    async fn event(&mut self, e: &MoneyEvent) {
        self.progress(&said(e)).await;
        if self.wanted.is_some_and(|m| rank(level(e)) >= rank(m)) {
            log(self.peer, e).await;
        }
    }
}
