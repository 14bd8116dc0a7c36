//! `invoice`, `challenge`, `verify` and `sales`: selling, for people.

use anyhow::{Result, bail};
use clap::Args;

use l402_mcp::app::App;
use l402_mcp::mint::DEFAULT_INVOICE_EXPIRY_SECS;
use l402_mcp::ops::sell::{
    self, CreateChallengeParams, CreateInvoiceParams, CreatePaymentChallengeParams, VerifyParams,
};

use super::output::print;

#[derive(Args)]
pub struct InvoiceArgs {
    /// Amount in sats
    amount_sats: u64,
    #[arg(long, default_value = "")]
    description: String,
    /// Seconds until the invoice expires
    #[arg(long, default_value_t = DEFAULT_INVOICE_EXPIRY_SECS)]
    expiry: u64,
}

#[derive(Args)]
pub struct ChallengeArgs {
    /// Price in sats
    amount_sats: u64,
    #[arg(long)]
    service: Option<String>,
    #[arg(long)]
    tier: Option<u8>,
    /// Capability granted (repeatable)
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// Token lifetime in seconds (default: no expiry)
    #[arg(long)]
    valid_for: Option<u64>,
    /// Requests the token pays for (default: unlimited)
    #[arg(long)]
    max_uses: Option<u64>,
    /// Bind the token to an HTTP method (repeatable; default: any); `verify` then needs --method
    #[arg(long = "method")]
    methods: Vec<String>,
    /// Bind the token to requests under this path (default: any); `verify` then needs --path
    #[arg(long)]
    path_prefix: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Seconds until the invoice expires
    #[arg(long)]
    expiry: Option<u64>,
    /// A Payment (MPP) challenge instead of L402: `charge` (one request) or `session` (a deposit)
    #[arg(long, value_name = "INTENT")]
    mpp: Option<String>,
    /// With --mpp session: the deposit in sats (default: 20 requests)
    #[arg(long)]
    deposit: Option<u64>,
    /// With --mpp: the realm bound into the challenge id (default l402-mcp)
    #[arg(long)]
    realm: Option<String>,
}

#[derive(Args)]
pub struct VerifyArgs {
    authorization: String,
    /// The service being accessed (default: any the token is for)
    #[arg(long)]
    service: Option<String>,
    /// A capability the request needs (without --service: in every service the token is for)
    #[arg(long)]
    capability: Option<String>,
    /// The request's HTTP method (a token bound to methods is refused without it)
    #[arg(long)]
    method: Option<String>,
    /// The request's path (a token bound to a path prefix is refused without it)
    #[arg(long)]
    path: Option<String>,
    /// A Payment credential: what the request costs, in sats (a session is charged it)
    #[arg(long)]
    price: Option<u64>,
}

#[derive(Args)]
pub struct SalesArgs {
    /// Period to report, in hours
    #[arg(long, default_value_t = 24)]
    hours: u64,
}

pub async fn invoice(app: &App, args: InvoiceArgs, json: bool) -> Result<()> {
    let params = CreateInvoiceParams {
        amount_sats: args.amount_sats,
        description: Some(args.description),
        expiry_secs: Some(args.expiry),
    };
    let out = sell::create_invoice(app, params).await?;
    print(json, &out, |out| out.bolt11.clone())
}

pub async fn challenge(app: &App, args: ChallengeArgs, json: bool) -> Result<()> {
    if let Some(intent) = args.mpp {
        let params = CreatePaymentChallengeParams {
            amount_sats: args.amount_sats,
            intent: Some(intent),
            description: args.description,
            expiry_secs: args.expiry,
            deposit_sats: args.deposit,
            realm: args.realm,
        };
        let c = sell::create_payment_challenge(app, params).await?;
        return print(json, &c, |c| {
            format!(
                "invoice   {}\nWWW-Authenticate: {}",
                c.invoice, c.www_authenticate
            )
        });
    }
    let params = CreateChallengeParams {
        amount_sats: args.amount_sats,
        description: args.description,
        expiry_secs: args.expiry,
        service: args.service,
        tier: args.tier,
        capabilities: Some(args.capabilities),
        valid_for_secs: args.valid_for,
        max_uses: args.max_uses,
        methods: Some(args.methods),
        path_prefix: args.path_prefix,
    };
    let c = sell::create_challenge(app, params).await?;
    print(json, &c, |c| {
        let mut out = format!("invoice   {}\nmacaroon  {}", c.invoice, c.macaroon);
        for header in &c.www_authenticate {
            out.push_str(&format!("\nWWW-Authenticate: {header}"));
        }
        out
    })
}

/// Admitted as every entry point admits a request: a valid verdict counts a use. A refused
/// credential exits 1, so scripts can test the exit code.
pub async fn verify(app: &App, args: VerifyArgs, json: bool) -> Result<()> {
    let params = VerifyParams {
        authorization: Some(args.authorization),
        service: args.service,
        capability: args.capability,
        method: args.method,
        path: args.path,
        price_sats: args.price,
        ..VerifyParams::default()
    };
    let v = sell::verify(app, params).await?;
    print(json, &v, |v| {
        if v.valid && v.scheme == "Payment" {
            format!(
                "valid: Payment {} for {}{}\nPayment-Receipt: {}",
                v.payment_action.as_deref().unwrap_or("?"),
                v.payment_hash.as_deref().unwrap_or("?"),
                v.amount_paid_sats
                    .map(|a| format!(" ({a} sats paid)"))
                    .unwrap_or_default(),
                v.payment_receipt.as_deref().unwrap_or("")
            )
        } else if v.valid {
            format!(
                "valid: token {} for payment {}{}{}",
                v.token_id.as_deref().unwrap_or("?"),
                v.payment_hash.as_deref().unwrap_or("?"),
                v.amount_paid_sats
                    .map(|a| format!(" ({a} sats paid)"))
                    .unwrap_or_default(),
                match (&v.service, v.tier) {
                    (Some(s), Some(t)) => format!(", service {s} tier {t}"),
                    _ => String::new(),
                }
            )
        } else {
            format!("invalid: {}", v.reason.as_deref().unwrap_or("?"))
        }
    })?;
    if !v.valid {
        bail!(
            "credential refused ({})",
            v.reason_code.as_deref().unwrap_or("invalid")
        );
    }
    Ok(())
}

pub async fn sales(app: &App, args: SalesArgs, json: bool) -> Result<()> {
    let hours = args.hours;
    let since = app.clock.now().saturating_sub(hours.saturating_mul(3600));
    let summary = app.seller.tokens().sales_since(since).await?;
    print(json, &summary, |summary| {
        let mut out = format!(
            "{} sale(s), {} in the last {hours} h",
            summary.count, summary.amount
        );
        for s in &summary.by_service {
            out.push_str(&format!(
                "\n  {:<20} {:>5} sale(s) {:>14}",
                s.service, s.count, s.amount
            ));
        }
        out
    })
}
