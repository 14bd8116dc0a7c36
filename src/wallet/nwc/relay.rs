//! The NIP-47 transport: one request event out over the connection's relays, its answer back,
//! and, when that fails, whether the request can have reached the wallet service.
//!
//! Driven step by step on the `nwc` crate's relay pool rather than through `nwc::NWC`, because
//! the pay path must know whether a request left this process (see [`Transport`]).

use std::collections::HashSet;
use std::time::Duration;

use nwc::nostr::nips::nip04;
use nwc::nostr::nips::nip47::{NostrWalletConnectURI, Request};
use nwc::nostr::{
    ClientMessage, Event, EventBuilder, EventId, Filter, JsonUtil, Keys, Kind, PublicKey,
    RelayMessage, RelayUrl, SubscriptionId, Tag, Timestamp,
};
use nwc::prelude::{Relay, RelayOptions, RelayPool, RelayPoolNotification, SubscribeOptions};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::warn;

use super::api::Reply;
use super::error::Transport;
use crate::wallet::WalletError;

/// Longest wait for a first relay connection (within the request's timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Added to a request's `expiration` tag beyond our own timeout, for clock skew.
pub(super) const EXPIRATION_SLACK_SECS: u64 = 60;

/// One NWC connection: the wallet service, this client's key (the URI's secret) and the
/// relays between them.
pub(super) struct Link {
    /// The wallet service's public key (the URI's host part).
    service: PublicKey,
    /// This connection's client key (the URI's secret).
    keys: Keys,
    relays: Vec<RelayUrl>,
    pool: RelayPool,
    timeout: Duration,
}

impl std::fmt::Debug for Link {
    // The keys are the connection's secret: show only whom it talks to, and where.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("wallet_service", &self.service.to_hex())
            .field("relays", &self.relay_names())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// The relay pool for `uri`; nothing is contacted until the first call.
    pub(super) async fn new(
        uri: &NostrWalletConnectURI,
        timeout: Duration,
    ) -> Result<Link, WalletError> {
        let pool = RelayPool::default();
        for relay in &uri.relays {
            pool.add_relay(relay.clone(), RelayOptions::default())
                .await
                .map_err(|e| WalletError::Other(format!("NWC relay {}: {e}", relay_name(relay))))?;
        }
        Ok(Link {
            service: uri.public_key,
            keys: Keys::new(uri.secret.clone()),
            relays: uri.relays.clone(),
            pool,
            timeout,
        })
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    fn relay_names(&self) -> String {
        self.relays
            .iter()
            .map(relay_name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The relays we are connected to, waiting (within `deadline`) for at least one.
    async fn connected_relays(&self, deadline: Instant) -> Result<Vec<Relay>, Transport> {
        self.pool.connect().await;
        let give_up = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        loop {
            let up: Vec<Relay> = self
                .pool
                .relays()
                .await
                .into_values()
                .filter(Relay::is_connected)
                .collect();
            if !up.is_empty() {
                return Ok(up);
            }
            if Instant::now() >= give_up {
                return Err(Transport::NotSent(format!(
                    "could not connect to the NWC relay ({}); check the network and the relay in the connection URI",
                    self.relay_names()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send one NIP-47 request and wait for its answer.
    pub(super) async fn call(&self, request: Request) -> Result<Reply, Transport> {
        let method = request.method.as_str().to_owned();
        let deadline = Instant::now() + self.timeout;
        let relays = self.connected_relays(deadline).await?;

        let expiration =
            Timestamp::now().as_secs() + self.timeout.as_secs() + EXPIRATION_SLACK_SECS;
        let content = nip04::encrypt(self.keys.secret_key(), &self.service, request.as_json())
            .map_err(|e| {
                Transport::NotSent(format!("could not encrypt the {method} request: {e}"))
            })?;
        let event = EventBuilder::new(Kind::WalletConnectRequest, content)
            .tag(Tag::public_key(self.service))
            .tag(Tag::expiration(Timestamp::from_secs(expiration)))
            .sign_with_keys(&self.keys)
            .map_err(|e| Transport::NotSent(format!("could not sign the {method} request: {e}")))?;

        // Listen before subscribing, and subscribe before publishing: the answer is an ephemeral
        // event that relays do not keep.
        let mut notifications = self.pool.notifications();
        let sub = SubscriptionId::generate();
        let filter = Filter::new()
            .author(self.service)
            .kind(Kind::WalletConnectResponse)
            .event(event.id);
        let mut listening = Vec::new();
        for relay in relays {
            match relay
                .subscribe_with_id(sub.clone(), filter.clone(), SubscribeOptions::default())
                .await
            {
                Ok(()) => listening.push(relay),
                Err(e) => {
                    warn!(relay = %relay_name(relay.url()), error = %e, "could not subscribe for NWC answers")
                }
            }
        }
        if listening.is_empty() {
            return Err(Transport::NotSent(format!(
                "could not subscribe for answers on the NWC relay ({})",
                self.relay_names()
            )));
        }

        let outcome = self
            .publish_and_wait(&listening, &event, &sub, &mut notifications, deadline)
            .await;
        for relay in &listening {
            let _ = relay.unsubscribe(&sub).await;
        }
        let answer = outcome?;

        let json = nip04::decrypt(self.keys.secret_key(), &answer.pubkey, &answer.content)
            .map_err(|e| {
                Transport::Unknown(format!(
                    "the wallet service's answer to {method} could not be decrypted: {e}"
                ))
            })?;
        let reply: Reply = serde_json::from_str(&json).map_err(|e| {
            Transport::Unknown(format!(
                "the wallet service's answer to {method} is not a NIP-47 response: {e}"
            ))
        })?;
        if let Some(t) = &reply.result_type
            && !t.eq_ignore_ascii_case(&method)
        {
            return Err(Transport::Unknown(format!(
                "the wallet service answered {method} with a {t} result"
            )));
        }
        Ok(reply)
    }

    /// Publish `event` to `relays` and wait until `deadline` for the answer. Each relay either
    /// refuses the event (`OK false`, or it never leaves this process): then it cannot have
    /// reached the wallet service through that relay; or it may have delivered it.
    async fn publish_and_wait(
        &self,
        relays: &[Relay],
        event: &Event,
        sub: &SubscriptionId,
        notifications: &mut tokio::sync::broadcast::Receiver<RelayPoolNotification>,
        deadline: Instant,
    ) -> Result<Event, Transport> {
        // Relays that may have passed the request on (sent, not refused).
        let mut open: HashSet<RelayUrl> = HashSet::new();
        let mut refusals = Vec::new();
        for relay in relays {
            match relay.send_msg(ClientMessage::event(event.clone())) {
                Ok(()) => {
                    open.insert(relay.url().clone());
                }
                Err(e) => refusals.push(format!("{}: {e}", relay_name(relay.url()))),
            }
        }
        let wait = async {
            loop {
                if open.is_empty() {
                    return Err(Transport::NotSent(format!(
                        "the NWC relay did not take the request: {}",
                        refusals.join("; ")
                    )));
                }
                match notifications.recv().await {
                    Ok(RelayPoolNotification::Event {
                        subscription_id,
                        event: answer,
                        ..
                    }) if subscription_id == *sub => {
                        if is_answer_to(&answer, self.service, event.id) {
                            return Ok(*answer);
                        }
                    }
                    Ok(RelayPoolNotification::Message {
                        relay_url,
                        message:
                            RelayMessage::Ok {
                                event_id,
                                status: false,
                                message,
                            },
                    }) if event_id == event.id => {
                        if open.remove(&relay_url) {
                            refusals.push(format!("{}: {message}", relay_name(&relay_url)));
                        }
                    }
                    Ok(RelayPoolNotification::Shutdown) | Err(RecvError::Closed) => {
                        return Err(Transport::Unknown(
                            "no answer from the NWC wallet service: the relay connection was shut down"
                                .into(),
                        ));
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                }
            }
        };
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Transport::Unknown(format!(
                "no answer from the NWC wallet service within {} s",
                self.timeout.as_secs()
            ))),
        }
    }
}

/// A relay for messages and logs: scheme, host and port only.
fn relay_name(relay: &RelayUrl) -> String {
    match url::Url::parse(relay.as_str()) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            (Some(h), None) => format!("{}://{h}", u.scheme()),
            _ => "<relay>".into(),
        },
        Err(_) => "<relay>".into(),
    }
}

fn is_answer_to(answer: &Event, service: PublicKey, request: EventId) -> bool {
    answer.pubkey == service
        && answer.kind == Kind::WalletConnectResponse
        && answer.tags.event_ids().any(|id| *id == request)
}
