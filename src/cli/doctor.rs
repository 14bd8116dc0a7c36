//! `l402-mcp doctor`: check the configured wallet backend the way a new user needs it checked,
//! and say what to fix.

use std::path::Path;

use anyhow::{Result, bail};
use serde::Serialize;

use l402_mcp::app::App;
use l402_mcp::budget::{BudgetStatus, sats};
use l402_mcp::config::Config;
use l402_mcp::storage::Storage;
use l402_mcp::wallet::{BackendConfig, InvoiceRequest, Level, Wallet, WalletError};

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    /// ok, warn or fail
    status: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
    /// What was checked, as data (the budget in force).
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check,
        status: "ok",
        detail: detail.into(),
        fix: None,
        data: None,
    }
}
fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        status: "warn",
        detail: detail.into(),
        fix: Some(fix.into()),
        data: None,
    }
}
fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        status: "fail",
        detail: detail.into(),
        fix: Some(fix.into()),
        data: None,
    }
}

/// What to do about a wallet error, in a user's words.
fn fix_for(e: &WalletError, kind: &str) -> String {
    let text = e.to_string();
    let upper = kind.to_ascii_uppercase();
    if kind == "nwc"
        && (text.contains("relay") || text.contains("connect") || text.contains("reach"))
    {
        return "check the relay in the connection uri ([backend] uri or L402_MCP_NWC_URI) and that this machine can reach it".into();
    }
    let refused = [
        "credentials",
        "401",
        "403",
        "refused the macaroon",
        "refused the rune",
        "refused the password",
        "refused the API key",
    ];
    if refused.iter().any(|t| text.contains(t)) {
        format!(
            "the backend refused the key: check the key/macaroon/rune/password in [backend] (or L402_MCP_{upper}_...)"
        )
    } else if text.contains("reach")
        || text.contains("connect")
        || text.contains("dns")
        || text.contains("timed out")
    {
        format!(
            "check [backend] url (or L402_MCP_{upper}_URL), that the node is running, and that this machine can reach it"
        )
    } else if text.contains("certificate") || text.contains("TLS") || text.contains("tls") {
        "check tls_cert_path: it must be the node's own certificate (PEM)".into()
    } else if text.contains("scope") {
        format!(
            "create a key with the scopes docs/wallets/{kind}.md lists for what this agent does"
        )
    } else {
        format!("check the [backend] settings against docs/wallets/{kind}.md")
    }
}

pub async fn run(config: &Config, data_dir: &Path, wallet_name: &str, json: bool) -> Result<()> {
    let configured = &config.budget;
    let backend = match config.backend() {
        Ok(b) => b,
        Err(e) => {
            let checks = vec![fail(
                "config",
                e.to_string(),
                "fix [backend] in the config file (or the L402_MCP_* variables): see README, Wallets",
            )];
            return report(checks, json);
        }
    };
    let backend = &backend;
    let kind = backend.kind();
    let mut checks = vec![ok("config", format!("backend {kind}: {backend:?}"))];
    if matches!(backend, BackendConfig::Embedded) {
        checks.push(warn("backend", "the embedded demo wallet holds test sats and can only pay other embedded wallets on the same storage", "to pay real invoices, set [backend] kind = lnbits | lnd | cln | phoenixd | nwc | blink | strike | opennode | lnbot (see README, Wallets)"));
    }
    let storage = match Storage::open(data_dir, config.database_url()).await {
        Ok(s) => s,
        Err(e) => {
            checks.push(fail(
                "storage",
                e.to_string(),
                if config.database_url().is_some() {
                    "check database_url (or L402_MCP_DATABASE_URL): the server, user, password and database"
                } else {
                    "the data dir must be writable by this user (set --data-dir or L402_MCP_DATA_DIR)"
                },
            ));
            return report(checks, json);
        }
    };
    checks.push(storage_check(&storage).await);
    let app = match App::open_on(
        storage,
        data_dir,
        wallet_name,
        backend,
        l402_mcp::clock::system(),
    )
    .await
    {
        Ok(app) => app,
        Err(e) => {
            checks.push(fail("open", e.to_string(), "fix the [backend] settings"));
            return report(checks, json);
        }
    };
    let wallet = app.wallet.clone();
    diagnose(wallet.as_ref(), kind, &mut checks).await;
    let now = app.clock.now();
    // The budget in force: the stored one with the config file's [budget] and the
    // L402_MCP_*_SATS variables over it, as every other command applies them at start.
    let budget = async {
        let (mut policy, used) = app
            .ledger
            .budget_and_use(&app.wallet_name, None, now)
            .await?;
        configured
            .apply(&mut policy)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok::<_, anyhow::Error>(BudgetStatus::new(policy, &used))
    };
    match budget.await {
        Ok(b) => {
            let p = &b.policy;
            let opt = |v: Option<u64>| v.map_or("none".into(), sats);
            let detail = format!(
                "per payment {}, daily {}, hourly {}, per host daily {}, fee limit max({}, {}%); spent {} + reserved {} in 24 h{}",
                sats(p.per_payment_msat),
                sats(p.daily_msat),
                opt(p.hourly_msat),
                opt(p.per_host_daily_msat),
                sats(p.max_fee_floor_msat),
                p.max_fee_ppm as f64 / 10_000.0,
                sats(b.spent_24h_msat),
                sats(b.reserved_msat),
                if configured.is_empty() {
                    ""
                } else {
                    " (config file / environment over the stored budget)"
                }
            );
            let data = serde_json::to_value(&b).ok();
            let mut check = match wallet.balance().await {
                Ok(bal) if !bal.demo_funds && b.policy.daily_msat > bal.msat => warn(
                    "budget",
                    detail,
                    "the daily budget is larger than the balance: payments will fail for lack of funds before the budget stops them",
                ),
                _ => ok("budget", detail),
            };
            check.data = data;
            checks.push(check);
        }
        Err(e) => checks.push(fail(
            "budget",
            e.to_string(),
            "the ledger in the data dir could not be read",
        )),
    }
    report(checks, json)
}

/// The storage engine, its version, and the wallets kept on it (on PostgreSQL, shared by every
/// instance pointed at it).
async fn storage_check(storage: &Storage) -> Check {
    let info = storage.info();
    let wallets = match storage.ledger().wallets().await {
        Ok(w) => w,
        Err(e) => {
            return fail(
                "storage",
                format!("{} {} at {}: {e}", info.engine, info.version, info.location),
                "the storage could not be read",
            );
        }
    };
    let shared = if info.engine == "postgresql" {
        "shared by every instance pointed at it"
    } else {
        "this data dir's ledger"
    };
    let mut check = ok(
        "storage",
        format!(
            "{} {} at {} ({shared}); wallets: {}",
            info.engine,
            info.version,
            info.location,
            if wallets.is_empty() {
                "none yet".to_owned()
            } else {
                wallets.join(", ")
            }
        ),
    );
    check.data = Some(serde_json::json!({
        "engine": info.engine,
        "version": info.version,
        "location": info.location,
        "wallets": wallets,
    }));
    check
}

/// The generic checks, with the backend's own findings ([`Wallet::access`]) in place of those of
/// the same name (a seller-only backend's word on preimages, say).
async fn diagnose(wallet: &dyn Wallet, kind: &str, checks: &mut Vec<Check>) {
    let mut own = Vec::new();
    let found = generic_checks(wallet, kind, &mut own).await;
    let access = if found {
        wallet.access().await
    } else {
        Vec::new()
    };
    own.retain(|c| !access.iter().any(|a| a.check == c.check));
    checks.extend(own);
    checks.extend(access.into_iter().map(|a| Check {
        check: a.check,
        status: match a.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        },
        detail: a.detail,
        fix: a.fix,
        data: None,
    }));
}

/// Reachable, balance, receive, preimages; false when the backend did not answer at all.
async fn generic_checks(wallet: &dyn Wallet, kind: &str, checks: &mut Vec<Check>) -> bool {
    let info = match wallet.info().await {
        Ok(info) => {
            checks.push(ok(
                "reachable",
                format!(
                    "{} answered; node {}",
                    info.backend,
                    info.node_id.as_deref().unwrap_or("(no node id)")
                ),
            ));
            info
        }
        Err(e) => {
            checks.push(fail("reachable", e.to_string(), fix_for(&e, kind)));
            return false;
        }
    };
    match wallet.balance().await {
        Ok(b) if b.msat == 0 => checks.push(warn(
            "balance",
            "0 sats",
            "fund the wallet before an agent can buy anything",
        )),
        Ok(b) => checks.push(ok(
            "balance",
            format!(
                "{}{}",
                sats(b.msat),
                if b.demo_funds {
                    " (demo test sats)"
                } else {
                    ""
                }
            ),
        )),
        Err(e) => checks.push(fail("authenticated", e.to_string(), fix_for(&e, kind))),
    }
    let probe = InvoiceRequest {
        amount_msat: 1_000,
        description: "l402-mcp doctor check (never paid)".into(),
        expiry_secs: 60,
    };
    match wallet.create_invoice(&probe).await {
        Ok(inv) => match l402_mcp::bolt11::decode(&inv.bolt11) {
            Ok(d) if d.network == info.network => checks.push(ok(
                "network",
                format!("{} (the invoices it makes say so too)", info.network),
            )),
            Ok(d) => checks.push(fail(
                "network",
                format!(
                    "the backend says {} but its invoices are for {}",
                    info.network, d.network
                ),
                format!("set network = \"{}\" in [backend]", d.network),
            )),
            Err(e) => checks.push(fail(
                "network",
                format!("the backend made an invoice that does not decode: {e}"),
                "report this backend's invoice format",
            )),
        },
        // A buyer-only key (the least privilege for an agent that only buys) cannot create
        // invoices: that is a warning, not a failure; the network is then taken on its word.
        Err(e) => checks.push(warn(
            "receive",
            format!("cannot create invoices ({e}); the network ({}) was not checked against one", info.network),
            format!(
                "fine for a key that only buys; to sell (create_l402_challenge, create_invoice, gateway) the key must be allowed to create invoices: {}",
                fix_for(&e, kind)
            ),
        )),
    }
    if info.returns_preimages {
        checks.push(ok(
            "preimages",
            format!("{} returns the preimage of each payment (checked again at every payment), so L402 credentials can be shown", info.backend),
        ));
    } else {
        checks.push(fail(
            "preimages",
            "this backend does not return payment preimages",
            "L402 needs the preimage as proof of payment: use a wallet that returns it",
        ));
    }
    true
}

fn report(checks: Vec<Check>, json: bool) -> Result<()> {
    let failed = checks.iter().filter(|c| c.status == "fail").count();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "ok": failed == 0, "checks": checks })
            )?
        );
    } else {
        for c in &checks {
            println!("[{:<4}] {:<13} {}", c.status, c.check, c.detail);
            if let Some(fix) = &c.fix {
                println!("       {:<13} fix: {fix}", "");
            }
        }
        println!(
            "{}",
            if failed == 0 {
                "\nall checks passed".to_owned()
            } else {
                format!("\n{failed} check(s) failed")
            }
        );
    }
    if failed > 0 {
        bail!("doctor found {failed} problem(s)");
    }
    Ok(())
}
