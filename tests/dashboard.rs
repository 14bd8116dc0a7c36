//! `l402-mcp dashboard` over HTTP: a one-time login link becomes an HttpOnly SameSite=Strict
//! session; the page shows the wallet; every form needs the session's CSRF token and this very
//! origin; a person approves a held payment and changes the budget from it. (The same page in a
//! real browser: tools/browser/run.sh.)
// A failed step in a test is a failed test: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use l402_mcp::app::App;
use l402_mcp::ops::buy::{self, PayInvoiceParams};
use l402_mcp::wallet::embedded::DEMO_GRANT_MSAT;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");

/// The dashboard process, stopped when dropped.
struct Dashboard {
    child: Child,
    url: String,
    login: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path) -> Dashboard {
    let mut child = Command::new(BIN)
        .args(["--json", "--wallet", "buyer", "--data-dir"])
        .arg(dir)
        .args(["dashboard", "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    Dashboard {
        child,
        url: v["url"].as_str().unwrap().to_owned(),
        login: v["login"].as_str().unwrap().to_owned(),
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_logs_in_once_approves_and_changes_the_budget_and_nothing_else_can() {
    let dir = tempfile::tempdir().unwrap();
    let clock = l402_mcp::clock::system();
    let buyer = App::open_embedded(dir.path(), "buyer", clock.clone())
        .await
        .unwrap();
    let seller = App::open_embedded(dir.path(), "seller", clock)
        .await
        .unwrap();
    let mut policy = buyer.approvals.policy().await.unwrap();
    policy.above_msat = Some(10_000);
    buyer.approvals.set_policy(&policy).await.unwrap();
    let (inv, _) = seller
        .seller
        .create_invoice(21_000, "a report", 600)
        .await
        .unwrap();
    let held = buy::pay_invoice(
        &buyer,
        PayInvoiceParams {
            bolt11: inv.bolt11,
            max_fee_sats: None,
            max_amount_sats: None,
        },
    )
    .await
    .unwrap_err();
    let id = held
        .message
        .split("(approval ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();

    let d = start(dir.path());
    l402_mcp::init_tls();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let origin = d.url.trim_end_matches('/').to_owned();
    assert_eq!(http.get(&d.url).send().await.unwrap().status(), 401);
    let bad = format!("{origin}/login?token=00");
    assert_eq!(http.get(&bad).send().await.unwrap().status(), 401);
    let login = http.get(&d.login).send().await.unwrap();
    assert_eq!(login.status(), 303);
    let set = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert_eq!(
        http.get(&d.login).send().await.unwrap().status(),
        401,
        "a login link works once"
    );
    let cookie = set.split(';').next().unwrap().to_owned();

    let page = http
        .get(&d.url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = page.text().await.unwrap();
    for want in [
        "100,000",
        "TEST SATS",
        "id=spend-chart",
        &id,
        "a report",
        "Approve",
    ] {
        assert!(html.contains(want), "{want} not in the page");
    }
    let csrf = html
        .split("name=csrf value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let post = |path: &str, origin: &str, body: String| {
        http.post(format!("{}{path}", d.url.trim_end_matches('/')))
            .header("cookie", &cookie)
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let settings = |csrf: &str| {
        form(&[
            ("csrf", csrf),
            ("per_payment_sats", "500"),
            ("daily_sats", "4321"),
            ("above_sats", "10"),
            ("timeout_secs", "300"),
        ])
    };
    // Refused: another origin, no CSRF token, a wrong one; the budget is as it was.
    for (o, body) in [
        ("http://evil.example", settings(&csrf)),
        (origin.as_str(), settings("")),
        (origin.as_str(), settings("abc")),
    ] {
        assert_eq!(post("/settings", o, body).await.unwrap().status(), 403);
    }
    assert_eq!(
        buyer.ledger.budget("buyer").await.unwrap().daily_msat,
        10_000_000
    );
    let saved = post("/settings", &origin, settings(&csrf)).await.unwrap();
    assert_eq!(saved.status(), 303);
    let b = buyer.ledger.budget("buyer").await.unwrap();
    assert_eq!(
        (b.daily_msat, b.per_payment_msat, b.hourly_msat),
        (4_321_000, 500_000, None)
    );

    let approve = format!("/approvals/{id}");
    assert_eq!(
        post(
            &approve,
            "http://evil.example",
            form(&[("csrf", &csrf), ("decision", "approve")])
        )
        .await
        .unwrap()
        .status(),
        403
    );
    assert_eq!(buyer.wallet.balance().await.unwrap().msat, DEMO_GRANT_MSAT);
    let done = post(
        &approve,
        &origin,
        form(&[("csrf", &csrf), ("decision", "approve")]),
    )
    .await
    .unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(
        buyer.wallet.balance().await.unwrap().msat,
        DEMO_GRANT_MSAT - 21_000
    );
    let after = http
        .get(&d.url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        after.contains("Nothing is waiting") && after.contains("4321"),
        "the page shows the change"
    );
    // Once: approving again pays nothing.
    let again = post(
        &approve,
        &origin,
        form(&[("csrf", &csrf), ("decision", "approve")]),
    )
    .await
    .unwrap();
    assert_eq!(again.status(), 400);
    assert_eq!(
        buyer.wallet.balance().await.unwrap().msat,
        DEMO_GRANT_MSAT - 21_000
    );
}

#[test]
fn the_dashboard_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["dashboard", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback only"));
}
