//! `l402-mcp demo`: two agents trade through the MCP tools, offline, with nothing configured.
//!
//! A seller agent runs `l402-mcp serve` (its own embedded wallet) and puts an HTTP API on
//! loopback whose challenges come from `create_l402_challenge` and whose checks use
//! `verify_l402_payment`. A buyer agent runs another `l402-mcp serve` and calls `fetch_paid`.
//! Both wallets live in one throwaway data dir, so they settle with each other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

type Agent = Arc<RunningService<RoleClient, ()>>;

const JOKE_PRICE_SATS: u64 = 21;
const REPORT_PRICE_SATS: u64 = 5_000;

/// A temporary data dir, removed when dropped.
struct DemoDir(PathBuf);

impl DemoDir {
    fn new() -> Result<DemoDir> {
        let name = format!(
            "l402-mcp-demo-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let path = std::env::temp_dir().join(name);
        l402_mcp::fsutil::private_dir(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(DemoDir(path))
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run() -> Result<()> {
    let dir = DemoDir::new()?;
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    say(&format!(
        "l402-mcp demo: a buyer agent pays a seller agent over L402, all through MCP tools.\n\
         Offline, embedded demo wallets (test sats, not real bitcoin), data in {}",
        dir.0.display()
    ));

    let seller = spawn_agent(&exe, &dir.0, "seller").await?;
    let buyer = spawn_agent(&exe, &dir.0, "buyer").await?;
    let addr = start_api(seller.clone()).await?;
    println!(
        "  seller agent: `l402-mcp serve --wallet seller`, selling http://{addr}/api/joke for {JOKE_PRICE_SATS} sats and /api/report for {REPORT_PRICE_SATS} sats"
    );
    println!(
        "  buyer agent:  `l402-mcp serve --wallet buyer`, default budget (1000 sats per payment, 10000 a day)"
    );

    step("1. Both wallets before (wallet_balance)");
    show_balance("buyer ", &buyer).await?;
    show_balance("seller", &seller).await?;

    let joke = format!("http://{addr}/api/joke");
    step(&format!(
        "2. The buyer calls fetch_paid {joke} (max_price_sats 50)"
    ));
    println!(
        "  -> GET answered 402 with an L402 challenge; the invoice is decoded, checked against the cap and budget, paid, and the request retried"
    );
    let r = call(
        &buyer,
        "fetch_paid",
        json!({ "url": joke, "max_price_sats": 50 }),
    )
    .await?;
    show_fetch(&r)?;

    step("3. The same call again: the cached credential is reused, nothing is paid");
    let r = call(
        &buyer,
        "fetch_paid",
        json!({ "url": joke, "max_price_sats": 50 }),
    )
    .await?;
    show_fetch(&r)?;

    let report = format!("http://{addr}/api/report");
    step(&format!(
        "4. The buyer tries {report}, priced {REPORT_PRICE_SATS} sats: above its per-payment cap"
    ));
    let r = call(&buyer, "fetch_paid", json!({ "url": report })).await?;
    if r.is_error == Some(true) {
        println!("  refused, nothing paid: {}", text(&r));
    } else {
        return Err(anyhow!(
            "the budget should have refused this payment: {}",
            text(&r)
        ));
    }

    step("5. Both sides afterwards (wallet_balance, list_payments)");
    show_balance("buyer ", &buyer).await?;
    show_balance("seller", &seller).await?;
    for (name, agent) in [("buyer", &buyer), ("seller", &seller)] {
        let r = call(agent, "list_payments", json!({ "limit": 5 })).await?;
        let s = structured(&r)?;
        for p in s["payments"].as_array().into_iter().flatten() {
            println!(
                "  {name:<6} ledger #{:<3} {:<3} {:<9} {:>5} sats  {}",
                p["id"],
                p["direction"].as_str().unwrap_or("?"),
                p["status"].as_str().unwrap_or("?"),
                p["amount_sats"],
                p["description"]
                    .as_str()
                    .or(p["url"].as_str())
                    .unwrap_or("")
            );
        }
    }
    say(
        "Done. To give your own agent this wallet, register `l402-mcp serve` in its mcpServers (see mcp.json.example).",
    );

    for agent in [buyer, seller] {
        if let Ok(agent) = Arc::try_unwrap(agent) {
            let _ = agent.cancel().await;
        }
    }
    Ok(())
}

fn say(s: &str) {
    println!("\n{s}");
}

fn step(s: &str) {
    println!("\n== {s}");
}

async fn spawn_agent(exe: &Path, dir: &Path, wallet: &str) -> Result<Agent> {
    // The demo runs on its own embedded wallets whatever the user has configured: an empty
    // config file of its own, and none of the user's L402_MCP_* settings (a real backend, a
    // budget) reach the agents.
    let config = dir.join("demo-config.toml");
    std::fs::write(&config, "# l402-mcp demo: defaults only\n")
        .with_context(|| format!("cannot write {}", config.display()))?;
    let (transport, _) =
        TokioChildProcess::builder(tokio::process::Command::new(exe).configure(|c| {
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("L402_MCP_") {
                    c.env_remove(name);
                }
            }
            c.arg("serve")
                .arg("--config")
                .arg(&config)
                .arg("--data-dir")
                .arg(dir)
                .arg("--wallet")
                .arg(wallet)
                .env("RUST_LOG", "warn")
                // The demo's seller listens on loopback, which fetch_paid refuses unless allowed.
                .env("L402_MCP_FETCH_ALLOW_LOOPBACK", "1");
        }))
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start the {wallet} agent"))?;
    let client = ()
        .serve(transport)
        .await
        .with_context(|| format!("MCP handshake with the {wallet} agent failed"))?;
    Ok(Arc::new(client))
}

async fn call(agent: &Agent, tool: &'static str, args: Value) -> Result<CallToolResult> {
    let params = CallToolRequestParams::new(tool)
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    agent
        .call_tool(params)
        .await
        .with_context(|| format!("{tool} call failed"))
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.clone())
        .collect::<Vec<_>>()
        .join(" ")
}

fn structured(r: &CallToolResult) -> Result<&Value> {
    if r.is_error == Some(true) {
        return Err(anyhow!("tool failed: {}", text(r)));
    }
    r.structured_content
        .as_ref()
        .ok_or_else(|| anyhow!("tool returned no structured content"))
}

async fn show_balance(label: &str, agent: &Agent) -> Result<()> {
    let r = call(agent, "wallet_balance", json!({})).await?;
    let s = structured(&r)?;
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    println!(
        "  {label} balance {:>7} sats{}  | spent today {} of {} sats | earned today {} sats",
        n(&s["balance_sats"]),
        if s["demo_funds"] == json!(true) {
            " (demo test sats)"
        } else {
            ""
        },
        n(&s["budget"]["spent_24h_sats"]),
        n(&s["budget"]["daily_sats"]),
        n(&s["earned_24h_sats"])
    );
    Ok(())
}

fn show_fetch(r: &CallToolResult) -> Result<()> {
    let s = structured(r)?;
    let rc = &s["receipt"];
    println!(
        "  status {}  body {}",
        s["status"],
        s["body"].as_str().unwrap_or("")
    );
    if rc["paid"] == json!(true) {
        println!(
            "  receipt: paid {} sats + {} fee, scheme {}, payment hash {}..., budget left {} sats",
            rc["amount_sats"],
            rc["fee_sats"],
            rc["scheme"].as_str().unwrap_or("?"),
            rc["payment_hash"]
                .as_str()
                .map_or("?", |h| &h[..16.min(h.len())]),
            rc["budget_remaining_sats"]
        );
    } else {
        println!(
            "  receipt: nothing paid, token reused: {}, budget left {} sats",
            rc["token_reused"], rc["budget_remaining_sats"]
        );
    }
    Ok(())
}

// ------------------------------------------------------------ the seller's HTTP API

async fn start_api(seller: Agent) -> Result<SocketAddr> {
    let app = Router::new()
        .route("/api/joke", get(joke))
        .route("/api/report", get(report))
        .with_state(seller);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on loopback")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

async fn joke(State(seller): State<Agent>, headers: HeaderMap) -> Response {
    paywalled(&seller, &headers, "jokes", JOKE_PRICE_SATS, json!({ "joke": "Why did the agent pay 21 sats? Because it was asked nicely, with a 402." })).await
}

async fn report(State(seller): State<Agent>, headers: HeaderMap) -> Response {
    paywalled(
        &seller,
        &headers,
        "reports",
        REPORT_PRICE_SATS,
        json!({ "report": "the expensive one" }),
    )
    .await
}

/// Serve `body` to a request with a valid credential for `service`; answer anything else with a
/// fresh challenge, both through the seller agent's MCP tools.
async fn paywalled(
    seller: &Agent,
    headers: &HeaderMap,
    service: &str,
    price: u64,
    body: Value,
) -> Response {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        match call(
            seller,
            "verify_l402_payment",
            json!({ "authorization": auth, "service": service }),
        )
        .await
        {
            Ok(r) if structured(&r).is_ok_and(|s| s["valid"] == json!(true)) => {
                return (StatusCode::OK, axum::Json(body)).into_response();
            }
            Ok(_) => {}
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
    let args = json!({ "amount_sats": price, "service": service, "description": format!("{service} ({price} sats)"), "valid_for_secs": 3600 });
    let challenge = match call(seller, "create_l402_challenge", args).await {
        Ok(r) => match structured(&r) {
            Ok(s) => s.clone(),
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut response = (
        StatusCode::PAYMENT_REQUIRED,
        axum::Json(json!({ "error": "payment required", "invoice": challenge["invoice"], "macaroon": challenge["macaroon"] })),
    )
        .into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for line in challenge["www_authenticate"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(v) = line.as_str().and_then(|v| HeaderValue::from_str(v).ok()) {
            h.append(header::WWW_AUTHENTICATE, v);
        }
    }
    response
}
