//! Nostr Wallet Connect backend (NIP-47): pay_invoice, make_invoice, get_balance,
//! lookup_invoice and get_info, over the relays named in a `nostr+walletconnect://` URI.
//!
//! The transport is the `nwc` crate's Nostr stack (its re-exported `nostr` and relay pool), driven
//! here step by step rather than through `nwc::NWC`, because the pay path must know whether a
//! request left this process:
//! - before the request event is accepted by a relay (no relay reachable, the relay refuses the
//!   event), nothing can have been paid: [`WalletError::Unavailable`];
//! - once it may have reached the wallet service, a missing or unreadable answer is
//!   [`WalletError::OutcomeUnknown`], and the payment stays pending until `lookup_invoice` tells.
//!
//! Answers are parsed leniently (also by hand rather than with `nwc`'s types): a `pay_invoice`
//! result without a preimage, error codes and methods newer than the crate, and empty strings
//! for absent fields all occur in real wallet services.
//!
//! Error codes of a `pay_invoice` answer: the ones NIP-47 defines as refusals made before any
//! payment is attempted (`RATE_LIMITED`, `NOT_IMPLEMENTED`, `INSUFFICIENT_BALANCE`,
//! `QUOTA_EXCEEDED`, `RESTRICTED`, `UNAUTHORIZED`, `UNSUPPORTED_ENCRYPTION`) are definite:
//! [`WalletError::Rejected`]. `PAYMENT_FAILED` is not, because NIP-47 says it "may be due to a
//! timeout"; it, `INTERNAL`, `OTHER` and unknown codes are followed by one `lookup_invoice`: a
//! payment the wallet service reports as failed is `Rejected`, a settled one is a success, and
//! anything else is `OutcomeUnknown`.
//!
//! Requests are NIP-04 encrypted (what `nwc` 0.44 speaks; NIP-47 services accept it when no
//! `encryption` tag is sent) and carry a NIP-40 `expiration` tag, so a service that receives one
//! late does not act on it. NIP-47 has no fee limit for `pay_invoice`: the wallet service's own
//! fee policy applies.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use nwc::nostr::nips::nip04;
use nwc::nostr::nips::nip47::{
    LookupInvoiceRequest, MakeInvoiceRequest, NostrWalletConnectURI, PayInvoiceRequest, Request,
};
use nwc::nostr::{
    ClientMessage, Event, EventBuilder, EventId, Filter, JsonUtil, Keys, Kind, PublicKey,
    RelayMessage, RelayUrl, SubscriptionId, Tag, Timestamp,
};
use nwc::prelude::{Relay, RelayOptions, RelayPool, RelayPoolNotification, SubscribeOptions};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

use super::toolkit::json::{hash32, preimage};
use super::toolkit::node::{self, check_created};
use super::toolkit::redact::clip;
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{DecodedInvoice, Network};

/// Seconds per request when `timeout_secs` is not set.
pub use super::toolkit::node::DEFAULT_TIMEOUT_SECS;
/// Longest time per request: a request's `expiration` tag is this far ahead at most.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest wait for a first relay connection (within the request's timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Added to a request's `expiration` tag beyond our own timeout, for clock skew.
const EXPIRATION_SLACK_SECS: u64 = 60;

/// `[backend] kind = "nwc"` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NwcConfig {
    /// Connection URI, nostr+walletconnect://... Secret (holds the client key).
    pub uri: String,
    /// Network of the node when the wallet service does not say (get_info); default mainnet.
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds per request; default 30.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Set to false for a wallet service known not to return preimages; default true (until a
    /// payment comes back without one).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub returns_preimages: Option<bool>,
}

impl std::fmt::Debug for NwcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NwcConfig")
            .field("uri", &"<secret>")
            .field("network", &self.network)
            .field("timeout_secs", &self.timeout_secs)
            .field("returns_preimages", &self.returns_preimages)
            .finish()
    }
}

/// `true`/`false`, also as a string (environment variables arrive as strings).
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::Bool(b)) => Ok(Some(b)),
        Some(B::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!(
                "returns_preimages: {other:?} is not true or false"
            ))),
        },
    }
}

/// What get_info told us (asked once).
#[derive(Debug, Clone, Default)]
struct ServiceInfo {
    network: Option<Network>,
    node_id: Option<String>,
}

/// The Nostr Wallet Connect backend.
pub struct NwcWallet {
    /// The wallet service's public key (the URI's host part).
    service: PublicKey,
    /// This connection's client key (the URI's secret).
    keys: Keys,
    relays: Vec<RelayUrl>,
    pool: RelayPool,
    network: Option<Network>,
    timeout: Duration,
    returns_preimages: Option<bool>,
    /// Set when a payment came back without a preimage.
    saw_no_preimage: AtomicBool,
    service_info: tokio::sync::OnceCell<ServiceInfo>,
}

impl std::fmt::Debug for NwcWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NwcWallet")
            .field("wallet_service", &self.service.to_hex())
            .field("relays", &self.relay_names())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a request got no usable answer.
#[derive(Debug)]
enum Transport {
    /// The request never reached a relay that accepted it: the wallet service cannot have seen it.
    NotSent(String),
    /// It may have reached the wallet service.
    Unknown(String),
}

impl Transport {
    /// For calls that move no money: either way the wallet is unavailable.
    fn unavailable(self) -> WalletError {
        match self {
            Transport::NotSent(m) | Transport::Unknown(m) => WalletError::Unavailable(m),
        }
    }
}

/// A decrypted NIP-47 response.
#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(default)]
    result_type: Option<String>,
    #[serde(default)]
    error: Option<ReplyError>,
    #[serde(default)]
    result: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct ReplyError {
    code: String,
    #[serde(default)]
    message: Option<String>,
}

impl ReplyError {
    fn describe(&self) -> String {
        let message: String = self
            .message
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let message = clip(&message);
        let message = if message.is_empty() {
            "no message"
        } else {
            &message
        };
        format!("{} ({message})", self.code)
    }
}

/// Empty strings count as absent (several wallet services send them).
fn nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}

#[derive(Debug, Deserialize)]
struct PayResult {
    #[serde(default, deserialize_with = "nonempty")]
    preimage: Option<String>,
    #[serde(default)]
    fees_paid: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct MakeResult {
    invoice: String,
    #[serde(default, deserialize_with = "nonempty")]
    payment_hash: Option<String>,
}

/// A lookup_invoice result (a NIP-47 transaction).
#[derive(Debug, Default, Deserialize)]
struct Transaction {
    #[serde(rename = "type", default, deserialize_with = "nonempty")]
    direction: Option<String>,
    #[serde(default, deserialize_with = "nonempty")]
    state: Option<String>,
    #[serde(default, deserialize_with = "nonempty")]
    preimage: Option<String>,
    #[serde(default)]
    amount: Option<u64>,
    #[serde(default)]
    fees_paid: Option<u64>,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    settled_at: Option<u64>,
}

impl Transaction {
    fn state(&self) -> Option<String> {
        self.state.as_deref().map(str::to_ascii_lowercase)
    }

    /// Settled per its state, or (for services that send no state) per `settled_at`/preimage.
    fn is_settled(&self) -> bool {
        match self.state().as_deref() {
            Some(s) => s == "settled",
            None => self.settled_at.is_some_and(|t| t > 0) || self.preimage.is_some(),
        }
    }

    fn is_direction(&self, direction: &str) -> bool {
        self.direction
            .as_deref()
            .is_none_or(|d| d.eq_ignore_ascii_case(direction))
    }
}

#[derive(Debug, Deserialize)]
struct BalanceResult {
    balance: u64,
}

#[derive(Debug, Default, Deserialize)]
struct InfoResult {
    #[serde(default, deserialize_with = "nonempty")]
    network: Option<String>,
    #[serde(default, deserialize_with = "nonempty")]
    pubkey: Option<String>,
    #[serde(default)]
    methods: Option<Vec<String>>,
}

/// Codes NIP-47 defines for refusals made before a payment is attempted.
const DEFINITE_CODES: &[&str] = &[
    "RATE_LIMITED",
    "NOT_IMPLEMENTED",
    "INSUFFICIENT_BALANCE",
    "QUOTA_EXCEEDED",
    "RESTRICTED",
    "UNAUTHORIZED",
    "UNSUPPORTED_ENCRYPTION",
];

/// Whether a pay_invoice error code proves that no payment was attempted.
fn is_definite_refusal(code: &str) -> bool {
    DEFINITE_CODES.iter().any(|c| code.eq_ignore_ascii_case(c))
}

/// What to do about an error code, for people.
fn advice(code: &str) -> &'static str {
    match code.to_ascii_uppercase().as_str() {
        "INSUFFICIENT_BALANCE" => {
            "the NWC wallet has too little balance for this payment and its fee reserve"
        }
        "QUOTA_EXCEEDED" => {
            "this connection's spending budget in the wallet service is used up; raise it in the wallet app"
        }
        "RESTRICTED" => {
            "this connection lacks the permission for this method; grant it in the wallet app (see the README section on NWC)"
        }
        "UNAUTHORIZED" => {
            "the wallet service does not know this connection (revoked, or a wrong URI); create a new connection"
        }
        "NOT_IMPLEMENTED" => "the wallet service does not support this method",
        "RATE_LIMITED" => "the wallet service is rate limiting this connection; try again shortly",
        "UNSUPPORTED_ENCRYPTION" => {
            "the wallet service does not accept NIP-04 encrypted requests, which this client sends"
        }
        "NOT_FOUND" => "the wallet service has no such invoice or payment",
        "PAYMENT_FAILED" => "the wallet service reports that the payment failed",
        _ => "the wallet service reported an error",
    }
}

fn now_secs() -> u64 {
    Timestamp::now().as_secs()
}

fn parse_result<T: serde::de::DeserializeOwned>(
    method: &str,
    result: Option<Value>,
) -> Result<T, String> {
    let value = result.ok_or_else(|| format!("the wallet service sent no result for {method}"))?;
    serde_json::from_value(value)
        .map_err(|e| format!("the wallet service's {method} result is not readable: {e}"))
}

impl NwcWallet {
    /// Parse the connection URI and prepare the relay pool; nothing is contacted until the first
    /// call, so a wallet service that is down does not stop a start.
    pub async fn new(config: &NwcConfig) -> Result<NwcWallet, WalletError> {
        let uri = NostrWalletConnectURI::parse(config.uri.trim()).map_err(|_| {
            WalletError::Other(
                "the NWC connection URI is not valid: expected nostr+walletconnect://<wallet service pubkey>?relay=<wss://...>&secret=<64 hex> (copy it again from the wallet app)".into(),
            )
        })?;
        let timeout = node::timeout(config.timeout_secs).min(MAX_TIMEOUT);
        let pool = RelayPool::default();
        for relay in &uri.relays {
            pool.add_relay(relay.clone(), RelayOptions::default())
                .await
                .map_err(|e| WalletError::Other(format!("NWC relay {}: {e}", relay_name(relay))))?;
        }
        Ok(NwcWallet {
            service: uri.public_key,
            keys: Keys::new(uri.secret.clone()),
            relays: uri.relays.clone(),
            pool,
            network: config.network,
            timeout,
            returns_preimages: config.returns_preimages,
            saw_no_preimage: AtomicBool::new(false),
            service_info: tokio::sync::OnceCell::new(),
        })
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
    async fn call(&self, request: Request) -> Result<Reply, Transport> {
        let method = request.method.as_str().to_owned();
        let deadline = Instant::now() + self.timeout;
        let relays = self.connected_relays(deadline).await?;

        let expiration = now_secs() + self.timeout.as_secs() + EXPIRATION_SLACK_SECS;
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

    /// The wallet service's get_info, asked once; `Ok(default)` when it does not support it.
    async fn service_info(&self) -> Result<ServiceInfo, WalletError> {
        self.service_info
            .get_or_try_init(|| async {
                let reply = self
                    .call(Request::get_info())
                    .await
                    .map_err(Transport::unavailable)?;
                if let Some(e) = reply.error {
                    info!(error = %e.describe(), "the NWC wallet service does not answer get_info; using the configured network");
                    return Ok(ServiceInfo::default());
                }
                let result: InfoResult = parse_result("get_info", reply.result)
                    .inspect_err(|e| warn!(error = %e, "ignoring the get_info result"))
                    .unwrap_or_default();
                if let Some(methods) = &result.methods
                    && !methods.iter().any(|m| m == "pay_invoice")
                {
                    warn!("this NWC connection does not list pay_invoice among its permitted methods: payments will be refused");
                }
                let network = result.network.as_deref().and_then(|n| {
                    n.parse::<Network>()
                        .inspect_err(|_| warn!(network = n, "unknown network in get_info; ignoring it"))
                        .ok()
                });
                if let (Some(said), Some(configured)) = (network, self.network)
                    && said != configured
                {
                    warn!(%said, %configured, "the NWC wallet service's network differs from the configured one; using the wallet service's");
                }
                Ok(ServiceInfo {
                    network,
                    node_id: result.pubkey,
                })
            })
            .await
            .cloned()
    }

    async fn lookup(&self, payment_hash: &[u8; 32]) -> Result<Option<Transaction>, WalletError> {
        let reply = self
            .call(Request::lookup_invoice(LookupInvoiceRequest {
                payment_hash: Some(hex::encode(payment_hash)),
                invoice: None,
            }))
            .await
            .map_err(Transport::unavailable)?;
        if let Some(e) = reply.error {
            if e.code.eq_ignore_ascii_case("NOT_FOUND") {
                return Ok(None);
            }
            return Err(WalletError::Other(format!(
                "lookup_invoice: {}: {}",
                e.describe(),
                advice(&e.code)
            )));
        }
        parse_result("lookup_invoice", reply.result)
            .map(Some)
            .map_err(WalletError::Other)
    }

    /// After a pay_invoice error that does not prove anything: ask once what happened.
    async fn settle_doubt(
        &self,
        invoice: &DecodedInvoice,
        error: &ReplyError,
    ) -> Result<PaymentResult, WalletError> {
        let said = format!("{}: {}", error.describe(), advice(&error.code));
        match self.lookup_outgoing(&invoice.payment_hash).await {
            Ok(OutgoingStatus::Failed(_)) => Err(WalletError::Rejected(said)),
            Ok(OutgoingStatus::Succeeded(result)) => {
                warn!(error = %said, "the wallet service reported an error, but its lookup shows the payment succeeded");
                self.note_preimage(&result);
                Ok(result)
            }
            Ok(other) => Err(WalletError::OutcomeUnknown(format!(
                "{said}; its lookup_invoice says {}, so the payment may still go through",
                describe_outgoing(&other)
            ))),
            Err(e) => Err(WalletError::OutcomeUnknown(format!(
                "{said}; the follow-up lookup failed ({e}), so the payment may still go through"
            ))),
        }
    }

    fn note_preimage(&self, result: &PaymentResult) {
        if result.preimage.is_none() {
            self.saw_no_preimage.store(true, Ordering::Relaxed);
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

fn describe_outgoing(status: &OutgoingStatus) -> &'static str {
    match status {
        OutgoingStatus::InFlight => "in flight",
        OutgoingStatus::Succeeded(_) => "succeeded",
        OutgoingStatus::Failed(_) => "failed",
        OutgoingStatus::NotFound => "no such payment",
    }
}

fn payment_result(preimage_hex: Option<&str>, fee_msat: Option<u64>) -> PaymentResult {
    let parsed = preimage_hex.and_then(|p| {
        let bytes = preimage(p);
        if bytes.is_none() {
            warn!("the NWC wallet service returned a preimage that is not 32 bytes of hex");
        }
        bytes
    });
    PaymentResult {
        preimage: parsed,
        fee_msat: fee_msat.unwrap_or(0),
    }
}

/// A lookup_invoice transaction, as a payment we made.
fn outgoing_status(tx: &Transaction) -> OutgoingStatus {
    if !tx.is_direction("outgoing") {
        return OutgoingStatus::NotFound;
    }
    if tx.is_settled() {
        return OutgoingStatus::Succeeded(payment_result(tx.preimage.as_deref(), tx.fees_paid));
    }
    match tx.state().as_deref() {
        Some("failed") => {
            OutgoingStatus::Failed("the NWC wallet service reports the payment failed".into())
        }
        // Pending, no state, or "expired" (an invoice state; an HTLC may still be out): money may
        // still move, so it stays in flight until the wallet service says settled or failed.
        _ => OutgoingStatus::InFlight,
    }
}

/// A lookup_invoice transaction, as an invoice we issued.
fn incoming_status(tx: &Transaction, now: u64) -> IncomingStatus {
    if !tx.is_direction("incoming") {
        return IncomingStatus::NotFound;
    }
    if tx.is_settled() {
        return IncomingStatus::Settled {
            amount_msat: tx.amount.unwrap_or(0),
        };
    }
    match tx.state().as_deref() {
        Some("expired" | "failed") => IncomingStatus::Expired,
        Some("pending") => IncomingStatus::Pending,
        _ if tx.expires_at.is_some_and(|e| e > 0 && e <= now) => IncomingStatus::Expired,
        _ => IncomingStatus::Pending,
    }
}

#[async_trait]
impl Wallet for NwcWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        let service = self.service_info().await?;
        Ok(WalletInfo {
            backend: "nwc",
            network: service.network.or(self.network).unwrap_or(Network::Mainnet),
            node_id: service.node_id,
            returns_preimages: self.returns_preimages.unwrap_or(true)
                && !self.saw_no_preimage.load(Ordering::Relaxed),
            demo_funds: false,
        })
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        let reply = self
            .call(Request::get_balance())
            .await
            .map_err(Transport::unavailable)?;
        if let Some(e) = reply.error {
            return Err(WalletError::Other(format!(
                "get_balance: {}: {}",
                e.describe(),
                advice(&e.code)
            )));
        }
        let result: BalanceResult =
            parse_result("get_balance", reply.result).map_err(WalletError::Other)?;
        Ok(Balance {
            msat: result.balance,
            demo_funds: false,
        })
    }

    #[instrument(skip_all, fields(amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        if request.amount_msat == 0 {
            return Err(WalletError::Rejected(
                "invoice amount must be positive".into(),
            ));
        }
        let reply = self
            .call(Request::make_invoice(MakeInvoiceRequest {
                amount: request.amount_msat,
                description: Some(request.description.clone()),
                description_hash: None,
                expiry: Some(request.expiry_secs),
            }))
            .await
            .map_err(Transport::unavailable)?;
        if let Some(e) = reply.error {
            return Err(WalletError::Rejected(format!(
                "make_invoice: {}: {}",
                e.describe(),
                advice(&e.code)
            )));
        }
        let result: MakeResult =
            parse_result("make_invoice", reply.result).map_err(WalletError::Other)?;
        let reported_hash = match &result.payment_hash {
            Some(h) => Some(hash32(h).ok_or_else(|| {
                WalletError::Other(
                    "the NWC wallet service's payment_hash is not 32 bytes of hex".into(),
                )
            })?),
            None => None,
        };
        check_created(
            "the NWC wallet service",
            &result.invoice,
            reported_hash,
            request,
        )
    }

    #[instrument(skip_all, fields(payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        // NIP-47 pay_invoice has no fee limit: the wallet service's fee policy applies.
        let reply = match self
            .call(Request::pay_invoice(PayInvoiceRequest::new(
                invoice.bolt11.clone(),
            )))
            .await
        {
            Ok(reply) => reply,
            Err(Transport::NotSent(m)) => return Err(WalletError::Unavailable(m)),
            Err(Transport::Unknown(m)) => return Err(WalletError::OutcomeUnknown(m)),
        };
        if let Some(e) = reply.error {
            if is_definite_refusal(&e.code) {
                return Err(WalletError::Rejected(format!(
                    "{}: {}",
                    e.describe(),
                    advice(&e.code)
                )));
            }
            return self.settle_doubt(invoice, &e).await;
        }
        let result: PayResult = parse_result("pay_invoice", reply.result).map_err(|m| {
            WalletError::OutcomeUnknown(format!("{m}; the payment may have gone through"))
        })?;
        let paid = payment_result(result.preimage.as_deref(), result.fees_paid);
        if paid.preimage.is_none() {
            warn!("the NWC wallet service paid but returned no preimage");
        }
        self.note_preimage(&paid);
        info!(fee_msat = paid.fee_msat, "paid over NWC");
        Ok(paid)
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<IncomingStatus, WalletError> {
        Ok(match self.lookup(payment_hash).await? {
            None => IncomingStatus::NotFound,
            Some(tx) => incoming_status(&tx, now_secs()),
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &[u8; 32],
    ) -> Result<OutgoingStatus, WalletError> {
        Ok(match self.lookup(payment_hash).await? {
            None => OutgoingStatus::NotFound,
            Some(tx) => outgoing_status(&tx),
        })
    }

    fn withholds_preimages(&self) -> bool {
        self.returns_preimages == Some(false) || self.saw_no_preimage.load(Ordering::Relaxed)
    }

    /// A pay_invoice request stays valid at the relay until its `expiration` tag (our timeout
    /// plus clock-skew slack): a wallet service that comes back online before then may still
    /// pay it. Add as much again for a wallet service whose clock runs behind.
    fn late_start_window_secs(&self) -> u64 {
        self.timeout.as_secs() + 2 * EXPIRATION_SLACK_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(json: &str) -> Transaction {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn definite_codes_are_the_refusals_before_paying() {
        for code in [
            "INSUFFICIENT_BALANCE",
            "QUOTA_EXCEEDED",
            "RESTRICTED",
            "UNAUTHORIZED",
            "NOT_IMPLEMENTED",
            "RATE_LIMITED",
            "UNSUPPORTED_ENCRYPTION",
        ] {
            assert!(is_definite_refusal(code), "{code}");
        }
        for code in [
            "PAYMENT_FAILED",
            "INTERNAL",
            "OTHER",
            "NOT_FOUND",
            "NEW_CODE",
        ] {
            assert!(!is_definite_refusal(code), "{code}");
        }
    }

    #[test]
    fn lookups_map_states() {
        let p = "11".repeat(32);
        let settled = tx(&format!(
            r#"{{"type":"outgoing","state":"settled","preimage":"{p}","payment_hash":"","amount":5000,"fees_paid":7,"created_at":1,"settled_at":2}}"#
        ));
        assert_eq!(
            outgoing_status(&settled),
            OutgoingStatus::Succeeded(PaymentResult {
                preimage: Some([0x11; 32]),
                fee_msat: 7
            })
        );
        assert_eq!(
            incoming_status(&settled, 10),
            IncomingStatus::NotFound,
            "an outgoing record is not our invoice"
        );
        let no_state = tx(r#"{"amount":5000,"settled_at":2,"preimage":""}"#);
        assert!(matches!(
            outgoing_status(&no_state),
            OutgoingStatus::Succeeded(PaymentResult { preimage: None, .. })
        ));
        assert_eq!(
            incoming_status(&no_state, 10),
            IncomingStatus::Settled { amount_msat: 5000 }
        );
        let failed = tx(r#"{"type":"outgoing","state":"failed","amount":1}"#);
        assert!(matches!(
            outgoing_status(&failed),
            OutgoingStatus::Failed(_)
        ));
        let pending = tx(r#"{"state":"pending","amount":1,"expires_at":5}"#);
        assert_eq!(outgoing_status(&pending), OutgoingStatus::InFlight);
        assert_eq!(incoming_status(&pending, 10), IncomingStatus::Pending);
        let old = tx(r#"{"amount":1,"expires_at":5,"settled_at":null}"#);
        assert_eq!(incoming_status(&old, 10), IncomingStatus::Expired);
        assert_eq!(incoming_status(&old, 4), IncomingStatus::Pending);
        let expired = tx(r#"{"type":"outgoing","state":"expired","amount":1}"#);
        assert_eq!(outgoing_status(&expired), OutgoingStatus::InFlight);
    }

    #[test]
    fn config_hides_the_uri_and_reads_env_style_booleans() {
        let c: NwcConfig = toml::from_str(
            "uri = \"nostr+walletconnect://abc?secret=deadbeef\"\nreturns_preimages = \"false\"\ntimeout_secs = 5",
        )
        .expect("config");
        assert_eq!(c.returns_preimages, Some(false));
        assert!(!format!("{c:?}").contains("deadbeef"));
        assert!(toml::from_str::<NwcConfig>("uri = \"x\"\nreturns_preimages = \"maybe\"").is_err());
    }
}
