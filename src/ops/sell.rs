//! Selling: invoices, L402 and Payment (MPP) challenges, and admitting a request that presents
//! a credential of either scheme.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Failure, sats_arg, whole_sats};
use crate::app::App;
use crate::mint::{Access, ChallengeRequest, DEFAULT_INVOICE_EXPIRY_SECS};

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct CreateInvoiceParams {
    /// Amount in sats, 1 to 2100000000000000.
    #[schemars(range(min = 1, max = 2_100_000_000_000_000u64))]
    pub amount_sats: u64,
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds until the invoice expires; default 3600, 1 to 31536000 (a year).
    #[serde(default)]
    #[schemars(range(min = 1, max = 31_536_000))]
    pub expiry_secs: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreateInvoiceOutput {
    pub bolt11: String,
    pub payment_hash: String,
    pub amount_sats: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Create an invoice to receive into this wallet.
pub async fn create_invoice(
    app: &App,
    p: CreateInvoiceParams,
) -> Result<CreateInvoiceOutput, Failure> {
    let amount_msat = sats_arg("amount_sats", p.amount_sats, 1)?;
    let expiry = p.expiry_secs.unwrap_or(DEFAULT_INVOICE_EXPIRY_SECS);
    let (created, _) = app
        .seller
        .create_invoice(amount_msat, p.description.as_deref().unwrap_or(""), expiry)
        .await?;
    Ok(CreateInvoiceOutput {
        bolt11: created.bolt11,
        payment_hash: created.payment_hash.to_hex(),
        amount_sats: p.amount_sats,
        expires_at: created.expires_at,
    })
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct CreateChallengeParams {
    /// Price in sats, 1 to 2100000000000000.
    #[schemars(range(min = 1, max = 2_100_000_000_000_000u64))]
    pub amount_sats: u64,
    /// Invoice description shown to the payer.
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds until the invoice expires; default 3600, 1 to 31536000 (a year).
    #[serde(default)]
    #[schemars(range(min = 1, max = 31_536_000))]
    pub expiry_secs: Option<u64>,
    /// Service name the token is for; default "api". Letters, digits, '-', '_', '.'.
    #[serde(default)]
    pub service: Option<String>,
    /// Pricing tier within the service; default 0.
    #[serde(default)]
    pub tier: Option<u8>,
    /// Capabilities the token grants within the service (none by default).
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Token lifetime in seconds after minting, 1 to 315360000 (ten years); default: the token does not expire.
    #[serde(default)]
    #[schemars(range(min = 1, max = 315_360_000))]
    pub valid_for_secs: Option<u64>,
    /// How many requests the token pays for (each successful verify_l402_payment uses one), 1 to 1000000000; default unlimited.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub max_uses: Option<u64>,
    /// Bind the token to these HTTP methods, e.g. ["GET"]; default any method. verify_l402_payment then needs the request's method to accept the token (binding_unchecked without it).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Bind the token to requests under this path, e.g. "/v1/data" (covers /v1/data and /v1/data/..., not /v1/database); default any path. verify_l402_payment then needs the request's path to accept the token (binding_unchecked without it).
    #[serde(default)]
    pub path_prefix: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreateChallengeOutput {
    /// The macaroon, standard base64.
    pub macaroon: String,
    /// The BOLT11 invoice the buyer pays.
    pub invoice: String,
    pub payment_hash: String,
    pub token_id: String,
    pub amount_sats: u64,
    /// The two WWW-Authenticate header values to send with status 402, in this order (LSAT first, then L402).
    pub www_authenticate: Vec<String>,
    /// When the invoice expires (unix seconds).
    pub invoice_expires_at: u64,
    /// When the token stops being accepted (unix seconds), or null if never.
    pub valid_until: Option<u64>,
    pub service: String,
}

/// Create an invoice and mint the L402 macaroon bound to it.
pub async fn create_challenge(
    app: &App,
    p: CreateChallengeParams,
) -> Result<CreateChallengeOutput, Failure> {
    let c = app
        .seller
        .create_challenge(&ChallengeRequest {
            amount_msat: sats_arg("amount_sats", p.amount_sats, 1)?,
            description: p.description,
            expiry_secs: p.expiry_secs,
            service: p.service,
            tier: p.tier,
            capabilities: p.capabilities.unwrap_or_default(),
            valid_for_secs: p.valid_for_secs,
            max_uses: p.max_uses,
            methods: p.methods.unwrap_or_default(),
            path_prefix: p.path_prefix,
        })
        .await?;
    Ok(CreateChallengeOutput {
        macaroon: c.macaroon,
        invoice: c.invoice,
        payment_hash: c.payment_hash.to_hex(),
        token_id: c.token_id.to_hex(),
        amount_sats: whole_sats(c.amount_msat),
        www_authenticate: c.www_authenticate.to_vec(),
        invoice_expires_at: c.invoice_expires_at,
        valid_until: c.valid_until,
        service: c.service,
    })
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct VerifyParams {
    /// The full Authorization header value, e.g. "L402 <macaroon>:<preimage>". Give this, or macaroon and preimage.
    #[serde(default)]
    pub authorization: Option<String>,
    /// The macaroon, base64 (with preimage, instead of authorization).
    #[serde(default)]
    pub macaroon: Option<String>,
    /// The payment preimage, 64 hex characters (with macaroon).
    #[serde(default)]
    pub preimage: Option<String>,
    /// The service being accessed; when given, the token must be for it.
    #[serde(default)]
    pub service: Option<String>,
    /// A capability the request needs within the service (without service: within every service the token is for).
    #[serde(default)]
    pub capability: Option<String>,
    /// The HTTP method of the request being served, e.g. "GET": a token bound to methods must allow it, and is refused (binding_unchecked) when the method is not given.
    #[serde(default)]
    pub method: Option<String>,
    /// The path of the request being served (no query), e.g. "/v1/data/7": a token bound to a path prefix must cover it, and is refused (binding_unchecked) when the path is not given.
    #[serde(default)]
    pub path: Option<String>,
    /// For a Payment credential: what the request being served costs, in sats (a charge must have paid at least this; a session is charged it). Default 0.
    #[serde(default)]
    #[schemars(range(max = 2_100_000_000_000_000u64))]
    pub price_sats: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VerifyOutput {
    /// True when the credential is valid: serve the request.
    pub valid: bool,
    /// Why it is not valid: malformed, unknown_token, bad_signature, preimage_mismatch, expired, wrong_service, missing_capability, wrong_route, binding_unchecked, unknown_caveat, widened_caveat, invalid_caveat, used_up; for Payment also method_unsupported, intent_refused, invalid_challenge, underpaid, already_used, session_not_found, session_closed, insufficient_balance, invalid_return_invoice.
    pub reason_code: Option<String>,
    /// The reason in words.
    pub reason: Option<String>,
    pub payment_hash: Option<String>,
    pub token_id: Option<String>,
    /// What the buyer paid, when this wallet issued the token.
    pub amount_paid_sats: Option<u64>,
    pub caveats: Vec<String>,
    /// When the token expires (unix seconds), if it does.
    pub valid_until: Option<u64>,
    /// The service the token was accepted for: the one asked for, else the first it names.
    pub service: Option<String>,
    /// The pricing tier the token was minted with for that service (a token whose caveats change it is refused).
    pub tier: Option<u8>,
    /// The credential's scheme: L402 (or LSAT) or Payment.
    pub scheme: String,
    /// Payment: charge, open, bearer, topUp or close.
    pub payment_action: Option<String>,
    /// Payment: the Payment-Receipt header value to send with the response (also set Cache-Control: private).
    pub payment_receipt: Option<String>,
    /// Payment session: what is left of the deposit after this request, in sats.
    pub session_balance_sats: Option<u64>,
    /// Payment session close: the refund paid to the buyer's return invoice, in sats, and how it went (succeeded, failed, pending, skipped).
    pub refund_sats: Option<u64>,
    pub refund_status: Option<String>,
}

/// Admit one request presenting a credential: verify it, record the sale, count a use (L402),
/// or consume the charge / spend from the session (Payment).
pub async fn verify(app: &App, p: VerifyParams) -> Result<VerifyOutput, Failure> {
    if let Some(auth) = p
        .authorization
        .as_deref()
        .filter(|a| crate::gateway::payment::is_payment(a))
    {
        return verify_payment(app, auth, &p).await;
    }
    let access = Access {
        service: p.service.as_deref(),
        capability: p.capability.as_deref(),
        method: p.method.as_deref(),
        path: p.path.as_deref(),
        price_msat: None,
    };
    let auth = match (p.authorization, p.macaroon, p.preimage) {
        (Some(auth), None, None) => auth,
        (None, Some(mac), Some(pre)) => format!("L402 {}:{}", mac.trim(), pre.trim()),
        _ => {
            return Err(Failure::invalid(
                "give either authorization, or both macaroon and preimage",
            ));
        }
    };
    let v = app.seller.admit(&auth, access).await?;
    Ok(VerifyOutput {
        valid: v.valid,
        reason_code: v.reason_code.map(str::to_owned),
        reason: v.reason,
        payment_hash: v.payment_hash,
        token_id: v.token_id,
        amount_paid_sats: v.amount_paid_msat.map(whole_sats),
        caveats: v.caveats,
        valid_until: v.valid_until,
        service: v.service,
        tier: v.tier,
        scheme: auth
            .split_whitespace()
            .next()
            .and_then(crate::l402::Scheme::from_token)
            .unwrap_or(crate::l402::Scheme::L402)
            .to_string(),
        payment_action: None,
        payment_receipt: None,
        session_balance_sats: None,
        refund_sats: None,
        refund_status: None,
    })
}

async fn verify_payment(app: &App, auth: &str, p: &VerifyParams) -> Result<VerifyOutput, Failure> {
    let price_msat = sats_arg("price_sats", p.price_sats.unwrap_or(0), 0)?;
    let service = p.service.as_deref().unwrap_or(crate::mint::DEFAULT_SERVICE);
    let v = app
        .mpp
        .admit(
            auth,
            crate::mpp::Access {
                service,
                price_msat,
                charge: true,
                session: true,
                opaque: None,
                idle_secs: crate::mpp::DEFAULT_SESSION_IDLE_SECS,
            },
        )
        .await?;
    Ok(VerifyOutput {
        valid: v.valid,
        reason_code: v.reason_code.map(str::to_owned),
        reason: v.reason,
        payment_hash: v.payment_hash,
        token_id: None,
        amount_paid_sats: v.amount_paid_msat.map(whole_sats),
        caveats: Vec::new(),
        valid_until: None,
        service: v.valid.then(|| service.to_owned()),
        tier: None,
        scheme: crate::l402::mpp::SCHEME.to_owned(),
        payment_action: v.action.map(str::to_owned),
        payment_receipt: v.receipt.map(|r| r.to_header()),
        session_balance_sats: v.session_balance_msat.map(whole_sats),
        refund_sats: v.refund_msat.map(whole_sats),
        refund_status: v.refund_status.map(|s| s.as_str().to_owned()),
    })
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct CreatePaymentChallengeParams {
    /// Price in sats (a charge), or of one request (a session), 1 to 2100000000000000.
    #[schemars(range(min = 1, max = 2_100_000_000_000_000u64))]
    pub amount_sats: u64,
    /// "charge" (one payment, one request; the default) or "session" (a deposit spent request by request, the rest refunded at close).
    #[serde(default)]
    pub intent: Option<String>,
    /// The invoice's memo, shown to the payer.
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds the challenge can be answered (and its invoice paid); default 900, 1 to 31536000.
    #[serde(default)]
    #[schemars(range(min = 1, max = 31_536_000))]
    pub expiry_secs: Option<u64>,
    /// A session's deposit in sats; default 20 requests' worth.
    #[serde(default)]
    #[schemars(range(min = 1, max = 2_100_000_000_000_000u64))]
    pub deposit_sats: Option<u64>,
    /// The protection space bound into the challenge id; default "l402-mcp".
    #[serde(default)]
    pub realm: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatePaymentChallengeOutput {
    /// The WWW-Authenticate value to send with status 402 (with Cache-Control: no-store), exactly as Aperture writes it.
    pub www_authenticate: String,
    /// The same challenge as a JSON object (request decoded): the form a paid MCP tool puts in a -32042 error's data.challenges.
    pub challenge: serde_json::Value,
    /// The challenge id (HMAC of the other parameters).
    pub id: String,
    pub intent: String,
    /// The invoice the buyer pays (a session's deposit invoice).
    pub invoice: String,
    pub payment_hash: String,
    /// What the invoice asks for, in sats.
    pub amount_sats: u64,
    /// When the challenge stops being accepted (unix seconds).
    pub expires_at: u64,
    pub realm: String,
}

/// Create a Payment (MPP) challenge: an invoice and the challenge bound to it by its HMAC id.
pub async fn create_payment_challenge(
    app: &App,
    p: CreatePaymentChallengeParams,
) -> Result<CreatePaymentChallengeOutput, Failure> {
    let amount_msat = sats_arg("amount_sats", p.amount_sats, 1)?;
    let mpp = match &p.realm {
        Some(r) => app.mpp.clone().with_realm(r)?,
        None => app.mpp.clone(),
    };
    let issued = match p.intent.as_deref().unwrap_or("charge") {
        "charge" => {
            mpp.charge_challenge(&crate::mpp::ChargeTerms {
                amount_msat,
                description: p.description,
                expiry_secs: p.expiry_secs,
                opaque: None,
            })
            .await?
        }
        "session" => {
            mpp.session_challenge(&crate::mpp::SessionTerms {
                price_msat: amount_msat,
                deposit_msat: p
                    .deposit_sats
                    .map(|d| sats_arg("deposit_sats", d, 1))
                    .transpose()?,
                idle_secs: None,
                description: p.description,
                expiry_secs: p.expiry_secs,
            })
            .await?
        }
        other => {
            return Err(Failure::invalid(format!(
                "intent must be \"charge\" or \"session\", not {other:?}"
            )));
        }
    };
    Ok(CreatePaymentChallengeOutput {
        challenge: issued
            .challenge
            .to_json()
            .map_err(|e| Failure::new("wallet_error", e.to_string()))?,
        www_authenticate: issued.www_authenticate,
        id: issued.id,
        intent: issued.intent,
        invoice: issued.invoice,
        payment_hash: issued.payment_hash.to_hex(),
        amount_sats: whole_sats(issued.amount_msat),
        expires_at: issued.expires_at,
        realm: mpp.realm().to_owned(),
    })
}
