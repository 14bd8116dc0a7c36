//! The seller: create invoices and L402 challenges, and admit requests that present credentials,
//! with an embedded verifier (no hosted service). Every entry point (MCP tools, CLI, gateway)
//! uses this one service and admits a request through one call, [`Seller::admit`]: verify,
//! record the sale, count a use.
//!
//! Minting follows Aperture: a random 32-byte root key per token, stored by `sha256(identifier)`;
//! caveats `services=<name>:<tier>`, `<name>_capabilities=...` and, when a lifetime is given,
//! `<name>_valid_until=<unix seconds>`; and, when the seller binds the token to requests, our
//! `<name>_methods=GET,...` and `<name>_path_prefix=/p` (see [`crate::l402::caveat`]).
//!
//! Kept in one file (~860 lines): minting and admission are the two halves of one token format,
//! the caveats one writes and the other checks; a caveat is added by reading them side by side.
//! Apart: the memo of credentials verified lately (`mint/memo.rs`), which a credential presented
//! again goes through instead of its cryptography.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rand::RngCore;
use serde::Serialize;
use tracing::{Instrument, info, info_span};

use crate::bolt11::{self, DecodedInvoice};
use crate::clock::SharedClock;
use crate::l402::caveat::{self, Caveat, Service};
use crate::l402::macaroon::L402_LOCATION;
use crate::l402::verify::{self, CaveatOutcome, Rejection, VerifyParams};
use crate::l402::{Credential, Identifier, Macaroon, challenge};
use crate::l402::{Msat, PaymentHash, Preimage, RootKey, TokenId};
use crate::storage::{
    Direction, Income, MintedToken, NewChallenge, NewMintedToken, SellerStore, SpendLedger,
    StorageError,
};
use crate::wallet::embedded::{EmbeddedWallet, SignedInvoice};
use crate::wallet::{CreatedInvoice, IncomingStatus, InvoiceRequest, Wallet, WalletError};

mod memo;
#[cfg(test)]
mod tests;
use memo::{Memo, Remembered};

/// The service name used when a seller does not name one.
pub(crate) const DEFAULT_SERVICE: &str = "api";
/// Invoice lifetime when a seller does not give one.
pub const DEFAULT_INVOICE_EXPIRY_SECS: u64 = 3600;
/// The longest invoice lifetime: a year.
pub(crate) const MAX_INVOICE_EXPIRY_SECS: u64 = 365 * 24 * 3600;
/// The longest token lifetime (`valid_for_secs`): ten years. A token that never expires is
/// minted without one.
pub(crate) const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// The most requests one N-use token may be sold for.
pub(crate) const MAX_TOKEN_USES: u64 = 1_000_000_000;

/// `value` if it is from `min` to `max`, else a refusal that names the range.
pub(crate) fn in_range(
    name: &str,
    value: u64,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<u64, SellError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(SellError::Invalid(format!(
            "{name} must be from {min} to {max}{unit}, not {value}"
        )))
    }
}

/// Check a token's terms: its lifetime and its number of uses, when limited.
pub(crate) fn check_token_terms(
    valid_for_secs: Option<u64>,
    max_uses: Option<u64>,
) -> Result<(), SellError> {
    if let Some(s) = valid_for_secs {
        in_range(
            "valid_for_secs",
            s,
            1,
            MAX_TOKEN_LIFETIME_SECS,
            " seconds (ten years; leave it out for a token that does not expire)",
        )?;
    }
    if let Some(n) = max_uses {
        in_range(
            "max_uses",
            n,
            1,
            MAX_TOKEN_USES,
            " (leave it out for unlimited uses)",
        )?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum SellError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the wallet made an invoice that does not decode: {0}")]
    BadInvoice(#[from] bolt11::InvoiceError),
}

/// Terms of an L402 challenge.
#[derive(Debug, Clone, Default)]
pub struct ChallengeRequest {
    pub amount_msat: u64,
    pub description: Option<String>,
    /// Invoice lifetime; default [`DEFAULT_INVOICE_EXPIRY_SECS`].
    pub expiry_secs: Option<u64>,
    /// Service name; default "api".
    pub service: Option<String>,
    pub tier: Option<u8>,
    pub capabilities: Vec<String>,
    /// Token lifetime after minting; none means the token does not expire (as in Aperture).
    pub valid_for_secs: Option<u64>,
    /// Uses allowed (N-use tokens, counted by whoever serves the requests); none = unlimited.
    pub max_uses: Option<u64>,
    /// HTTP methods the token may be used with (`<service>_methods`); empty = any.
    pub methods: Vec<String>,
    /// Path prefix the token may be used under (`<service>_path_prefix`); none = any.
    pub path_prefix: Option<String>,
}

/// What a credential is checked for: a service, a capability within it, and the request it is
/// presented with (for tokens bound to methods or a path prefix). See [`VerifyParams`] for what
/// `None` means: no service is any service the token is for; a token bound to methods or a path
/// is refused without the method or path (`binding_unchecked`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Access<'a> {
    pub service: Option<&'a str>,
    pub capability: Option<&'a str>,
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    /// What this request costs (msat), for requests priced one by one: a token that paid less
    /// (or whose price is not known here) is refused, `underpaid`, before a use is counted.
    pub price_msat: Option<u64>,
}

/// A challenge to send to a buyer. Holds no secret: not the root key, not the preimage.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedChallenge {
    /// Standard base64 of the V2 macaroon.
    pub macaroon: String,
    pub invoice: String,
    pub payment_hash: PaymentHash,
    pub token_id: TokenId,
    pub amount_msat: u64,
    /// The `WWW-Authenticate` values to send, legacy `LSAT` first, exactly as Aperture does.
    pub www_authenticate: [String; 2],
    /// When the invoice stops being payable (unix seconds).
    pub invoice_expires_at: u64,
    /// When the token stops being accepted (unix seconds), if ever.
    pub valid_until: Option<u64>,
    pub service: String,
    pub tier: u8,
    pub capabilities: Vec<String>,
}

/// The verdict on a credential presented with a request: valid (serve it), `used_up`, or
/// another refusal with its reason. An invalid credential is a normal answer, not an error.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub valid: bool,
    /// Machine-readable reason when invalid (`Rejection::code`).
    pub reason_code: Option<&'static str>,
    /// Human-readable reason when invalid.
    pub reason: Option<String>,
    pub payment_hash: Option<String>,
    pub token_id: Option<String>,
    /// What the buyer paid, when this data dir issued the token.
    pub amount_paid_msat: Option<u64>,
    pub caveats: Vec<String>,
    pub valid_until: Option<u64>,
    /// Uses the token was sold for (N-use tokens), when this data dir issued it.
    pub max_uses: Option<u64>,
    /// The service of a valid token this verdict is for: the one asked for, else the first its
    /// services caveat names (none when it has no services caveat).
    pub service: Option<String>,
    /// The tier that service was minted with (its first services caveat's; a later caveat that
    /// changes it is refused).
    pub tier: Option<u8>,
}

impl Verification {
    fn rejected(r: &Rejection, id: Option<&Identifier>, caveats: Vec<String>) -> Verification {
        Verification {
            valid: false,
            reason_code: Some(r.code()),
            reason: Some(r.to_string()),
            payment_hash: id.map(|i| i.payment_hash.to_hex()),
            token_id: id.map(|i| i.token_id.to_hex()),
            amount_paid_msat: None,
            caveats,
            valid_until: None,
            max_uses: None,
            service: None,
            tier: None,
        }
    }

    /// This verdict turned into a refusal (the token's details are kept).
    fn refused(mut self, code: &'static str, reason: String) -> Verification {
        self.valid = false;
        self.reason_code = Some(code);
        self.reason = Some(reason);
        self
    }
}

/// How much of a valid verdict [`Seller::admit_with`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// Everything [`Verification`] has.
    Full,
    /// The verdict and the terms it was sold on: no ids, caveats or service name.
    Verdict,
}

/// Sells through one wallet.
#[derive(Debug, Clone)]
pub struct Seller {
    wallet_name: String,
    wallet: Arc<dyn Wallet>,
    /// Where income is recorded.
    ledger: Arc<dyn SpendLedger>,
    /// Root keys, token terms, use counters and sales (shared by every instance on the storage).
    tokens: Arc<dyn SellerStore>,
    clock: SharedClock,
    /// Tokens whose sale (and the income it settles) this process has recorded: a token used
    /// for many requests costs those two writes once, not on every request.
    recorded: Arc<Mutex<HashSet<TokenId>>>,
    /// The ledger and the token store are one storage: a challenge's records, and a sale with
    /// its income, are each written in one transaction.
    one_storage: bool,
    /// The embedded wallet issuing the invoices, when its books are that storage too: its
    /// invoice rows join the challenge's transaction.
    embedded: Option<Arc<EmbeddedWallet>>,
    /// Credentials verified lately, checked again without their cryptography (`memo.rs`).
    memo: Memo,
}

/// An invoice issued, not yet recorded.
struct Issued {
    created: CreatedInvoice,
    /// Signed by the embedded wallet on this storage, which has not kept it yet.
    signed: Option<SignedInvoice>,
    /// What the wallet's invoice says, when it was read back (a backend's invoice).
    decoded: Option<DecodedInvoice>,
    amount: Msat,
    description: String,
}

/// Tokens remembered as recorded before the set is cleared (32 bytes each).
const RECORDED_CAPACITY: usize = 100_000;

impl Seller {
    pub fn new(
        wallet_name: &str,
        wallet: Arc<dyn Wallet>,
        ledger: Arc<dyn SpendLedger>,
        tokens: Arc<dyn SellerStore>,
        clock: SharedClock,
    ) -> Seller {
        Seller {
            wallet_name: wallet_name.to_owned(),
            wallet,
            one_storage: std::ptr::addr_eq(Arc::as_ptr(&ledger), Arc::as_ptr(&tokens)),
            tokens,
            ledger,
            clock,
            recorded: Arc::default(),
            embedded: None,
            memo: Memo::default(),
        }
    }

    /// Sell through `wallet`, the embedded wallet this seller's wallet is, so that its invoice
    /// rows are written with the challenge's records in one transaction. Ignored unless its
    /// books are the storage of this seller's ledger and token store.
    pub fn with_embedded(mut self, wallet: Arc<EmbeddedWallet>) -> Seller {
        let same = std::ptr::addr_eq(Arc::as_ptr(wallet.books()), Arc::as_ptr(&self.tokens));
        if self.one_storage && same {
            self.embedded = Some(wallet);
        }
        self
    }

    /// The current time of this seller's clock (unix seconds).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The store of root keys, token terms, use counters and sales.
    pub fn tokens(&self) -> &Arc<dyn SellerStore> {
        &self.tokens
    }

    /// The name income is recorded under.
    pub fn wallet_name(&self) -> &str {
        &self.wallet_name
    }

    /// The wallet that issues invoices (and pays refunds of `Payment` sessions).
    pub fn wallet(&self) -> &Arc<dyn Wallet> {
        &self.wallet
    }

    /// The ledger income is recorded in.
    pub fn ledger(&self) -> &Arc<dyn SpendLedger> {
        &self.ledger
    }

    /// Create an invoice and record it in the ledger as pending income.
    pub async fn create_invoice(
        &self,
        amount_msat: u64,
        description: &str,
        expiry_secs: u64,
    ) -> Result<(CreatedInvoice, DecodedInvoice), SellError> {
        let span = info_span!("create_invoice", wallet = %self.wallet_name, amount_msat);
        async {
            let issued = self.issue(amount_msat, description, expiry_secs).await?;
            let decoded = match &issued.decoded {
                Some(d) => d.clone(),
                None => bolt11::decode(&issued.created.bolt11)?,
            };
            self.keep(&issued, None).await?;
            info!(payment_hash = %issued.created.payment_hash, "invoice created");
            Ok((issued.created, decoded))
        }
        .instrument(span)
        .await
    }

    /// Have the wallet issue an invoice; nothing is recorded yet ([`Seller::keep`]).
    async fn issue(
        &self,
        amount_msat: u64,
        description: &str,
        expiry_secs: u64,
    ) -> Result<Issued, SellError> {
        let max_msat = crate::budget::MAX_SATS * crate::budget::MSAT_PER_SAT;
        in_range("amount_msat", amount_msat, 1, max_msat, " msat")?;
        in_range(
            "expiry_secs",
            expiry_secs,
            1,
            MAX_INVOICE_EXPIRY_SECS,
            " seconds (a year)",
        )?;
        let amount = Msat::from_msat(amount_msat);
        if let Some(e) = &self.embedded {
            // Signed here: its text is ours, and needs no decoding to be recorded.
            let signed = e.sign(Some(amount_msat), description, expiry_secs)?;
            return Ok(Issued {
                created: signed.created.clone(),
                signed: Some(signed),
                decoded: None,
                amount,
                description: description.to_owned(),
            });
        }
        let created = self
            .wallet
            .create_invoice(&InvoiceRequest {
                amount_msat,
                description: description.to_owned(),
                expiry_secs,
            })
            .await?;
        let decoded = bolt11::decode(&created.bolt11)?;
        Ok(Issued {
            amount: Msat::from_msat(decoded.amount_msat.unwrap_or(0)),
            description: decoded.description.clone().unwrap_or_default(),
            created,
            signed: None,
            decoded: Some(decoded),
        })
    }

    /// Record an invoice issued as pending income, with the token minted for it if any, before
    /// either is shown to anyone: in one transaction when the ledger and the token store are
    /// one storage (and the embedded wallet's row of the invoice with them).
    async fn keep(
        &self,
        issued: &Issued,
        minted: Option<&NewMintedToken<'_>>,
    ) -> Result<(), SellError> {
        let now = self.clock.now();
        let created = &issued.created;
        let row = issued.signed.as_ref().map(|s| s.row(&self.wallet_name));
        if self.one_storage {
            let description = match &issued.decoded {
                Some(d) => d.description.as_deref(),
                None => Some(issued.description.as_str()),
            };
            let challenge = NewChallenge {
                embedded: row.as_ref(),
                income: Income {
                    wallet: &self.wallet_name,
                    payment_hash: &created.payment_hash,
                    bolt11: &created.bolt11,
                    amount: issued.amount,
                    description,
                },
                minted,
            };
            self.tokens.store_challenge(&challenge, now).await?;
            return Ok(());
        }
        let decoded = match &issued.decoded {
            Some(d) => d.clone(),
            None => bolt11::decode(&created.bolt11)?,
        };
        self.ledger
            .record_incoming(&self.wallet_name, &decoded, now)
            .await?;
        if let Some(t) = minted {
            self.tokens.store_minted(t, now).await?;
        }
        Ok(())
    }

    /// Create an invoice and mint the macaroon bound to its payment hash.
    pub async fn create_challenge(
        &self,
        req: &ChallengeRequest,
    ) -> Result<IssuedChallenge, SellError> {
        let service = req
            .service
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVICE.to_owned());
        let tier = req.tier.unwrap_or(0);
        let service_entry =
            Service::new(&service, tier).map_err(|e| SellError::Invalid(e.to_string()))?;
        for c in &req.capabilities {
            caveat::validate_capability(c).map_err(|e| SellError::Invalid(e.to_string()))?;
        }
        for m in &req.methods {
            caveat::validate_method(m).map_err(|e| SellError::Invalid(e.to_string()))?;
        }
        if let Some(p) = &req.path_prefix {
            caveat::validate_path_prefix(p).map_err(|e| SellError::Invalid(e.to_string()))?;
        }
        check_token_terms(req.valid_for_secs, req.max_uses)?;
        let description = req
            .description
            .clone()
            .unwrap_or_else(|| format!("L402 access to {service}"));
        let expiry = req.expiry_secs.unwrap_or(DEFAULT_INVOICE_EXPIRY_SECS);
        let span =
            info_span!("create_invoice", wallet = %self.wallet_name, amount_msat = req.amount_msat);
        let issued = self
            .issue(req.amount_msat, &description, expiry)
            .instrument(span)
            .await?;
        let created = &issued.created;

        let now = self.clock.now();
        let valid_until = req.valid_for_secs.map(|s| now.saturating_add(s));
        let mut token_id = TokenId([0u8; 32]);
        let mut root_key = RootKey([0u8; 32]);
        rand::thread_rng().fill_bytes(&mut token_id.0);
        rand::thread_rng().fill_bytes(&mut root_key.0);
        let identifier = Identifier {
            payment_hash: created.payment_hash,
            token_id,
        }
        .encode();
        let mut mac = Macaroon::new(root_key.expose(), identifier.to_vec(), L402_LOCATION);
        mac.add_caveat(&Caveat::services(std::slice::from_ref(&service_entry)).encode());
        mac.add_caveat(&Caveat::capabilities(&service, &req.capabilities).encode());
        if let Some(t) = valid_until {
            mac.add_caveat(&Caveat::valid_until(&service, t).encode());
        }
        if !req.methods.is_empty() {
            mac.add_caveat(&Caveat::methods(&service, &req.methods).encode());
        }
        if let Some(p) = &req.path_prefix {
            mac.add_caveat(&Caveat::path_prefix(&service, p).encode());
        }
        // The invoice, its income and the token's root key are kept before the challenge is
        // sent: a buyer who pays it can redeem it even if this process dies right after.
        let minted = NewMintedToken {
            key_id: crate::l402::sha256(&identifier),
            root_key: &root_key,
            token_id,
            wallet: &self.wallet_name,
            payment_hash: created.payment_hash,
            amount: Msat::from_msat(req.amount_msat),
            service: &service,
            tier,
            capabilities: &req.capabilities,
            valid_until,
            max_uses: req.max_uses,
        };
        self.keep(&issued, Some(&minted)).await?;
        info!(payment_hash = %created.payment_hash, "invoice created");
        let bytes = mac.serialize();
        info!(token_id = %token_id, service = %service, "L402 token minted");
        Ok(IssuedChallenge {
            macaroon: crate::l402::b64::encode(&bytes),
            www_authenticate: challenge::aperture_headers(&bytes, &created.bolt11),
            invoice: created.bolt11.clone(),
            payment_hash: created.payment_hash,
            token_id,
            amount_msat: req.amount_msat,
            invoice_expires_at: created.expires_at,
            valid_until,
            service,
            tier,
            capabilities: req.capabilities.clone(),
        })
    }

    /// Admit one request presenting `authorization` (an `Authorization` header value): verify
    /// the credential for `access`, record the sale, check the price when the request is priced
    /// on its own, and count one use of an N-use token, in one call. The verdict is valid (serve
    /// the request), `used_up`, or a refusal with its reason. Call it once per request served:
    /// every entry point (`verify_l402_payment`, `l402-mcp verify`, the gateway) does.
    pub async fn admit(
        &self,
        authorization: &str,
        access: Access<'_>,
    ) -> Result<Verification, SellError> {
        self.admit_with(authorization, access, Detail::Full).await
    }

    /// [`Seller::admit`] for a caller that needs only the verdict, once per request (the
    /// gateway): a valid verdict carries `valid`, `amount_paid_msat`, `max_uses`,
    /// `valid_until` and `tier`, without the token's ids, caveats and service, which are not
    /// built (a refusal is as full as `admit`'s). The same checks, the same use counted.
    pub async fn admit_verdict(
        &self,
        authorization: &str,
        access: Access<'_>,
    ) -> Result<Verification, SellError> {
        self.admit_with(authorization, access, Detail::Verdict)
            .await
    }

    async fn admit_with(
        &self,
        authorization: &str,
        access: Access<'_>,
        detail: Detail,
    ) -> Result<Verification, SellError> {
        let params = VerifyParams {
            service: access.service,
            capability: access.capability,
            now_unix: self.clock.now(),
            method: access.method,
            path: access.path,
        };
        let key = Memo::key(authorization);
        let remembered = match key.and_then(|k| Some((k, self.memo.get(&k)?))) {
            Some((k, m)) => self.verify_remembered(&k, &m, &params, detail).await?,
            None => None,
        };
        let (v, token_id) = match remembered {
            Some(found) => found,
            None => match Credential::parse(authorization) {
                Ok(c) => {
                    let remember = key.filter(|_| c.macaroons.len() == 1);
                    self.verify_for(&c.macaroons, &c.preimage, &params, detail, remember)
                        .await?
                }
                Err(e) => {
                    return Ok(Verification::rejected(
                        &Rejection::Malformed(e.to_string()),
                        None,
                        Vec::new(),
                    ));
                }
            },
        };
        if !v.valid {
            return Ok(v);
        }
        if let Some(price) = access.price_msat
            && v.amount_paid_msat.is_none_or(|paid| paid < price)
        {
            let paid = v
                .amount_paid_msat
                .map_or("an amount not known here".to_owned(), |p| {
                    format!("{p} msat")
                });
            return Ok(v.refused(
                "underpaid",
                format!("this request costs {price} msat; the token paid {paid}"),
            ));
        }
        self.count_use(v, token_id).await
    }

    /// [`Seller::admit`] for a service and a capability, with no request to match (a token
    /// bound to a method or path is refused): it counts a use too.
    pub async fn verify_authorization(
        &self,
        authorization: &str,
        service: Option<&str>,
        capability: Option<&str>,
    ) -> Result<Verification, SellError> {
        let access = Access {
            service,
            capability,
            ..Access::default()
        };
        self.admit(authorization, access).await
    }

    /// Verify a credential: one or more macaroons and a preimage. With several macaroons the
    /// first that verifies wins; otherwise the first one's reason is given. Records the sale of
    /// a valid token; counts no use (that is [`Seller::admit`]'s). With a valid verdict, the
    /// token's id. A valid macaroon is remembered under `remember`, when given (`memo.rs`).
    async fn verify_for(
        &self,
        macaroons: &[Vec<u8>],
        preimage: &Preimage,
        params: &VerifyParams<'_>,
        detail: Detail,
        remember: Option<[u8; 32]>,
    ) -> Result<(Verification, Option<TokenId>), SellError> {
        let mut first_rejection: Option<Verification> = None;
        for bytes in macaroons {
            let (v, token_id) = self
                .verify_one(bytes, preimage, params, detail, remember)
                .await?;
            if v.valid {
                return Ok((v, token_id));
            }
            first_rejection.get_or_insert(v);
        }
        let rejection = first_rejection.unwrap_or_else(|| {
            Verification::rejected(
                &Rejection::Malformed("no macaroon".into()),
                None,
                Vec::new(),
            )
        });
        Ok((rejection, None))
    }

    async fn verify_one(
        &self,
        bytes: &[u8],
        preimage: &Preimage,
        params: &VerifyParams<'_>,
        detail: Detail,
        remember: Option<[u8; 32]>,
    ) -> Result<(Verification, Option<TokenId>), SellError> {
        let prepared = match verify::prepare(bytes, preimage) {
            Ok(p) => p,
            Err(r) => {
                let decoded = Macaroon::deserialize(bytes).ok();
                let id = decoded
                    .as_ref()
                    .and_then(|m| Identifier::decode(m.identifier()).ok());
                let caveats = decoded.map(|m| m.caveat_strings()).unwrap_or_default();
                return Ok((Verification::rejected(&r, id.as_ref(), caveats), None));
            }
        };
        // The root key and the token's terms in one read (the gateway asks on every request).
        let (root_key, minted) = self
            .tokens
            .root_key_and_terms(&prepared.key_id, &prepared.identifier.token_id)
            .await?;
        let token = match verify::finish(
            &prepared,
            root_key.as_ref().map(|k| &k.expose()[..]),
            params,
        ) {
            Ok(t) => t,
            Err(r) => {
                let caveats = prepared.macaroon.caveat_strings();
                let v = Verification::rejected(&r, Some(&prepared.identifier), caveats);
                return Ok((v, None));
            }
        };
        if let (Some(key), Some(root_key)) = (remember, root_key) {
            let strings = prepared.macaroon.caveat_strings();
            let m = Remembered::new(
                prepared.key_id,
                token.identifier,
                token.caveats,
                strings,
                root_key,
            );
            self.memo.keep(key, m);
        }
        let caveats = || prepared.macaroon.caveat_strings();
        self.accept(
            &token.identifier,
            (token.services, token.valid_until),
            minted,
            params,
            detail,
            caveats,
        )
        .await
    }

    /// A credential verified in full before (`memo.rs`) presented again. A refusal of this
    /// request is the one the full path gives (the same check of the same caveats, after the
    /// same signature and the same parse); `None` when its root key is gone or is not the one
    /// its signature was checked with, and then it is forgotten and verified in full.
    async fn verify_remembered(
        &self,
        key: &[u8; 32],
        m: &Remembered,
        params: &VerifyParams<'_>,
        detail: Detail,
    ) -> Result<Option<(Verification, Option<TokenId>)>, SellError> {
        let (root_key, minted) = self
            .tokens
            .root_key_and_terms(&m.key_id, &m.identifier.token_id)
            .await?;
        if !root_key.is_some_and(|k| m.signed_with(&k)) {
            self.memo.forget(key);
            return Ok(None);
        }
        let outcome = match verify::authorize(&m.caveats, params) {
            Ok(outcome) => outcome,
            Err(r) => {
                let caveats = m.caveat_strings.clone();
                return Ok(Some((
                    Verification::rejected(&r, Some(&m.identifier), caveats),
                    None,
                )));
            }
        };
        let caveats = || m.caveat_strings.clone();
        self.accept(&m.identifier, outcome, minted, params, detail, caveats)
            .await
            .map(Some)
    }

    /// A credential that passed every check: record its sale (once) and give the verdict.
    async fn accept(
        &self,
        identifier: &Identifier,
        (services, valid_until): CaveatOutcome,
        minted: Option<MintedToken>,
        params: &VerifyParams<'_>,
        detail: Detail,
        caveats: impl FnOnce() -> Vec<String>,
    ) -> Result<(Verification, Option<TokenId>), SellError> {
        // The preimage proves the invoice was paid: record the income if we issued it.
        let already_recorded = self
            .recorded
            .lock()
            .is_ok_and(|set| set.contains(&identifier.token_id));
        let paid_msat = minted.as_ref().map(|m| m.amount.msat());
        let max_uses = minted.as_ref().and_then(|m| m.max_uses);
        if let (Some(m), Some(paid)) = (minted.as_ref().filter(|_| !already_recorded), paid_msat) {
            let (hash, id) = (&identifier.payment_hash, &identifier.token_id);
            let now = self.clock.now();
            let new_sale = if self.one_storage {
                // The sale and the income it settles, in one transaction.
                self.tokens
                    .record_sale_and_income(hash, id, &m.service, m.amount, &m.wallet, now)
                    .await?
            } else {
                let new_sale = self
                    .tokens
                    .record_sale(hash, id, &m.service, m.amount, now)
                    .await?;
                self.ledger
                    .mark_incoming_settled(&m.wallet, hash, Some(m.amount), now)
                    .await?;
                new_sale
            };
            if new_sale {
                info!(token_id = %id, service = %m.service, amount_msat = paid, "sale");
            }
            if let Ok(mut set) = self.recorded.lock() {
                if set.len() >= RECORDED_CAPACITY {
                    set.clear(); // recording again is harmless: both writes are idempotent
                }
                set.insert(identifier.token_id);
            }
        }
        let service = services
            .as_deref()
            .and_then(|services| match params.service {
                Some(wanted) => services.iter().find(|s| s.name == wanted),
                None => services.first(),
            });
        let full = detail == Detail::Full;
        let v = Verification {
            valid: true,
            reason_code: None,
            reason: None,
            payment_hash: full.then(|| identifier.payment_hash.to_hex()),
            token_id: full.then(|| identifier.token_id.to_hex()),
            max_uses,
            amount_paid_msat: paid_msat,
            caveats: if full { caveats() } else { Vec::new() },
            valid_until,
            service: if full {
                service
                    .map(|s| s.name.clone())
                    .or_else(|| params.service.map(str::to_owned))
            } else {
                None
            },
            tier: service.map(|s| s.tier),
        };
        Ok((v, Some(identifier.token_id)))
    }

    /// Count one use of a valid N-use token: a token whose uses are spent comes back invalid
    /// (`used_up`); other verdicts pass through.
    async fn count_use(
        &self,
        v: Verification,
        token_id: Option<TokenId>,
    ) -> Result<Verification, SellError> {
        let (Some(max), true, Some(token_id)) = (v.max_uses, v.valid, token_id) else {
            return Ok(v);
        };
        if self.tokens.use_token(&token_id, max).await?.is_none() {
            return Ok(v.refused(
                "used_up",
                format!("the token paid for {max} request(s), all used"),
            ));
        }
        Ok(v)
    }

    /// Ask the wallet about invoices still pending in the ledger; record those paid or expired.
    pub async fn refresh_incoming(&self) -> Result<u32, SellError> {
        let mut settled = 0;
        for p in self
            .ledger
            .pending(&self.wallet_name, Direction::In)
            .await?
        {
            let hash = p.payment_hash;
            match self.wallet.lookup_incoming(&hash).await? {
                IncomingStatus::Settled { amount_msat } => {
                    if self
                        .ledger
                        .mark_incoming_settled(
                            &self.wallet_name,
                            &hash,
                            Some(Msat::from_msat(amount_msat)),
                            self.clock.now(),
                        )
                        .await?
                    {
                        settled += 1;
                    }
                }
                IncomingStatus::Expired => {
                    self.ledger
                        .mark_incoming_expired(p.id, self.clock.now())
                        .await?
                }
                IncomingStatus::Pending | IncomingStatus::NotFound => {}
            }
        }
        Ok(settled)
    }
}
