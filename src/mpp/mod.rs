//! The seller of the `Payment` scheme (MPP, method `lightning`): challenges minted with an
//! invoice and an HMAC id ([`MppSeller::charge_challenge`], [`MppSeller::session_challenge`]),
//! credentials admitted in one call ([`MppSeller::admit`]: verify, record the sale, consume the
//! charge or spend from the session), and sessions' refunds paid exactly once
//! ([`MppSeller::settle_refunds`]). Every entry point (the gateway, `mcp-gateway`, the MCP
//! tools, the CLI) uses this one service, as L402 uses [`crate::mint::Seller`].
//!
//! What instances must agree on (secrets, spent charges, sessions) lives in the storage port
//! ([`crate::storage::MppStore`]), shared through PostgreSQL.

mod admit;
mod keys;
mod refund;

pub use admit::{Access, Verdict};
pub use keys::SECRET_EPOCH_SECS;
pub use refund::RefundReport;

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::info;

use crate::bolt11::Network;
use crate::l402::mpp::lightning::{self, ChargeRequest, SessionRequest};
use crate::l402::mpp::{PaymentChallenge, challenge, time};
use crate::l402::{MSAT_PER_SAT, PaymentHash};
use crate::mint::{SellError, Seller};
use crate::pay::Payer;
use crate::storage::MppStore;
use keys::KeyRing;

/// How long a challenge may be answered (Aperture's 15 minutes).
pub const DEFAULT_CHALLENGE_SECS: u64 = 15 * 60;
/// A session's deposit, in requests (Aperture's `--sessiondepositmultiplier`).
pub const DEFAULT_DEPOSIT_MULTIPLIER: u64 = 20;
/// Seconds without a request after which the seller closes a session and refunds the rest.
pub const DEFAULT_SESSION_IDLE_SECS: u64 = 300;
/// The realm when none is configured.
pub const DEFAULT_REALM: &str = "l402-mcp";

/// Terms of a charge challenge.
#[derive(Debug, Clone, Default)]
pub struct ChargeTerms {
    pub amount_msat: u64,
    /// The invoice's memo (and the request's `description`).
    pub description: Option<String>,
    /// Seconds the challenge may be answered; default [`DEFAULT_CHALLENGE_SECS`].
    pub expiry_secs: Option<u64>,
    /// Bound into the id (`opaque`), echoed by the buyer: e.g. the MCP tool it is for.
    pub opaque: Option<Map<String, Value>>,
}

/// Terms of a session challenge.
#[derive(Debug, Clone, Default)]
pub struct SessionTerms {
    /// What one request costs.
    pub price_msat: u64,
    /// The deposit; default [`DEFAULT_DEPOSIT_MULTIPLIER`] requests.
    pub deposit_msat: Option<u64>,
    /// Default [`DEFAULT_SESSION_IDLE_SECS`].
    pub idle_secs: Option<u64>,
    pub description: Option<String>,
    pub expiry_secs: Option<u64>,
}

/// A challenge to send. Holds no secret.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedPayment {
    #[serde(skip)]
    pub challenge: PaymentChallenge,
    /// The `WWW-Authenticate` value, exactly as Aperture writes it.
    pub www_authenticate: String,
    pub id: String,
    pub intent: String,
    /// The invoice to pay (a charge's, or a session's deposit).
    pub invoice: String,
    pub payment_hash: PaymentHash,
    /// What the invoice asks for.
    pub amount_msat: u64,
    /// When the challenge stops being accepted (unix seconds).
    pub expires_at: u64,
}

/// Sells through the `Payment` scheme with one wallet; cheap to clone.
#[derive(Clone)]
pub struct MppSeller {
    seller: Seller,
    store: Arc<dyn MppStore>,
    keys: KeyRing,
    /// Resolves pending payments (the refunds among them) before refunds are paid.
    payer: Arc<Payer>,
    realm: String,
    network: Arc<tokio::sync::OnceCell<Network>>,
}

impl std::fmt::Debug for MppSeller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MppSeller")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// Whole sats of a price, rounded up: the lightning method prices in sats.
pub fn price_sats(msat: u64) -> u64 {
    msat.div_ceil(MSAT_PER_SAT)
}

impl MppSeller {
    pub fn new(seller: Seller, store: Arc<dyn MppStore>, payer: Arc<Payer>) -> MppSeller {
        MppSeller {
            seller,
            keys: KeyRing::new(store.clone()),
            store,
            payer,
            realm: DEFAULT_REALM.into(),
            network: Arc::default(),
        }
    }

    /// The same seller in protection space `realm` (e.g. the gateway's host). A realm with `|`
    /// (the id's separator) is refused.
    pub fn with_realm(mut self, realm: &str) -> Result<MppSeller, SellError> {
        let realm = realm.trim();
        if realm.is_empty() || realm.contains('|') || realm.chars().any(char::is_control) {
            return Err(SellError::Invalid(format!(
                "realm {realm:?} must be non-empty, without '|' or control characters"
            )));
        }
        self.realm = realm.to_owned();
        Ok(self)
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn seller(&self) -> &Seller {
        &self.seller
    }

    pub fn store(&self) -> &Arc<dyn MppStore> {
        &self.store
    }

    fn now(&self) -> u64 {
        self.seller.now()
    }

    /// The wallet's network (asked once).
    async fn network(&self) -> Result<Network, SellError> {
        self.network
            .get_or_try_init(|| async { Ok(self.seller.wallet().info().await?.network) })
            .await
            .copied()
    }

    async fn issue(
        &self,
        intent: &str,
        request: String,
        expiry_secs: Option<u64>,
        opaque: Option<&Map<String, Value>>,
    ) -> Result<(PaymentChallenge, u64), SellError> {
        let now = self.now();
        let secs = crate::mint::in_range(
            "expiry_secs",
            expiry_secs.unwrap_or(DEFAULT_CHALLENGE_SECS),
            1,
            crate::mint::MAX_INVOICE_EXPIRY_SECS,
            " seconds",
        )?;
        let expires_at = now.saturating_add(secs);
        let challenge = PaymentChallenge {
            realm: self.realm.clone(),
            method: lightning::METHOD.into(),
            intent: intent.into(),
            request,
            expires: Some(time::format(expires_at)),
            opaque: opaque.map(challenge::encode_opaque),
            ..PaymentChallenge::default()
        };
        Ok((self.keys.seal(challenge, now).await?, expires_at))
    }

    /// A charge challenge: a fresh invoice for `amount_msat` (rounded up to whole sats) that
    /// pays for one request.
    pub async fn charge_challenge(&self, terms: &ChargeTerms) -> Result<IssuedPayment, SellError> {
        let sats = price_sats(terms.amount_msat);
        let description = terms.description.clone().unwrap_or_default();
        let expiry = terms.expiry_secs.unwrap_or(DEFAULT_CHALLENGE_SECS);
        let (created, _) = self
            .seller
            .create_invoice(sats * MSAT_PER_SAT, &description, expiry)
            .await?;
        let request = ChargeRequest {
            amount_sats: sats,
            currency: lightning::CURRENCY.into(),
            description: terms.description.clone(),
            recipient: None,
            external_id: None,
            invoice: created.bolt11.clone(),
            payment_hash: Some(created.payment_hash),
            network: Some(self.network().await?.as_str().into()),
        };
        let (challenge, expires_at) = self
            .issue(
                lightning::CHARGE,
                request.encode(),
                terms.expiry_secs,
                terms.opaque.as_ref(),
            )
            .await?;
        info!(payment_hash = %created.payment_hash, amount_sats = sats, "Payment charge challenge");
        Ok(IssuedPayment {
            www_authenticate: challenge.header_value(),
            id: challenge.id.clone(),
            intent: lightning::CHARGE.into(),
            challenge,
            invoice: created.bolt11,
            payment_hash: created.payment_hash,
            amount_msat: sats * MSAT_PER_SAT,
            expires_at,
        })
    }

    /// A session challenge: a deposit invoice (by default [`DEFAULT_DEPOSIT_MULTIPLIER`]
    /// requests' worth); the request says the price of one request and the idle timeout.
    pub async fn session_challenge(
        &self,
        terms: &SessionTerms,
    ) -> Result<IssuedPayment, SellError> {
        let price = price_sats(terms.price_msat).max(1);
        let deposit = terms
            .deposit_msat
            .map_or(price * DEFAULT_DEPOSIT_MULTIPLIER, price_sats)
            .max(price);
        let idle = terms.idle_secs.unwrap_or(DEFAULT_SESSION_IDLE_SECS);
        let description = terms
            .description
            .clone()
            .unwrap_or_else(|| "Session deposit".into());
        let expiry = terms.expiry_secs.unwrap_or(DEFAULT_CHALLENGE_SECS);
        let (created, _) = self
            .seller
            .create_invoice(deposit * MSAT_PER_SAT, &description, expiry)
            .await?;
        let request = SessionRequest {
            amount_sats: price,
            currency: lightning::CURRENCY.into(),
            description: terms.description.clone(),
            unit_type: None,
            deposit_invoice: created.bolt11.clone(),
            payment_hash: created.payment_hash,
            deposit_sats: Some(deposit),
            idle_timeout_secs: Some(idle),
        };
        let (challenge, expires_at) = self
            .issue(
                lightning::SESSION,
                request.encode(),
                terms.expiry_secs,
                None,
            )
            .await?;
        Ok(IssuedPayment {
            www_authenticate: challenge.header_value(),
            id: challenge.id.clone(),
            intent: lightning::SESSION.into(),
            challenge,
            invoice: created.bolt11,
            payment_hash: created.payment_hash,
            amount_msat: deposit * MSAT_PER_SAT,
            expires_at,
        })
    }
}
