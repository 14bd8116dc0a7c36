//! A NIP-47 wallet service run by the tests themselves (no NWC wallet service is packaged in any
//! registry), on an in-process relay: nostr-relay-builder's `LocalRelay` on loopback.
//!
//! The service speaks real NIP-47 over that relay (NIP-04 encrypted kind 23194 requests, kind
//! 23195 answers tagged with the request) and hands each request to a [`Backend`]: the fake
//! wallet ([`super::fake_ln::FakeLn`]), or LNbits over its REST API
//! ([`super::lnbits_ln::LnbitsBackend`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nostr_relay_builder::builder::{PolicyResult, RateLimit, WritePolicy};
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use nwc::nostr::nips::nip04;
use nwc::nostr::nips::nip47::NostrWalletConnectURI;
use nwc::nostr::util::BoxedFuture;
use nwc::nostr::{
    Event, EventBuilder, Filter, Keys, Kind, PublicKey, RelayMessage, Tag, Timestamp,
};
use nwc::prelude::{RelayOptions, RelayPool, RelayPoolNotification, SubscribeOptions};
use serde_json::{Value, json};

/// What a backend makes of one request: a result, an error `(code, message)`, no answer, or
/// an answer whose content is not a NIP-47 response.
pub enum Answer {
    Result(Value),
    Error(&'static str, String),
    Silence,
    Garbage,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn handle(&self, client: &PublicKey, method: &str, params: &Value) -> Answer;
}

/// A request the service received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub expiration: Option<u64>,
    pub params: Value,
}

/// A relay on loopback: generous rate limits, optionally refusing NWC requests.
pub async fn start_relay(refuse_requests: bool) -> LocalRelay {
    let mut builder = RelayBuilder::default().rate_limit(RateLimit {
        max_reqs: 1000,
        notes_per_minute: 100_000,
    });
    if refuse_requests {
        builder = builder.write_policy(RefuseRequests);
    }
    let relay = LocalRelay::new(builder);
    relay.run().await.expect("relay runs");
    relay
}

/// A relay write policy that turns NWC requests away (`OK false`).
#[derive(Debug)]
struct RefuseRequests;

impl WritePolicy for RefuseRequests {
    fn admit_event<'a>(
        &'a self,
        event: &'a Event,
        _addr: &'a std::net::SocketAddr,
    ) -> BoxedFuture<'a, PolicyResult> {
        Box::pin(async move {
            if event.kind == Kind::WalletConnectRequest {
                PolicyResult::Reject("no wallet requests here".into())
            } else {
                PolicyResult::Accept
            }
        })
    }
}

/// The wallet service: one key, listening on one relay.
pub struct Service {
    pub relay: LocalRelay,
    keys: Keys,
    /// The service's own relay connection (the serving task holds a clone).
    _pool: RelayPool,
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Service {
    /// Start a relay and a wallet service on it.
    pub async fn start(backend: Arc<dyn Backend>) -> Service {
        Self::start_on(start_relay(false).await, backend).await
    }

    /// Start a wallet service on `relay`; returns once it is subscribed.
    pub async fn start_on(relay: LocalRelay, backend: Arc<dyn Backend>) -> Service {
        let keys = Keys::generate();
        let pool = RelayPool::default();
        pool.add_relay(relay.url().await, RelayOptions::default())
            .await
            .expect("add relay");
        pool.connect().await;
        pool.wait_for_connection(Duration::from_secs(5)).await;
        let mut notifications = pool.notifications();
        let filter = Filter::new()
            .kind(Kind::WalletConnectRequest)
            .pubkey(keys.public_key());
        let sub = pool
            .subscribe(filter, SubscribeOptions::default())
            .await
            .expect("subscribe");
        // Serve only once the relay has the subscription (end of stored events).
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Ok(RelayPoolNotification::Message {
                    message: RelayMessage::EndOfStoredEvents(id),
                    ..
                }) = notifications.recv().await
                    && *id == sub.val
                {
                    break;
                }
            }
        })
        .await
        .expect("the service's subscription is live");

        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (keys, pool, seen) = (keys.clone(), pool.clone(), seen.clone());
            tokio::spawn(async move {
                loop {
                    match notifications.recv().await {
                        Ok(RelayPoolNotification::Event { event, .. })
                            if event.kind == Kind::WalletConnectRequest =>
                        {
                            let (keys, pool, seen, backend) =
                                (keys.clone(), pool.clone(), seen.clone(), backend.clone());
                            tokio::spawn(async move {
                                serve(&keys, &pool, &seen, backend.as_ref(), &event).await;
                            });
                        }
                        Ok(RelayPoolNotification::Shutdown)
                        | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        _ => {}
                    }
                }
            })
        };
        Service {
            relay,
            keys,
            _pool: pool,
            task,
            seen,
        }
    }

    /// A connection URI for a client with `client` keys.
    pub async fn uri(&self, client: &Keys) -> String {
        NostrWalletConnectURI::new(
            self.keys.public_key(),
            vec![self.relay.url().await],
            client.secret_key().clone(),
            None,
        )
        .to_string()
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
        self.relay.shutdown();
    }
}

async fn serve(
    keys: &Keys,
    pool: &RelayPool,
    seen: &Mutex<Vec<Seen>>,
    backend: &dyn Backend,
    request: &Event,
) {
    let expiration = request.tags.expiration().map(|t| t.as_secs());
    if expiration.is_some_and(|e| e < Timestamp::now().as_secs()) {
        return; // NIP-47: do not act on an expired request
    }
    let Ok(json) = nip04::decrypt(keys.secret_key(), &request.pubkey, &request.content) else {
        return;
    };
    let Ok(body) = serde_json::from_str::<Value>(&json) else {
        return;
    };
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    if let Ok(mut s) = seen.lock() {
        s.push(Seen {
            method: method.clone(),
            expiration,
            params: body["params"].clone(),
        });
    }
    let reply = match backend
        .handle(&request.pubkey, &method, &body["params"])
        .await
    {
        Answer::Result(result) => json!({"result_type": method, "result": result}).to_string(),
        Answer::Error(code, message) => {
            json!({"result_type": method, "error": {"code": code, "message": message}}).to_string()
        }
        Answer::Silence => return,
        Answer::Garbage => "<html><body>Welcome to nginx!</body></html>".to_owned(),
    };
    let Ok(content) = nip04::encrypt(keys.secret_key(), &request.pubkey, reply) else {
        return;
    };
    let Ok(answer) = EventBuilder::new(Kind::WalletConnectResponse, content)
        .tag(Tag::public_key(request.pubkey))
        .tag(Tag::event(request.id))
        .sign_with_keys(keys)
    else {
        return;
    };
    let _ = pool.send_event(&answer).await;
}
