//! Money events: what happens to a wallet's money, as it happens (reserved, paid, failed,
//! refused, pending, reconciled, held for approval, approved, denied), for whoever listens: the
//! MCP server sends them to clients as log notifications and as progress of the call that
//! caused them. An event carries amounts, the payee's host, the payment hash and ledger ids,
//! never a secret (no preimage, no macaroon, no approval secret).

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for a slow listener before it misses some.
const BUFFER: usize = 256;

tokio::task_local! {
    /// The call (an MCP request) the current task works for, if any.
    static CALL: u64;
}

/// Run `f` as the work of call `id`: the events it causes are marked with it.
pub async fn in_call<F: std::future::Future>(id: u64, f: F) -> F::Output {
    CALL.scope(id, f).await
}

/// Whether an event is news (`Info`) or a warning (`Warning`): money not spent as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    Info,
    Warning,
}

/// One thing that happened to the money.
#[derive(Debug, Clone, Serialize)]
pub struct MoneyEvent {
    /// reserved, paid, failed, refused, pending, reconciled, held, approved, denied.
    pub event: &'static str,
    pub wallet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_msat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// Why (a refusal's reason), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The call that caused it (see [`in_call`]).
    #[serde(skip)]
    pub call: Option<u64>,
}

impl MoneyEvent {
    pub fn new(event: &'static str, wallet: &str) -> MoneyEvent {
        MoneyEvent {
            event,
            wallet: wallet.to_owned(),
            amount_msat: None,
            host: None,
            payment_hash: None,
            payment_id: None,
            approval: None,
            detail: None,
            call: None,
        }
    }

    pub fn weight(&self) -> Weight {
        match self.event {
            "failed" | "refused" | "pending" | "held" | "denied" => Weight::Warning,
            _ => Weight::Info,
        }
    }
}

/// Where a wallet's events go; cheap to clone. Nobody listening costs nothing.
#[derive(Debug, Clone)]
pub struct Events(broadcast::Sender<MoneyEvent>);

impl Default for Events {
    fn default() -> Self {
        Events(broadcast::channel(BUFFER).0)
    }
}

impl Events {
    /// Tell every listener, marked with the current call.
    pub fn emit(&self, mut e: MoneyEvent) {
        e.call = CALL.try_with(|c| *c).ok();
        let _ = self.0.send(e);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<MoneyEvent> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_carry_their_call() {
        let events = Events::default();
        let mut rx = events.subscribe();
        events.emit(MoneyEvent::new("paid", "w"));
        in_call(7, async { events.emit(MoneyEvent::new("refused", "w")) }).await;
        let (a, b) = (rx.recv().await, rx.recv().await);
        assert!(matches!(a, Ok(MoneyEvent { call: None, .. })));
        let b = b.map(|e| (e.call, e.weight())).ok();
        assert_eq!(b, Some((Some(7), Weight::Warning)));
    }
}
