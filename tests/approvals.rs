//! Payments held for a human, through the library's public surface: the approval policy holds
//! them (nothing paid), a human's decision pays exactly the approved invoice once, and
//! denying, expiry, a wrong secret or PIN, or a budget that no longer allows it pay nothing.
// A failed step in a test is a failed test: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Trade, balance, trade};
use l402_mcp::approval::{ApprovalPolicy, Channel, Grant, pin};
use l402_mcp::budget::BudgetPolicy;
use l402_mcp::fetch::{FetchRequest, Fetcher};
use l402_mcp::netguard::NetPolicy;
use l402_mcp::ops::Failure;
use l402_mcp::ops::approve;
use l402_mcp::ops::buy::{self, FetchPaidParams, Held, PayInvoiceParams};
use l402_mcp::storage::{ApprovalStatus, Direction, PaymentFilter};
use l402_mcp::wallet::embedded::DEMO_GRANT_MSAT;

const PRICE: u64 = 21_000;

async fn policy(t: &Trade, above_sats: Option<u64>, new_host: bool) {
    t.buyer
        .approvals
        .set_policy(&ApprovalPolicy {
            above_msat: above_sats.map(|s| s * 1000),
            new_host,
            timeout_secs: 300,
        })
        .await
        .unwrap();
}

fn params(bolt11: &str) -> PayInvoiceParams {
    PayInvoiceParams {
        bolt11: bolt11.to_owned(),
        max_fee_sats: None,
        max_amount_sats: None,
    }
}

/// The approval id in an `approval_required` failure.
fn held_id(f: &Failure) -> String {
    assert_eq!(f.code, "approval_required", "{f}");
    let rest = f
        .message
        .split("(approval ")
        .nth(1)
        .expect("an approval id");
    rest.split(',').next().unwrap().to_owned()
}

async fn outgoing(t: &Trade) -> usize {
    t.buyer
        .ledger
        .list_payments(
            "buyer",
            &PaymentFilter {
                direction: Some(Direction::Out),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap()
        .len()
}

/// Ask to pay `bolt11`; the id of the approval that holds it.
async fn hold(t: &Trade, bolt11: &str) -> String {
    held_id(
        &buy::pay_invoice(&t.buyer, params(bolt11))
            .await
            .unwrap_err(),
    )
}

/// How many approvals are pending.
async fn pending(t: &Trade) -> usize {
    approve::list(&t.buyer, false, 10)
        .await
        .unwrap()
        .approvals
        .len()
}

fn cli() -> Grant<'static> {
    Grant::by(Channel::Cli)
}

#[tokio::test]
async fn a_held_payment_is_paid_once_when_a_human_approves_it() {
    let t = trade().await;
    policy(&t, Some(10), false).await;
    let invoice = t.invoice(PRICE).await;

    let f = buy::pay_invoice(&t.buyer, params(&invoice))
        .await
        .unwrap_err();
    let id = held_id(&f);
    assert!(f.message.contains("l402-mcp approve"), "{f}");
    assert!(f.message.contains("nothing was paid"), "{f}");
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT);
    assert_eq!(outgoing(&t).await, 0, "nothing reserved while waiting");
    // Asking again finds the same question.
    let again = buy::pay_invoice(&t.buyer, params(&invoice))
        .await
        .unwrap_err();
    assert_eq!(held_id(&again), id);
    let listed = approve::list(&t.buyer, false, 10).await.unwrap();
    assert_eq!(listed.approvals.len(), 1);
    assert_eq!(listed.approvals[0].amount_sats, 21);
    assert_eq!(listed.approvals[0].reasons, ["above_sats"]);

    let done = approve::approve(&t.buyer, &id, cli()).await.unwrap();
    assert!(done.paid);
    assert_eq!(
        (done.amount_sats, done.approval.status.as_str()),
        (21, "paid")
    );
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - PRICE);
    assert_eq!(balance(&t.seller).await, DEMO_GRANT_MSAT + PRICE);

    // No replay: deciding again changes nothing and pays nothing.
    for _ in 0..2 {
        let f = approve::approve(&t.buyer, &id, cli()).await.unwrap_err();
        assert_eq!(f.code, "approval_not_pending", "{f}");
    }
    assert_eq!(
        approve::deny(&t.buyer, &id, cli()).await.unwrap_err().code,
        "approval_not_pending"
    );
    // The agent's next call is answered from the approval: the first receipt, nothing new.
    let Held::Done(r) = buy::pay_invoice_or_held(&t.buyer, params(&invoice))
        .await
        .unwrap()
    else {
        panic!("asked again after paying")
    };
    assert!(r.already_paid && !r.paid);
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - PRICE);
    assert_eq!(outgoing(&t).await, 1);
}

#[tokio::test]
async fn denied_expired_and_unanswered_payments_pay_nothing() {
    let t = trade().await;
    policy(&t, Some(10), false).await;
    let invoice = t.invoice(PRICE).await;
    let id = hold(&t, &invoice).await;
    let denied = approve::deny(&t.buyer, &id, cli()).await.unwrap();
    assert_eq!(denied.approval.status, "denied");
    assert_eq!(
        approve::approve(&t.buyer, &id, cli())
            .await
            .unwrap_err()
            .code,
        "approval_not_pending"
    );
    // Asked again after a denial: a new question, which nobody answers in time.
    t.clock.advance(1);
    let second = hold(&t, &invoice).await;
    assert_ne!(second, id);
    t.clock.advance(300);
    let f = approve::approve(&t.buyer, &second, cli())
        .await
        .unwrap_err();
    assert_eq!(f.code, "approval_expired", "{f}");
    assert_eq!(pending(&t).await, 0);
    let all = approve::list(&t.buyer, true, 10).await.unwrap();
    let statuses: Vec<&str> = all.approvals.iter().map(|a| a.status.as_str()).collect();
    assert_eq!(statuses, ["expired", "denied"]);
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT);
    assert_eq!(outgoing(&t).await, 0);
    assert_eq!(
        approve::approve(&t.buyer, "nope", cli())
            .await
            .unwrap_err()
            .code,
        "approval_unknown"
    );
}

#[tokio::test]
async fn an_approval_pays_its_own_invoice_and_no_other() {
    let t = trade().await;
    policy(&t, Some(10), false).await;
    let (a, b) = (t.invoice(PRICE).await, t.invoice(PRICE + 1000).await);
    let held_a = match buy::pay_invoice_or_held(&t.buyer, params(&a))
        .await
        .unwrap()
    {
        Held::ForApproval(t) => t,
        Held::Done(_) => panic!("paid without asking"),
    };
    let held_b = match buy::pay_invoice_or_held(&t.buyer, params(&b))
        .await
        .unwrap()
    {
        Held::ForApproval(t) => t,
        Held::Done(_) => panic!("paid without asking"),
    };
    assert_ne!(held_a.approval.id, held_b.approval.id);
    // An App card must show the secret of the approval it approves: A's does not open B.
    let wrong = Grant {
        secret: Some(held_a.secret.expose()),
        ..Grant::by(Channel::App)
    };
    assert_eq!(
        approve::approve(&t.buyer, &held_b.approval.id, wrong)
            .await
            .unwrap_err()
            .code,
        "approval_wrong_secret"
    );
    assert_eq!(
        approve::approve(&t.buyer, &held_b.approval.id, Grant::by(Channel::App))
            .await
            .unwrap_err()
            .code,
        "approval_wrong_secret"
    );
    let right = Grant {
        secret: Some(held_a.secret.expose()),
        ..Grant::by(Channel::App)
    };
    let done = approve::approve(&t.buyer, &held_a.approval.id, right)
        .await
        .unwrap();
    assert_eq!(done.payment_hash, held_a.approval.payment_hash.to_hex());
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - PRICE, "A only");
    let b_now = t
        .buyer
        .approvals
        .get(&held_b.approval.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b_now.status, ApprovalStatus::Pending);
    assert!(
        t.buyer
            .payer
            .find(&held_b.approval.payment_hash)
            .await
            .unwrap()
            .is_none(),
        "B was never paid"
    );
}

#[tokio::test]
async fn the_budget_is_checked_again_when_a_human_approves() {
    let t = trade().await;
    policy(&t, Some(10), false).await;
    let invoice = t.invoice(PRICE).await;
    let id = hold(&t, &invoice).await;
    let tight = BudgetPolicy {
        daily_msat: 15_000,
        ..BudgetPolicy::default()
    };
    t.buyer
        .ledger
        .set_budget("buyer", &tight, common::T0)
        .await
        .unwrap();
    let f = approve::approve(&t.buyer, &id, cli()).await.unwrap_err();
    assert_eq!(f.code, "budget_exceeded", "{f}");
    let a = t.buyer.approvals.get(&id).await.unwrap().unwrap();
    assert_eq!(a.status, ApprovalStatus::Failed);
    assert!(a.error.unwrap().contains("budget"));
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT);

    // A payment the budget refuses is refused at once, nobody is asked.
    let f = buy::pay_invoice(&t.buyer, params(&t.invoice(PRICE).await))
        .await
        .unwrap_err();
    assert_eq!(f.code, "budget_exceeded", "{f}");
    assert_eq!(pending(&t).await, 0);
    // Under the threshold, nothing is asked.
    buy::pay_invoice(&t.buyer, params(&t.invoice(3_000).await))
        .await
        .unwrap();
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 3_000);
}

#[tokio::test]
async fn a_pin_guards_the_terminal_page_and_dashboard_but_not_the_clients_dialog() {
    let t = trade().await;
    policy(&t, Some(10), false).await;
    pin::set(t.buyer.ledger.as_ref(), "buyer", "4711", common::T0)
        .await
        .unwrap();
    let ids = [
        hold(&t, &t.invoice(PRICE).await).await,
        hold(&t, &t.invoice(PRICE).await).await,
    ];
    // Wrong PINs count together on every channel: the sixth in a row finds entry locked.
    let mut codes = Vec::new();
    for channel in [Channel::Cli, Channel::Page, Channel::Dashboard] {
        let f = approve::approve(&t.buyer, &ids[0], Grant::by(channel))
            .await
            .unwrap_err();
        assert_eq!(f.code, "pin_required", "{f}");
        let wrong = Grant {
            pin: Some("1234"),
            ..Grant::by(channel)
        };
        codes.push(
            approve::approve(&t.buyer, &ids[0], wrong)
                .await
                .unwrap_err()
                .code,
        );
        codes.push(
            approve::deny(&t.buyer, &ids[0], wrong)
                .await
                .unwrap_err()
                .code,
        );
    }
    assert_eq!(
        codes,
        ["pin_wrong"; 5]
            .into_iter()
            .chain(["pin_locked"])
            .collect::<Vec<_>>()
    );
    let right = Grant {
        pin: Some("4711"),
        ..Grant::by(Channel::Page)
    };
    // Locked for a minute, even for the right PIN.
    let f = approve::approve(&t.buyer, &ids[0], right)
        .await
        .unwrap_err();
    assert_eq!(f.code, "pin_locked", "{f}");
    t.clock.advance(60);
    approve::approve(&t.buyer, &ids[0], right).await.unwrap();
    approve::approve(&t.buyer, &ids[1], Grant::by(Channel::Elicitation))
        .await
        .unwrap();
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 2 * PRICE);
    assert!(
        pin::set(t.buyer.ledger.as_ref(), "buyer", "12", common::T0)
            .await
            .is_err()
    );
}

/// A fetcher for the buyer that may reach loopback shops.
fn fetcher(t: &Trade) -> Fetcher {
    Fetcher::new(
        t.buyer.payer.clone(),
        t.buyer.storage.tokens(),
        t.clock.clone(),
        NetPolicy {
            allow_loopback: true,
            ..NetPolicy::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn the_first_payment_to_a_new_host_waits_and_the_next_call_uses_the_approval() {
    let t = trade().await;
    policy(&t, None, true).await;
    let addr = common::fixture::shop(t.seller.seller.clone(), PRICE).await;
    let buyer = fetcher(&t);
    let url = format!("http://{addr}/report?day=1");
    let fetch = |url: &str| FetchPaidParams {
        url: url.to_owned(),
        method: None,
        headers: None,
        body: None,
        max_price_sats: None,
        timeout_secs: None,
        max_response_bytes: None,
        prefer_scheme: None,
        close_session: None,
    };
    let f = buy::fetch_paid(&buyer, fetch(&url)).await.unwrap_err();
    let id = held_id(&f);
    assert!(
        f.message
            .contains("call fetch_paid again with the same URL"),
        "{f}"
    );
    // Another query of the same resource is the same question.
    let again = buy::fetch_paid(&buyer, fetch(&format!("http://{addr}/report?day=2")))
        .await
        .unwrap_err();
    assert_eq!(held_id(&again), id);
    let a = t.buyer.approvals.get(&id).await.unwrap().unwrap();
    assert_eq!(a.reasons, ["new_host"]);
    assert_eq!(a.host.as_deref(), Some("127.0.0.1"));
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT);

    approve::approve(&t.buyer, &id, cli()).await.unwrap();
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - PRICE);
    let r = buy::fetch_paid(&buyer, fetch(&url)).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "the goods"));
    assert!(!r.receipt.paid && r.receipt.token_reused);
    assert_eq!(
        balance(&t.buyer).await,
        DEMO_GRANT_MSAT - PRICE,
        "paid once"
    );
    // The host is known now: another resource there is paid without asking.
    let r = buy::fetch_paid(&buyer, fetch(&format!("http://{addr}/other")))
        .await
        .unwrap();
    assert!(r.receipt.paid);
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 2 * PRICE);
    // fetch_paid through the library's raw request is held the same way (no bypass).
    let other = fetcher(&t);
    policy(&t, Some(1), false).await;
    assert!(
        other
            .fetch(&FetchRequest::get(&format!("http://{addr}/third")))
            .await
            .is_err()
    );
    assert_eq!(balance(&t.buyer).await, DEMO_GRANT_MSAT - 2 * PRICE);
}

/// `l402-mcp` on `data`, with nothing from this machine's environment, its controlling
/// terminal dropped (`setsid`): as an agent's shell tool runs it.
fn cli_run(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("setsid")
        .arg(env!("CARGO_BIN_EXE_l402-mcp"))
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--wallet",
            "buyer",
            "--json",
        ])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", data)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run l402-mcp")
}

fn cli_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_lists_approves_and_denies_and_wants_a_terminal_for_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let clock = l402_mcp::clock::system();
    let buyer = l402_mcp::app::App::open_embedded(dir.path(), "buyer", clock.clone())
        .await
        .unwrap();
    let seller = l402_mcp::app::App::open_embedded(dir.path(), "seller", clock)
        .await
        .unwrap();
    let set = cli_run(
        dir.path(),
        &[
            "approvals",
            "set",
            "--above-sats",
            "10",
            "--timeout-secs",
            "600",
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(cli_json(&set)["policy"]["above_sats"], 10);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (inv, _) = seller
            .seller
            .create_invoice(PRICE, "cli", 600)
            .await
            .unwrap();
        ids.push(held_id(
            &buy::pay_invoice(&buyer, params(&inv.bolt11))
                .await
                .unwrap_err(),
        ));
    }
    let listed = cli_json(&cli_run(dir.path(), &["approvals"]));
    let listed: Vec<&str> = listed["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(ids.iter().all(|id| listed.contains(&id.as_str())));

    let approved = cli_run(dir.path(), &["approve", &ids[0]]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let approved = cli_json(&approved);
    assert_eq!(
        (approved["paid"].as_bool(), approved["amount_sats"].as_u64()),
        (Some(true), Some(21))
    );
    let replay = cli_run(dir.path(), &["approve", &ids[0]]);
    assert!(!replay.status.success());
    assert_eq!(cli_json(&replay)["code"], "approval_not_pending");
    assert_eq!(balance(&buyer).await, DEMO_GRANT_MSAT - PRICE);

    // With a PIN set, a process without a terminal can neither approve nor change the policy.
    pin::set(
        buyer.ledger.as_ref(),
        "buyer",
        "4711",
        l402_mcp::clock::system().now(),
    )
    .await
    .unwrap();
    for args in [
        vec!["approve", ids[1].as_str()],
        vec!["deny", ids[1].as_str()],
        vec!["approvals", "set", "--above-sats", "none"],
        vec!["approvals", "pin", "--clear"],
    ] {
        let out = cli_run(dir.path(), &args);
        assert!(!out.status.success(), "{args:?}");
        let err = cli_json(&out)["error"].as_str().unwrap().to_owned();
        assert!(err.contains("terminal"), "{args:?}: {err}");
    }
    assert_eq!(balance(&buyer).await, DEMO_GRANT_MSAT - PRICE);
    assert_eq!(
        buyer.approvals.policy().await.unwrap().above_msat,
        Some(10_000)
    );
    assert!(pin::is_set(buyer.ledger.as_ref(), "buyer").await.unwrap());
    // Denying without a PIN: nothing paid.
    pin::clear(buyer.ledger.as_ref(), "buyer", 0).await.unwrap();
    let denied = cli_json(&cli_run(dir.path(), &["deny", &ids[1]]));
    assert_eq!(denied["approval"]["status"], "denied");
    assert_eq!(balance(&buyer).await, DEMO_GRANT_MSAT - PRICE);
}

/// The approval page takes a POST whose `Origin` is its own as a person's click: the agent's
/// fetch_paid (loopback allowed, as here) must not be able to send one, or, with no PIN set, it
/// could read the page's CSRF token and approve its own payment.
#[tokio::test]
async fn fetch_paid_never_sends_a_browsers_origin() {
    let t = trade().await;
    let f = fetcher(&t);
    for (name, value) in [
        ("Origin", "http://127.0.0.1:1"),
        ("Sec-Fetch-Site", "same-origin"),
    ] {
        let mut req = FetchRequest::get("http://127.0.0.1:1/approve/x");
        req.headers = vec![(name.into(), value.into())];
        let e = f.fetch(&req).await.unwrap_err();
        assert!(
            matches!(e, l402_mcp::fetch::FetchError::Invalid(_)) && e.to_string().contains(name),
            "{e}"
        );
    }
}
