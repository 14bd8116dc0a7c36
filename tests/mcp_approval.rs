//! Payments held for a human, through a real MCP client (rmcp's) against `l402-mcp serve`:
//! the human is asked in the client's own dialog on both protocol versions (2025-11-25
//! `elicitation/create`; 2026-07-28 `input_required` and the retry), and only their "yes" pays,
//! once; a client that cannot ask is told `approval_required` and pays after `l402-mcp
//! approve`; a retry cannot be replayed or moved to another purchase. (The official Python
//! and TypeScript SDKs run the same scenarios: tools/mcp-clients/approval.*.)
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::agents::{
    Agent, BIN, JOKE_SATS, balance_sats, call, failed, ok, seller_api, spawn_agent,
};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationCapability, Implementation,
    ProtocolVersion,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient};
use serde_json::{Value, json};

/// What the human does when asked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Approve,
    Decline,
    Cancel,
    /// Answers "approve" only after this many seconds.
    Late(u64),
    /// Sent to the approval page (URL elicitation): approves there, as a person would.
    Page,
}

/// An MCP client whose dialog a human answers: it declares form elicitation (and, when
/// `apps`, the MCP Apps extension).
#[derive(Clone)]
struct Human {
    answer: Answer,
    elicitation: bool,
    /// Declares URL elicitation only.
    url_only: bool,
    apps: bool,
    asked: Arc<AtomicUsize>,
    last_question: Arc<std::sync::Mutex<String>>,
    /// Progress messages and log notifications received.
    progress: Arc<std::sync::Mutex<Vec<String>>>,
    logs: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Human {
    fn new(answer: Answer) -> Human {
        Human {
            answer,
            elicitation: true,
            url_only: false,
            apps: false,
            asked: Arc::default(),
            last_question: Arc::default(),
            progress: Arc::default(),
            logs: Arc::default(),
        }
    }
}

impl ClientHandler for Human {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if let ElicitRequestParams::UrlElicitationParams { url, message, .. } = &request {
            assert!(
                self.url_only,
                "sent a URL elicitation, not declared: {request:?}"
            );
            *self.last_question.lock().unwrap() = message.clone();
            assert_eq!(approve_on_page(url, None).await, 200);
            return Ok(ElicitResult::new(ElicitationAction::Accept));
        }
        if let ElicitRequestParams::FormElicitationParams {
            message,
            requested_schema,
            ..
        } = &request
        {
            let schema = serde_json::to_value(requested_schema).unwrap();
            assert_eq!(
                schema["properties"]["approve"]["type"], "boolean",
                "{schema}"
            );
            *self.last_question.lock().unwrap() = message.clone();
        } else {
            panic!("asked by URL, not declared: {request:?}");
        }
        Ok(match self.answer {
            Answer::Approve => ElicitResult::new(ElicitationAction::Accept)
                .with_content(json!({ "approve": true })),
            Answer::Decline | Answer::Page => ElicitResult::new(ElicitationAction::Decline),
            Answer::Cancel => ElicitResult::new(ElicitationAction::Cancel),
            Answer::Late(secs) => {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                ElicitResult::new(ElicitationAction::Accept)
                    .with_content(json!({ "approve": true }))
            }
        })
    }

    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _ctx: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap()
            .push(params.message.unwrap_or_default());
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _ctx: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.logs.lock().unwrap().push(params.data);
    }

    fn get_info(&self) -> ClientConfig {
        let mut caps = ClientCapabilities::default();
        if self.elicitation {
            let mut e = ElicitationCapability::default();
            if self.url_only {
                e.url = Some(Default::default());
            }
            caps.elicitation = Some(e);
        }
        if self.apps {
            let mut ext = std::collections::BTreeMap::new();
            let mut ui = serde_json::Map::new();
            ui.insert("mimeTypes".into(), json!(["text/html;profile=mcp-app"]));
            ext.insert("io.modelcontextprotocol/ui".to_owned(), ui);
            caps.extensions = Some(ext);
        }
        ClientConfig::new(caps, Implementation::new("a-human", "1"))
    }
}

type HumanAgent = RunningService<RoleClient, Human>;

/// `l402-mcp serve --wallet buyer` over stdio with an approval policy: payments above 10 sats
/// wait for a human at most `timeout_secs`. It logs everything (`RUST_LOG=trace`) to
/// `dir/buyer.log`, which the tests search for secrets.
async fn buyer(dir: &Path, human: Human, modern: bool, timeout_secs: u64) -> HumanAgent {
    let (transport, _) =
        TokioChildProcess::builder(tokio::process::Command::new(BIN).configure(|c| {
            c.args(["serve", "--wallet", "buyer", "--data-dir"])
                .arg(dir)
                .env("L402_MCP_FETCH_ALLOW_LOOPBACK", "1")
                .env("L402_MCP_APPROVAL_ABOVE_SATS", "10")
                .env("L402_MCP_APPROVAL_TIMEOUT_SECS", timeout_secs.to_string())
                .env("RUST_LOG", "trace");
        }))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("buyer.log"))
                .unwrap(),
        ))
        .spawn()
        .unwrap();
    let lifecycle = if modern {
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        }
    } else {
        ClientLifecycleMode::Initialize
    };
    human
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .expect("MCP handshake")
}

async fn fetch(agent: &HumanAgent, url: &str) -> CallToolResult {
    let params = CallToolRequestParams::new("fetch_paid")
        .with_arguments(json!({ "url": url }).as_object().cloned().unwrap());
    agent.call_tool(params).await.expect("tools/call")
}

/// A seller agent with its shop, and the data dir the buyer shares.
async fn market() -> (tempfile::TempDir, Agent, String) {
    let dir = tempfile::tempdir().unwrap();
    let seller = spawn_agent(dir.path(), "seller", &[], Stdio::null()).await;
    let addr = seller_api(seller.clone()).await;
    (dir, seller, format!("http://{addr}/joke"))
}

/// A buyer agent (rmcp's client, no elicitation) whose payments above 10 sats wait for a human.
async fn asks_no_one(dir: &Path) -> Agent {
    spawn_agent(
        dir,
        "buyer",
        &[("L402_MCP_APPROVAL_ABOVE_SATS", "10")],
        Stdio::null(),
    )
    .await
}

async fn buyer_balance(agent: &HumanAgent) -> u64 {
    let r = agent
        .call_tool(CallToolRequestParams::new("wallet_balance"))
        .await
        .unwrap();
    ok(&r)["balance_sats"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_human_is_asked_in_the_clients_dialog_and_a_yes_pays_once() {
    for modern in [false, true] {
        let (dir, seller, url) = market().await;
        let human = Human::new(Answer::Approve);
        let agent = buyer(dir.path(), human.clone(), modern, 300).await;
        let (b0, s0) = (buyer_balance(&agent).await, balance_sats(&seller).await);
        let r = ok(&fetch(&agent, &url).await);
        assert_eq!(
            (r["status"].as_u64(), r["body"].as_str()),
            (Some(200), Some(r#"{"joke":"knock knock"}"#)),
            "{r}"
        );
        assert_eq!(
            (
                r["receipt"]["paid"].as_bool(),
                r["receipt"]["amount_sats"].as_u64()
            ),
            (Some(true), Some(JOKE_SATS)),
            "{r}"
        );
        assert_eq!(human.asked.load(Ordering::SeqCst), 1, "modern={modern}");
        let q = human.last_question.lock().unwrap().clone();
        assert!(
            q.contains("21 sats") && q.contains("127.0.0.1") && q.contains("/joke"),
            "{q}"
        );
        // The credential is reused: nothing asked, nothing paid.
        let again = ok(&fetch(&agent, &url).await);
        assert_eq!(again["receipt"]["token_reused"], true, "{again}");
        assert_eq!(human.asked.load(Ordering::SeqCst), 1);
        assert_eq!(
            buyer_balance(&agent).await,
            b0 - JOKE_SATS,
            "modern={modern}"
        );
        assert_eq!(balance_sats(&seller).await, s0 + JOKE_SATS);
        let _ = agent.cancel().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_or_no_answer_pays_nothing() {
    for modern in [false, true] {
        for answer in [Answer::Decline, Answer::Cancel, Answer::Late(3)] {
            let (dir, _seller, url) = market().await;
            let human = Human::new(answer);
            let agent = buyer(dir.path(), human.clone(), modern, 2).await;
            let b0 = buyer_balance(&agent).await;
            let text = failed(&fetch(&agent, &url).await);
            let want = match (answer, modern) {
                (Answer::Late(_), false) => "approval_timeout",
                (Answer::Late(_), true) => "approval_expired",
                _ => "approval_declined",
            };
            assert!(text.starts_with(want), "{answer:?} modern={modern}: {text}");
            assert!(text.contains("nothing was paid"), "{text}");
            assert_eq!(human.asked.load(Ordering::SeqCst), 1);
            // Nothing paid, and nothing left to be paid later.
            tokio::time::sleep(Duration::from_millis(
                if matches!(answer, Answer::Late(_)) {
                    1500
                } else {
                    0
                },
            ))
            .await;
            assert_eq!(
                buyer_balance(&agent).await,
                b0,
                "{answer:?} modern={modern}"
            );
            let out = std::process::Command::new(BIN)
                .args(["--json", "--wallet", "buyer", "--data-dir"])
                .arg(dir.path())
                .args(["approvals", "--all"])
                .output()
                .unwrap();
            let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
            let statuses: Vec<&str> = listed["approvals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["status"].as_str().unwrap())
                .collect();
            let want = if matches!(answer, Answer::Late(_)) {
                "expired"
            } else {
                "denied"
            };
            assert_eq!(statuses, [want], "{answer:?} modern={modern}");
            let _ = agent.cancel().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cannot_ask_is_told_and_pays_after_the_human_approves_at_a_terminal() {
    let (dir, seller, url) = market().await;
    let agent = asks_no_one(dir.path()).await;
    let (b0, s0) = (balance_sats(&agent).await, balance_sats(&seller).await);
    let r = call(&agent, "fetch_paid", json!({ "url": url })).await;
    assert!(r.meta.is_none(), "no App host: no secret in the result");
    let text = failed(&r);
    assert!(text.starts_with("approval_required"), "{text}");
    assert!(
        text.contains("call fetch_paid again with the same URL"),
        "{text}"
    );
    let id = text
        .split("(approval ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap()
        .to_owned();
    // Asking again is the same question; nothing is paid meanwhile.
    assert!(failed(&call(&agent, "fetch_paid", json!({ "url": url })).await).contains(&id));
    assert_eq!(balance_sats(&agent).await, b0);

    let approve = std::process::Command::new("setsid")
        .arg(BIN)
        .args(["--json", "--wallet", "buyer", "--data-dir"])
        .arg(dir.path())
        .args(["approve", &id])
        .output()
        .unwrap();
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stdout)
    );
    let r = ok(&call(&agent, "fetch_paid", json!({ "url": url })).await);
    assert_eq!(
        (r["status"].as_u64(), r["receipt"]["token_reused"].as_bool()),
        (Some(200), Some(true)),
        "{r}"
    );
    let r = ok(&call(&agent, "fetch_paid", json!({ "url": url })).await);
    assert_eq!(r["status"].as_u64(), Some(200));
    assert_eq!(balance_sats(&agent).await, b0 - JOKE_SATS, "paid once");
    assert_eq!(balance_sats(&seller).await, s0 + JOKE_SATS);
    let payments = ok(&call(&agent, "list_payments", json!({ "direction": "out" })).await);
    assert_eq!(
        payments["payments"].as_array().unwrap().len(),
        1,
        "{payments}"
    );
}

fn args(url: &str) -> serde_json::Map<String, Value> {
    json!({ "url": url }).as_object().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_retry_cannot_be_replayed_or_moved_to_another_purchase() {
    let (dir, seller, url) = market().await;
    let agent = buyer(dir.path(), Human::new(Answer::Approve), true, 300).await;
    let (b0, s0) = (buyer_balance(&agent).await, balance_sats(&seller).await);
    let first = agent
        .call_tool_once(CallToolRequestParams::new("fetch_paid").with_arguments(args(&url)))
        .await
        .unwrap();
    let CallToolResponse::InputRequired(asked) = first else {
        panic!("expected input_required, got {first:?}")
    };
    let state = asked.request_state.clone().expect("a requestState");
    let yes: rmcp::model::InputResponses = [(
        "approve".to_owned(),
        json!({ "action": "accept", "content": { "approve": true } }),
    )]
    .into_iter()
    .collect();
    let retry = |arguments: serde_json::Map<String, Value>, state: &str| {
        let mut p = CallToolRequestParams::new("fetch_paid").with_arguments(arguments);
        p.input_responses = Some(yes.clone());
        p.request_state = Some(state.to_owned());
        p
    };
    // The state is bound to this purchase: another URL, or a forged state, is refused.
    let other = format!("{}?other=1", url.replace("/joke", "/x402"));
    assert!(
        agent
            .call_tool_once(retry(args(&other), &state))
            .await
            .is_err()
    );
    // The last character changed (to another one: a forgery, never the original).
    let last = if state.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &state[..state.len() - 1]);
    assert!(
        agent
            .call_tool_once(retry(args(&url), &forged))
            .await
            .is_err()
    );
    assert_eq!(buyer_balance(&agent).await, b0);

    let CallToolResponse::Complete(paid) = agent
        .call_tool_once(retry(args(&url), &state))
        .await
        .unwrap()
    else {
        panic!("expected a result")
    };
    assert_eq!(ok(&paid)["receipt"]["paid"], true);
    // The same answer again: the approval is spent, nothing more is paid.
    for _ in 0..2 {
        let CallToolResponse::Complete(replay) = agent
            .call_tool_once(retry(args(&url), &state))
            .await
            .unwrap()
        else {
            panic!("expected a result")
        };
        let text = failed(&replay);
        assert!(text.starts_with("approval_not_pending"), "{text}");
    }
    assert_eq!(buyer_balance(&agent).await, b0 - JOKE_SATS);
    assert_eq!(balance_sats(&seller).await, s0 + JOKE_SATS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_app_card_approves_with_the_secret_only_its_host_received() {
    use rmcp::model::ReadResourceRequestParams;
    let (dir, seller, url) = market().await;
    let human = Human {
        elicitation: false,
        apps: true,
        ..Human::new(Answer::Approve)
    };
    let agent = buyer(dir.path(), human, false, 300).await;
    let (b0, s0) = (buyer_balance(&agent).await, balance_sats(&seller).await);

    // The tools link the views; the card's tool is for the card only.
    let tools = agent.list_all_tools().await.unwrap();
    let ui = |name: &str| {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        serde_json::to_value(t.meta.clone().unwrap()).unwrap()["ui"].clone()
    };
    for name in ["fetch_paid", "pay_invoice"] {
        assert_eq!(
            ui(name)["resourceUri"],
            "ui://l402-mcp/approval.html",
            "{name}"
        );
    }
    assert_eq!(ui("approve_payment")["visibility"], json!(["app"]));
    assert_eq!(
        ui("wallet_balance")["resourceUri"],
        "ui://l402-mcp/wallet.html"
    );
    let card = agent
        .read_resource(ReadResourceRequestParams::new(
            "ui://l402-mcp/approval.html",
        ))
        .await
        .unwrap();
    let card = serde_json::to_value(&card.contents[0]).unwrap();
    assert_eq!(card["mimeType"], "text/html;profile=mcp-app");
    assert!(card["text"].as_str().unwrap().contains("approve_payment"));

    let r = fetch(&agent, &url).await;
    let text = failed(&r);
    assert!(text.starts_with("approval_required"), "{text}");
    let meta = serde_json::to_value(r.meta.clone().expect("_meta for the card")).unwrap();
    let held = &meta["io.l402-mcp/approval"];
    assert_eq!(held["amount_sats"], JOKE_SATS, "{meta}");
    let secret = held["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32);
    assert!(
        !text.contains(&secret),
        "the secret is never in the text the model reads"
    );
    let log = std::fs::read_to_string(dir.path().join("buyer.log")).unwrap();
    assert!(log.contains("held for a human"), "the trace log is written");
    assert!(
        !log.contains(&secret),
        "the secret is in no log, at any level"
    );
    let id = held["id"].as_str().unwrap().to_owned();

    let decide = |secret: &str, approve: bool| {
        let args = json!({ "approval_id": id, "secret": secret, "approve": approve });
        agent.call_tool(
            CallToolRequestParams::new("approve_payment")
                .with_arguments(args.as_object().cloned().unwrap()),
        )
    };
    // What the model could send (no secret, a guess) is refused and pays nothing.
    for guess in ["", "00000000000000000000000000000000"] {
        let refused = failed(&decide(guess, true).await.unwrap());
        assert!(refused.starts_with("approval_wrong_secret"), "{refused}");
    }
    assert_eq!(buyer_balance(&agent).await, b0);
    let done = ok(&decide(&secret, true).await.unwrap());
    assert_eq!(
        (done["paid"].as_bool(), done["status"].as_str()),
        (Some(true), Some("paid")),
        "{done}"
    );
    let replay = failed(&decide(&secret, true).await.unwrap());
    assert!(replay.starts_with("approval_not_pending"), "{replay}");
    let r = ok(&fetch(&agent, &url).await);
    assert_eq!(
        (r["status"].as_u64(), r["receipt"]["token_reused"].as_bool()),
        (Some(200), Some(true))
    );
    assert_eq!(buyer_balance(&agent).await, b0 - JOKE_SATS, "paid once");
    assert_eq!(balance_sats(&seller).await, s0 + JOKE_SATS);

    // The wallet view: the dashboard's HTML, read-only, beside wallet_balance's result.
    let b = agent
        .call_tool(CallToolRequestParams::new("wallet_balance"))
        .await
        .unwrap();
    let html = serde_json::to_value(b.meta.clone().unwrap()).unwrap()["io.l402-mcp/html"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        html.contains("TEST SATS") && html.contains("spend-chart"),
        "{html}"
    );
    assert!(
        !html.contains("<form"),
        "read-only: no tool changes anything from the view"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_apps_never_gets_the_secret() {
    let (dir, _seller, url) = market().await;
    let agent = asks_no_one(dir.path()).await;
    let r = call(&agent, "fetch_paid", json!({ "url": url })).await;
    assert!(failed(&r).starts_with("approval_required"));
    assert!(r.meta.is_none(), "{:?}", r.meta);
    let b = call(&agent, "wallet_balance", json!({})).await;
    assert!(b.meta.is_none());
}

/// A form body, urlencoded.
fn encoded(form: &[(&str, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

/// The value of the hidden `csrf` field of a page.
fn csrf_of(html: &str) -> String {
    html.split("name=csrf value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a csrf field")
        .to_owned()
}

/// The origin (`http://127.0.0.1:PORT`) of a page's URL.
fn origin_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    u.origin().ascii_serialization()
}

/// Open the approval page at `url` and press Approve, as a person in a browser: the page's
/// CSRF token, its own Origin, the PIN when given. The answer's status.
async fn approve_on_page(url: &str, pin: Option<&str>) -> u16 {
    l402_mcp::init_tls();
    let http = reqwest::Client::new();
    let html = http.get(url).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("Approve") && html.contains("21 sats"),
        "{html}"
    );
    let mut form = vec![("csrf", csrf_of(&html)), ("decision", "approve".to_owned())];
    if let Some(p) = pin {
        form.push(("pin", p.to_owned()));
    }
    http.post(url)
        .header("origin", origin_of(url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded(&form))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_elicitation_links_to_the_approval_page_which_guards_itself() {
    let (dir, seller, url) = market().await;
    let agent = asks_no_one(dir.path()).await;
    let (b0, s0) = (balance_sats(&agent).await, balance_sats(&seller).await);
    let text = failed(&call(&agent, "fetch_paid", json!({ "url": url })).await);
    let page = text
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.contains("/approve/"))
        .unwrap_or_else(|| panic!("no page link in {text}"))
        .to_owned();
    l402_mcp::init_tls();
    let http = reqwest::Client::new();
    let html = http.get(&page).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html);
    let post = |origin: Option<String>, form: Vec<(&'static str, String)>| {
        let mut req = http
            .post(&page)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded(&form));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let own = origin_of(&page);
    let approve = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("decision", "approve".to_owned()),
        ]
    };
    // Cross-origin, without Origin, without or with a wrong CSRF token, another Host: refused.
    for (origin, form) in [
        (Some("http://evil.example".to_owned()), approve(&csrf)),
        (None, approve(&csrf)),
        (Some(own.clone()), vec![("decision", "approve".to_owned())]),
        (Some(own.clone()), approve("0000")),
    ] {
        assert_eq!(post(origin, form).await.unwrap().status(), 403);
    }
    let rebound = http
        .get(&page)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403, "DNS rebinding");
    assert!(
        rebound.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(
        balance_sats(&agent).await,
        b0,
        "nothing paid by refused requests"
    );

    // With a PIN set, the page wants it.
    l402_mcp::approval::pin::set(
        l402_mcp::storage::Storage::open_sqlite(dir.path())
            .await
            .unwrap()
            .ledger()
            .as_ref(),
        "buyer",
        "2468",
        0,
    )
    .await
    .unwrap();
    let no_pin = post(Some(own.clone()), approve(&csrf)).await.unwrap();
    assert_eq!(no_pin.status(), 400);
    assert!(no_pin.text().await.unwrap().contains("PIN"));
    assert_eq!(balance_sats(&agent).await, b0);
    assert_eq!(approve_on_page(&page, Some("2468")).await, 200);
    let after = http.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(
        after.contains("id=decided") && after.contains("paid"),
        "{after}"
    );

    let r = ok(&call(&agent, "fetch_paid", json!({ "url": url })).await);
    assert_eq!(r["status"].as_u64(), Some(200), "{r}");
    assert_eq!(balance_sats(&agent).await, b0 - JOKE_SATS, "paid once");
    assert_eq!(balance_sats(&seller).await, s0 + JOKE_SATS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_url_elicitation_sends_the_human_to_the_page() {
    for modern in [false, true] {
        let (dir, seller, url) = market().await;
        let human = Human {
            url_only: true,
            ..Human::new(Answer::Page)
        };
        let agent = buyer(dir.path(), human.clone(), modern, 300).await;
        let (b0, s0) = (buyer_balance(&agent).await, balance_sats(&seller).await);
        let r = ok(&fetch(&agent, &url).await);
        assert_eq!(
            (
                r["status"].as_u64(),
                r["receipt"]["paid"].as_bool(),
                r["receipt"]["amount_sats"].as_u64()
            ),
            (Some(200), Some(true), Some(JOKE_SATS)),
            "modern={modern}: {r}"
        );
        assert_eq!(human.asked.load(Ordering::SeqCst), 1);
        assert!(
            human
                .last_question
                .lock()
                .unwrap()
                .contains("approval page")
        );
        assert_eq!(buyer_balance(&agent).await, b0 - JOKE_SATS);
        assert_eq!(balance_sats(&seller).await, s0 + JOKE_SATS);
        let _ = agent.cancel().await;
    }
}

/// The `event` names of the money events logged.
fn events(human: &Human) -> Vec<String> {
    human
        .logs
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["event"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)] // logging/setLevel (SEP-2577) is how 2025-11-25 clients ask for logs
async fn money_events_arrive_as_progress_and_log_notifications_without_secrets() {
    use rmcp::model::{LoggingLevel, NumberOrString, ProgressToken, SetLevelRequestParams};
    for modern in [false, true] {
        let (dir, seller, url) = market().await;
        let human = Human::new(Answer::Approve);
        let agent = buyer(dir.path(), human.clone(), modern, 300).await;
        if !modern {
            agent
                .set_level(SetLevelRequestParams::new(LoggingLevel::Info))
                .await
                .unwrap();
        }
        let with_meta = |name: &'static str, args: Value| {
            let mut p =
                CallToolRequestParams::new(name).with_arguments(args.as_object().cloned().unwrap());
            let mut meta = rmcp::model::RequestMetaObject::default();
            meta.set_progress_token(ProgressToken(NumberOrString::String("p1".into())));
            if modern {
                meta.set_log_level(LoggingLevel::Info);
            }
            p.meta = Some(meta);
            p
        };
        let r = ok(&agent
            .call_tool(with_meta("fetch_paid", json!({ "url": url })))
            .await
            .unwrap());
        assert_eq!(r["receipt"]["paid"], true, "{r}");
        let progress = human.progress.lock().unwrap().clone();
        let said = progress.join(" | ");
        for want in [
            "waits for a person's approval",
            "approved by a person",
            "reserved",
            "paid 21 sats",
        ] {
            assert!(
                said.contains(want),
                "modern={modern}: {want:?} not in {said}"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let logged = events(&human);
        for want in ["held", "approved", "reserved", "paid"] {
            assert!(
                logged.iter().any(|e| e == want),
                "modern={modern}: {want} not in {logged:?}"
            );
        }
        // A direct payment too: its preimage (returned to the caller) is in no notification.
        let inv = ok(&call(&seller, "create_invoice", json!({ "amount_sats": 5 })).await);
        let paid = ok(&agent
            .call_tool(with_meta("pay_invoice", json!({ "bolt11": inv["bolt11"] })))
            .await
            .unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let preimage = paid["preimage"].as_str().unwrap().to_owned();
        let all = format!(
            "{:?}{:?}",
            human.logs.lock().unwrap(),
            human.progress.lock().unwrap()
        );
        assert!(
            !all.contains(&preimage),
            "a preimage reached a notification"
        );
        let log = std::fs::read_to_string(dir.path().join("buyer.log")).unwrap();
        assert!(
            !log.contains(&preimage),
            "a paid preimage reached the trace log"
        );
        assert!(
            !all.contains("macaroon") && !all.contains("secret"),
            "{all}"
        );
        // A budget refusal is a warning.
        let big = ok(&call(&seller, "create_invoice", json!({ "amount_sats": 5000 })).await);
        let refused = failed(
            &agent
                .call_tool(with_meta("pay_invoice", json!({ "bolt11": big["bolt11"] })))
                .await
                .unwrap(),
        );
        assert!(refused.starts_with("price_above_cap"), "{refused}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            events(&human).iter().any(|e| e == "refused"),
            "{:?}",
            events(&human)
        );
        let _ = agent.cancel().await;
    }
}

/// (rmcp's client puts a progress token on every request, so progress is always asked for.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_notification_reaches_a_client_that_did_not_ask() {
    let (dir, _seller, url) = market().await;
    let human = Human::new(Answer::Approve);
    let agent = buyer(dir.path(), human.clone(), false, 300).await;
    ok(&fetch(&agent, &url).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(human.logs.lock().unwrap().is_empty());
}
