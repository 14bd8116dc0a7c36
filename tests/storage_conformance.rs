//! The storage port's conformance suite: every rule the ledger, the token cache, the seller's
//! store and the embedded books promise, written once ([`suite`]) and run against each engine.
//!
//! - `sqlite::*` run in `cargo test`, each on a fresh data dir; `sqlite_pool_reads::*` the same
//!   with every read through sqlx's pool instead of inline.
//! - `postgres::*` need a server: `tools/postgres/test.sh` starts a throwaway one and runs them
//!   (`L402_TEST_DATABASE_URL`); each test works in a schema of its own.

// A failed step in a test is a failed test: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bitcoin::secp256k1::SecretKey;
use l402_mcp::bolt11::{self, DecodedInvoice, Network, NewInvoice};
use l402_mcp::budget::{BudgetPolicy, BudgetRefusal, Window};
use l402_mcp::l402::{Msat, PaymentHash, Preimage, RootKey, Scheme, TokenId};
use l402_mcp::payee::Payee;
use l402_mcp::storage::{
    ApprovalRequest, ApprovalStatus, BuyerSession, BuyerSessionStatus, CredentialScope, Credit,
    Decided, Decision, Direction, EmbeddedBooks, EmbeddedInvoice, Income, NewApproval,
    NewChallenge, NewMintedToken, NewPayment, NewSession, Opened as Asked, PRUNE_BATCH, PaidRecord,
    PaymentFilter, RefKey, RefundStatus, Reservation, ReserveError, Retention, SettleError,
    Settled, Settlement, Status, Storage,
};

const T0: u64 = 1_800_000_000;
const DAY: u64 = 24 * 3600;

/// A storage opened for one test, and what must live as long as it.
struct Opened {
    storage: Storage,
    /// Where another instance connects to the same data (PostgreSQL).
    url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh schema on PostgreSQL and three instances on it (three connection pools, as three
/// processes of a fleet would have).
async fn three_instances() -> (Opened, Vec<Storage>) {
    let opened = postgres().await;
    let url = opened.url.clone().unwrap();
    let mut stores = vec![opened.storage.clone()];
    for _ in 0..2 {
        stores.push(Storage::connect_postgres(&url).await.unwrap());
    }
    (opened, stores)
}

/// A fresh SQLite storage.
async fn sqlite() -> Opened {
    sqlite_reading(false).await
}

/// A fresh SQLite storage reading through sqlx's pool only (the path taken when no inline
/// connection is free).
async fn sqlite_pool_reads() -> Opened {
    sqlite_reading(true).await
}

async fn sqlite_reading(through_pool: bool) -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let storage = if through_pool {
        Storage::open_sqlite_pool_reads(dir.path()).await
    } else {
        Storage::open_sqlite(dir.path()).await
    };
    Opened {
        storage: storage.unwrap(),
        url: None,
        _dir: Some(dir),
    }
}

/// A fresh schema on the PostgreSQL of `L402_TEST_DATABASE_URL`.
async fn postgres() -> Opened {
    let schema = format!("conf_{}", hex::encode(rand_bytes::<8>()));
    let url = common::pg::fresh_schema(&schema).await;
    Opened {
        storage: Storage::connect_postgres(&url).await.unwrap(),
        url: Some(url),
        _dir: None,
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    b
}

/// A signed regtest invoice for `amount_msat`, with a random preimage.
fn invoice(amount_msat: u64) -> (DecodedInvoice, Preimage) {
    invoice_for(amount_msat, 3600)
}

/// A signed regtest invoice for `amount_msat` made at `T0`, payable for `expiry_secs`.
fn invoice_for(amount_msat: u64, expiry_secs: u64) -> (DecodedInvoice, Preimage) {
    let preimage = Preimage(rand_bytes());
    let key = SecretKey::from_slice(&[0x42; 32]).unwrap();
    let bolt11 = bolt11::create(
        &key,
        &NewInvoice {
            network: Network::Regtest,
            amount_msat: Some(amount_msat),
            description: "conformance",
            payment_hash: preimage.payment_hash(),
            payment_secret: rand_bytes(),
            timestamp: T0,
            expiry_secs,
        },
    )
    .unwrap();
    (bolt11::decode(&bolt11).unwrap(), preimage)
}

fn msat(v: u64) -> Msat {
    Msat::from_msat(v)
}

fn new<'a>(
    wallet: &'a str,
    inv: &'a DecodedInvoice,
    max_fee: u64,
    payee: Option<&'a Payee>,
) -> NewPayment<'a> {
    NewPayment {
        wallet,
        invoice: inv,
        amount: msat(inv.amount_msat.unwrap()),
        max_fee: msat(max_fee),
        url: Some("https://seller.example/x"),
        payee,
        credential: None,
    }
}

/// Embedded accounts "payer" (10,000 msat) and "payee" (empty).
async fn payer_and_payee(books: &Arc<dyn EmbeddedBooks>) {
    open_accounts(
        books,
        &[("payer", "node-p", 10_000), ("payee", "node-q", 0)],
    )
    .await;
}

/// Embedded accounts "seller" (empty) and "buyer" (50,000 msat).
async fn seller_and_buyer(books: &Arc<dyn EmbeddedBooks>) {
    open_accounts(
        books,
        &[("seller", "node-s", 0), ("buyer", "node-b", 50_000)],
    )
    .await;
}

/// Embedded accounts by name, node id and demo grant (msat).
async fn open_accounts(books: &Arc<dyn EmbeddedBooks>, accounts: &[(&str, &str, u64)]) {
    for (name, node, grant) in accounts {
        books
            .open_account(name, &rand_bytes(), node, msat(*grant), T0)
            .await
            .unwrap();
    }
}

/// Invoice `inv` paid by embedded account "buyer", recorded as payment `payment_id`, which
/// buys no credential.
async fn settle_bare(
    books: &Arc<dyn EmbeddedBooks>,
    inv: &DecodedInvoice,
    payment_id: i64,
) -> (Settled, bool) {
    let record = PaidRecord {
        payment_id,
        wallet: "buyer",
        credential: None,
    };
    books
        .settle_recorded("buyer", &inv.bolt11, &inv.payment_hash, T0, &record)
        .await
        .unwrap()
}

fn reserved(r: Result<Reservation, ReserveError>) -> i64 {
    match r {
        Ok(Reservation::Reserved { id }) => id,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

fn refused_window(r: Result<Reservation, ReserveError>) -> Window {
    match r {
        Err(ReserveError::Refused(BudgetRefusal::Window { window, .. })) => window,
        other => panic!("expected a window refusal, got {other:?}"),
    }
}

/// An approval of `inv` for `subject`, open until `expires_at`, with secret hash `secret`.
fn approval<'a>(
    id: &'a str,
    subject: &'a str,
    inv: &'a DecodedInvoice,
    request: &'a ApprovalRequest,
    secret: &'a str,
    expires_at: u64,
) -> NewApproval<'a> {
    NewApproval {
        id,
        wallet: "w",
        subject,
        payment_hash: inv.payment_hash,
        bolt11: &inv.bolt11,
        amount: msat(inv.amount_msat.unwrap()),
        host: Some("seller.example"),
        url: Some("https://seller.example/x"),
        description: inv.description.as_deref(),
        reasons: &["above_sats", "new_host"],
        request,
        secret_hash: secret,
        expires_at,
    }
}

fn decision(approve: bool, secret: Option<&str>) -> Decision<'_> {
    Decision {
        approve,
        by: "cli",
        secret_hash: secret,
    }
}

/// A credential for `https://api.example` under `prefix`, expiring at `expires_at`.
fn cached_token(prefix: &str, expires_at: Option<u64>) -> l402_mcp::storage::CachedToken {
    CredentialScope {
        origin: "https://api.example".into(),
        path_prefix: prefix.into(),
        scheme: Scheme::L402,
        macaroon: vec![2, 1, 0, 7],
        expires_at,
    }
    .with_proof(Preimage([9; 32]), PaymentHash(rand_bytes()))
}

/// The suite: one function per rule, each taking a fresh storage.
mod suite {
    use super::*;

    pub async fn budgets(s: &Storage) {
        let l = s.ledger();
        assert_eq!(l.budget("w").await.unwrap(), BudgetPolicy::default());
        let p = BudgetPolicy {
            daily_msat: 5_000,
            hourly_msat: Some(2_000),
            allow_hosts: vec!["example.com".into()],
            ..BudgetPolicy::default()
        };
        l.set_budget("w", &p, T0).await.unwrap();
        assert_eq!(l.budget("w").await.unwrap(), p);
        assert_eq!(l.budget("other").await.unwrap(), BudgetPolicy::default());
        l.set_setting("k", "{\"a\":1}", T0).await.unwrap();
        assert_eq!(l.setting("k").await.unwrap().as_deref(), Some("{\"a\":1}"));
        assert!(l.wallets().await.unwrap().contains(&"w".to_owned()));
    }

    pub async fn an_invoice_is_paid_at_most_once(s: &Storage) {
        let l = s.ledger();
        let policy = BudgetPolicy::default();
        let (inv, pre) = invoice(10_000);
        let id = reserved(l.reserve(&new("w", &inv, 1_000, None), &policy, T0).await);
        // In flight: not reserved again.
        assert!(matches!(
            l.reserve(&new("w", &inv, 1_000, None), &policy, T0).await,
            Ok(Reservation::InFlight(p)) if p.id == id
        ));
        let settled = Settlement {
            preimage: Some(&pre),
            fee: msat(7),
            note: None,
        };
        l.mark_succeeded(id, &settled, T0 + 1).await.unwrap();
        match l
            .reserve(&new("w", &inv, 1_000, None), &policy, T0 + 2)
            .await
        {
            Ok(Reservation::AlreadyPaid(p)) => {
                assert_eq!(
                    (p.id, p.status, p.fee, p.preimage),
                    (id, Status::Succeeded, msat(7), Some(pre))
                );
                assert_eq!(p.settled_at, Some(T0 + 1));
            }
            other => panic!("{other:?}"),
        }
        // Another wallet is another payer.
        reserved(l.reserve(&new("v", &inv, 1_000, None), &policy, T0).await);
        // A failed payment releases everything; the invoice may be reserved again.
        let (inv2, _) = invoice(10_000);
        let id2 = reserved(l.reserve(&new("w", &inv2, 1_000, None), &policy, T0).await);
        l.mark_failed(id2, "no route", T0).await.unwrap();
        let p = l.payment(id2).await.unwrap().unwrap();
        assert_eq!(
            (p.status, p.reserved, p.error.as_deref()),
            (Status::Failed, Msat::ZERO, Some("no route"))
        );
        let id3 = reserved(l.reserve(&new("w", &inv2, 1_000, None), &policy, T0).await);
        assert_ne!(id2, id3);
        let live = l
            .payment_by_hash("w", Direction::Out, &inv2.payment_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live.id, id3, "the live row, not the failed one");
        // Failing a payment that is not pending changes nothing.
        l.mark_failed(id, "late", T0).await.unwrap();
        assert_eq!(
            l.payment(id).await.unwrap().unwrap().status,
            Status::Succeeded
        );
    }

    /// The windows are exact at every second, whatever the history: payments created around
    /// every edge (the day's and the hour's start, minute and hour boundaries), in every state
    /// (pending however old, settled with a fee, failed, failed then found paid), summed by the
    /// ledger and by hand at each moment a row enters or leaves a window.
    pub async fn windows_are_exact_at_every_second(s: &Storage) {
        let l = s.ledger();
        let policy = BudgetPolicy {
            per_payment_msat: u64::MAX / 8,
            daily_msat: u64::MAX / 8,
            ..BudgetPolicy::default()
        };
        let d = DAY as i64;
        let offsets: [i64; 20] = [
            -d - 61,
            -d - 1,
            -d,
            -d + 1,
            -d + 59,
            -d + 60,
            -d + 3599,
            -7201,
            -3601,
            -3600,
            -3599,
            -3541,
            -61,
            -60,
            -59,
            -1,
            0,
            1,
            37,
            119,
        ];
        #[derive(Clone, Copy)]
        enum End {
            Pending,
            Paid(u64),
            Failed,
            FailedThenPaid,
        }
        let ends = [
            End::Pending,
            End::Paid(3),
            End::Failed,
            End::FailedThenPaid,
            End::Paid(0),
        ];
        // (created_at, status at the end, what it holds while pending, what it holds when paid)
        let mut rows = Vec::new();
        for (i, off) in offsets.iter().enumerate() {
            let created = (T0 as i64 + off) as u64;
            let end = ends[i % ends.len()];
            let amount = 1_000 * (i as u64 + 1);
            let max_fee = 10 * i as u64;
            let (inv, pre) = invoice(amount);
            let id = reserved(
                l.reserve(&new("w", &inv, max_fee, None), &policy, created)
                    .await,
            );
            let paid = |fee: u64| Settlement {
                preimage: Some(&pre),
                fee: msat(fee),
                note: None,
            };
            let (status, fee) = match end {
                End::Pending => (Status::Pending, 0),
                End::Paid(fee) => {
                    l.mark_succeeded(id, &paid(fee), created + 2).await.unwrap();
                    (Status::Succeeded, fee)
                }
                End::Failed => {
                    l.mark_failed(id, "no route", created + 1).await.unwrap();
                    (Status::Failed, 0)
                }
                End::FailedThenPaid => {
                    l.mark_failed(id, "timeout", created + 1).await.unwrap();
                    l.mark_succeeded(id, &paid(1), created + 9).await.unwrap();
                    (Status::Succeeded, 1)
                }
            };
            rows.push((created, status, amount + max_fee, amount + fee));
        }
        let expected = |now: u64, span: u64| -> u64 {
            rows.iter()
                .map(|&(created, status, reserved, cost)| match status {
                    Status::Pending => reserved,
                    Status::Succeeded if created >= now.saturating_sub(span) => cost,
                    _ => 0,
                })
                .sum()
        };
        let mut moments: Vec<u64> = vec![T0, T0 + 1, T0 + 59, T0 + 60, T0 + 3600, T0 + DAY];
        for &(created, ..) in &rows {
            for delta in [
                0,
                1,
                59,
                60,
                61,
                3599,
                3600,
                3601,
                DAY - 1,
                DAY,
                DAY + 1,
                DAY + 60,
            ] {
                moments.push(created + delta);
            }
        }
        moments.sort_unstable();
        moments.dedup();
        let reserved_now: u64 = rows
            .iter()
            .filter(|r| r.1 == Status::Pending)
            .map(|r| r.2)
            .sum();
        for now in moments {
            let (_, used) = l.budget_and_use("w", None, now).await.unwrap();
            assert_eq!(
                (used.daily_msat, used.hourly_msat, used.reserved_msat),
                (expected(now, DAY), expected(now, 3600), reserved_now),
                "at T0{:+}",
                now as i64 - T0 as i64
            );
            // A reservation reads the same windows (on PostgreSQL through its own function):
            // with room for one msat less than it needs, it is refused with exactly that left.
            let need = 5_000;
            for (window, used) in [
                (Window::Daily, expected(now, DAY)),
                (Window::Hourly, expected(now, 3600)),
            ] {
                let (inv, _) = invoice(need);
                let cap = used + need - 1;
                let tight = BudgetPolicy {
                    per_payment_msat: u64::MAX / 8,
                    daily_msat: if window == Window::Daily {
                        cap
                    } else {
                        u64::MAX / 8
                    },
                    hourly_msat: (window == Window::Hourly).then_some(cap),
                    ..BudgetPolicy::default()
                };
                match l.reserve(&new("w", &inv, 0, None), &tight, now).await {
                    Err(ReserveError::Refused(BudgetRefusal::Window {
                        window: w,
                        remaining_msat,
                        ..
                    })) => assert_eq!(
                        (w, remaining_msat),
                        (window, need - 1),
                        "at T0{:+}",
                        now as i64 - T0 as i64
                    ),
                    other => panic!("at T0{:+}: {other:?}", now as i64 - T0 as i64),
                }
            }
        }
        // Totals older than any window are forgotten; the windows still hold what they hold.
        l.prune_windows("w", T0 + 3 * DAY).await.unwrap();
        for now in [T0 + DAY + 100, T0 + 3 * DAY] {
            let (_, used) = l.budget_and_use("w", None, now).await.unwrap();
            assert_eq!(
                (used.daily_msat, used.hourly_msat),
                (expected(now, DAY), expected(now, 3600))
            );
        }
        assert_eq!(
            l.list_payments("w", &PaymentFilter::default(), 100)
                .await
                .unwrap()
                .len(),
            rows.len()
        );
    }

    pub async fn windows_hold_reservations_and_spend(s: &Storage) {
        let l = s.ledger();
        let policy = BudgetPolicy {
            daily_msat: 60_000,
            hourly_msat: Some(45_000),
            per_host_daily_msat: Some(21_000),
            ..BudgetPolicy::default()
        };
        let a = Payee::of_host("api.example.com");
        let mut a2 = Payee::of_host("localhost");
        a2.add_address("127.0.0.1".parse().unwrap());
        let loopback = Payee::of_host("127.0.0.1");
        let other = Payee::of_host("other.example");
        // Pending: amount + max fee held.
        let (i1, p1) = invoice(10_000);
        let id1 = reserved(
            l.reserve(&new("w", &i1, 1_000, Some(&a)), &policy, T0)
                .await,
        );
        let (_, used) = l.budget_and_use("w", Some(&a), T0).await.unwrap();
        assert_eq!(
            (used.daily_msat, used.reserved_msat, used.host_daily_msat),
            (11_000, 11_000, 11_000)
        );
        // Settled: amount + actual fee.
        l.mark_succeeded(
            id1,
            &Settlement {
                preimage: Some(&p1),
                fee: msat(10),
                note: None,
            },
            T0,
        )
        .await
        .unwrap();
        let (_, used) = l.budget_and_use("w", Some(&a), T0).await.unwrap();
        assert_eq!(
            (used.daily_msat, used.reserved_msat, used.host_daily_msat),
            (10_010, 0, 10_010)
        );
        // www.example.com is api.example.com's registrable domain: one payee.
        let www = Payee::of_host("www.example.com");
        let (i2, _) = invoice(10_000);
        assert_eq!(
            refused_window(
                l.reserve(&new("w", &i2, 1_000, Some(&www)), &policy, T0)
                    .await
            ),
            Window::HostDaily
        );
        // One server under two names: localhost (which resolved to 127.0.0.1) and 127.0.0.1.
        let (i3, _) = invoice(10_000);
        reserved(l.reserve(&new("w", &i3, 0, Some(&a2)), &policy, T0).await);
        let (i4, _) = invoice(12_000);
        assert_eq!(
            refused_window(
                l.reserve(&new("w", &i4, 0, Some(&loopback)), &policy, T0)
                    .await
            ),
            Window::HostDaily
        );
        // The hourly window: 20_010 held in the hour, 45_000 cap.
        let (i5, _) = invoice(25_000);
        assert_eq!(
            refused_window(
                l.reserve(&new("w", &i5, 0, Some(&other)), &policy, T0)
                    .await
            ),
            Window::Hourly
        );
        // An hour later the hourly window holds only what is still pending; the daily one
        // holds everything.
        let (i6, _) = invoice(20_000);
        reserved(
            l.reserve(&new("w", &i6, 0, Some(&other)), &policy, T0 + 3601)
                .await,
        );
        let (_, used) = l.budget_and_use("w", None, T0 + 3601).await.unwrap();
        assert_eq!((used.hourly_msat, used.daily_msat), (30_000, 40_010));
        let (i7, _) = invoice(21_000);
        assert_eq!(
            refused_window(
                l.reserve(&new("w", &i7, 0, Some(&other)), &policy, T0 + 3601)
                    .await
            ),
            Window::Daily
        );
        // A day later, settled payments have left the window; a pending one has not.
        let (_, used) = l.budget_and_use("w", None, T0 + DAY + 10).await.unwrap();
        assert_eq!(
            used.daily_msat,
            10_000 + 20_000,
            "the two pending reservations"
        );
        let (_, used) = l
            .budget_and_use("w", Some(&loopback), T0 + DAY + 10)
            .await
            .unwrap();
        assert_eq!(
            used.host_daily_msat, 10_000,
            "an old pending payment holds its host's window"
        );
        // Other wallets hold nothing here.
        let (_, used) = l.budget_and_use("v", None, T0).await.unwrap();
        assert_eq!(used.daily_msat, 0);
        // Static checks come first.
        let strict = BudgetPolicy {
            deny_hosts: vec!["example.com".into()],
            ..BudgetPolicy::default()
        };
        let (i8, _) = invoice(1_000);
        assert!(matches!(
            l.reserve(&new("w", &i8, 0, Some(&www)), &strict, T0).await,
            Err(ReserveError::Refused(BudgetRefusal::HostDenied(_)))
        ));
    }

    pub async fn a_late_success_counts_once(s: &Storage) {
        let l = s.ledger();
        let policy = BudgetPolicy::default();
        let (inv, pre) = invoice(10_000);
        let settled = Settlement {
            preimage: Some(&pre),
            fee: Msat::ZERO,
            note: None,
        };
        // Failed, then found paid: the spend is recorded on that row.
        let id = reserved(l.reserve(&new("w", &inv, 0, None), &policy, T0).await);
        l.mark_failed(id, "timeout", T0).await.unwrap();
        l.mark_succeeded(id, &settled, T0 + 5).await.unwrap();
        assert_eq!(
            l.payment(id).await.unwrap().unwrap().status,
            Status::Succeeded
        );
        // Failed, reserved again, then the first one succeeds: one spend, on the live row.
        let (inv2, pre2) = invoice(10_000);
        let a = reserved(l.reserve(&new("w", &inv2, 0, None), &policy, T0).await);
        l.mark_failed(a, "timeout", T0).await.unwrap();
        let b = reserved(l.reserve(&new("w", &inv2, 0, None), &policy, T0).await);
        let settled2 = Settlement {
            preimage: Some(&pre2),
            fee: Msat::ZERO,
            note: None,
        };
        l.mark_succeeded(a, &settled2, T0 + 5).await.unwrap();
        let (ra, rb) = (
            l.payment(a).await.unwrap().unwrap(),
            l.payment(b).await.unwrap().unwrap(),
        );
        assert_eq!((ra.status, rb.status), (Status::Failed, Status::Succeeded));
        assert!(ra.error.unwrap_or_default().contains(&format!("#{b}")));
        let totals = l.totals("w").await.unwrap();
        assert_eq!(totals.spent, msat(20_000));
    }

    pub async fn income_and_reports(s: &Storage) {
        let l = s.ledger();
        let (inv, _) = invoice(21_000);
        let id = l.record_incoming("seller", &inv, T0).await.unwrap();
        assert_eq!(l.pending("seller", Direction::In).await.unwrap().len(), 1);
        assert!(
            l.mark_incoming_settled("seller", &inv.payment_hash, Some(msat(21_000)), T0 + 3)
                .await
                .unwrap()
        );
        assert!(
            !l.mark_incoming_settled("seller", &inv.payment_hash, None, T0 + 4)
                .await
                .unwrap(),
            "settled once"
        );
        assert_eq!(l.earned_since("seller", T0).await.unwrap(), msat(21_000));
        assert_eq!(l.earned_since("seller", T0 + 10).await.unwrap(), Msat::ZERO);
        let (inv2, _) = invoice(5_000);
        let id2 = l.record_incoming("seller", &inv2, T0).await.unwrap();
        l.mark_incoming_expired(id2, T0 + 9999).await.unwrap();
        assert_eq!(
            l.payment(id2).await.unwrap().unwrap().status,
            Status::Failed
        );
        let totals = l.totals("seller").await.unwrap();
        assert_eq!((totals.received, totals.spent), (msat(21_000), Msat::ZERO));
        // Listing: newest first, filtered.
        let (out, _) = invoice(1_000);
        let oid = reserved(
            l.reserve(
                &new("seller", &out, 0, Some(&Payee::of_host("a.example"))),
                &BudgetPolicy::default(),
                T0,
            )
            .await,
        );
        let all = l
            .list_payments("seller", &PaymentFilter::default(), 10)
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![oid, id2, id]
        );
        let ins = l
            .list_payments(
                "seller",
                &PaymentFilter {
                    direction: Some(Direction::In),
                    ..Default::default()
                },
                10,
            )
            .await
            .unwrap();
        assert_eq!(ins.len(), 2);
        let hosted = l
            .list_payments(
                "seller",
                &PaymentFilter {
                    host: Some("a.example".into()),
                    ..Default::default()
                },
                10,
            )
            .await
            .unwrap();
        assert_eq!(hosted.iter().map(|p| p.id).collect::<Vec<_>>(), vec![oid]);
        let pending_out = l
            .list_payments(
                "seller",
                &PaymentFilter {
                    status: Some(Status::Pending),
                    ..Default::default()
                },
                10,
            )
            .await
            .unwrap();
        assert_eq!(
            pending_out.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![oid]
        );
        assert_eq!(
            l.list_payments("seller", &PaymentFilter::default(), 1)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(l.totals("seller").await.unwrap().reserved, msat(1_000));
    }

    /// Old history is deleted by policy; lifetime totals, the budget windows, income of the
    /// last day and "never pay twice" read the same before and after.
    pub async fn history_is_pruned_by_policy(s: &Storage) {
        let l = s.ledger();
        let policy = BudgetPolicy::default();
        let now = T0 + 400 * DAY;
        let keep = Retention::days(30);
        let paid = |pre| Settlement {
            preimage: Some(pre),
            fee: msat(7),
            note: None,
        };
        // Old: paid, failed, pending, paid with an invoice payable for ten years.
        let (a, pa) = invoice(10_000);
        let a_id = reserved(l.reserve(&new("w", &a, 100, None), &policy, T0).await);
        l.mark_succeeded(a_id, &paid(&pa), T0 + 1).await.unwrap();
        let (b, _) = invoice(20_000);
        let b_id = reserved(l.reserve(&new("w", &b, 0, None), &policy, T0).await);
        l.mark_failed(b_id, "no route", T0 + 1).await.unwrap();
        let (c, _) = invoice(3_000);
        let c_id = reserved(l.reserve(&new("w", &c, 0, None), &policy, T0).await);
        let (d, pd) = invoice_for(4_000, 10 * 365 * DAY);
        let payee = Payee::of_host("old.example");
        let d_id = reserved(l.reserve(&new("w", &d, 0, Some(&payee)), &policy, T0).await);
        l.mark_succeeded(d_id, &paid(&pd), T0 + 1).await.unwrap();
        // Old income, settled and expired.
        let (e, _) = invoice(21_000);
        let e_id = l.record_incoming("w", &e, T0).await.unwrap();
        assert!(
            l.mark_incoming_settled("w", &e.payment_hash, None, T0 + 3)
                .await
                .unwrap()
        );
        let (f, _) = invoice(5_000);
        let f_id = l.record_incoming("w", &f, T0).await.unwrap();
        l.mark_incoming_expired(f_id, T0 + 7200).await.unwrap();
        // Young: paid an hour ago, and income of today.
        let (g, pg) = invoice(1_000);
        let g_id = reserved(l.reserve(&new("w", &g, 0, None), &policy, now - 3600).await);
        l.mark_succeeded(g_id, &paid(&pg), now - 3600)
            .await
            .unwrap();
        let (h, _) = invoice(2_000);
        l.record_incoming("w", &h, now - 60).await.unwrap();
        l.mark_incoming_settled("w", &h.payment_hash, None, now - 50)
            .await
            .unwrap();
        // Another wallet's old payment is its own payer's to prune.
        let (o, po) = invoice(9_000);
        let o_id = reserved(l.reserve(&new("other", &o, 0, None), &policy, T0).await);
        l.mark_succeeded(o_id, &paid(&po), T0 + 1).await.unwrap();

        let totals = l.totals("w").await.unwrap();
        assert_eq!(
            (totals.spent, totals.received, totals.reserved),
            (msat(10_007 + 4_007 + 1_007), msat(23_000), msat(3_000))
        );
        let windows = l.budget_and_use("w", None, now).await.unwrap().1;
        let earned = l.earned_since("w", now - DAY).await.unwrap();

        // Kept forever: nothing goes.
        let none = l
            .prune_history("w", &Retention::forever(), now, None)
            .await
            .unwrap();
        assert_eq!(none.payments, 0);
        let pruned = l.prune_history("w", &keep, now, None).await.unwrap();
        assert_eq!(pruned.payments, 4, "{pruned:?}");
        assert!(!pruned.more);
        for id in [a_id, b_id, e_id, f_id] {
            assert!(l.payment(id).await.unwrap().is_none(), "#{id} deleted");
        }
        for id in [c_id, d_id, g_id, o_id] {
            assert!(l.payment(id).await.unwrap().is_some(), "#{id} kept");
        }
        assert_eq!(
            l.totals("w").await.unwrap(),
            totals,
            "totals carried forward"
        );
        assert_eq!(l.budget_and_use("w", None, now).await.unwrap().1, windows);
        assert_eq!(l.earned_since("w", now - DAY).await.unwrap(), earned);
        // A paid invoice that could still be paid is refused as before.
        assert!(matches!(
            l.reserve(&new("w", &d, 0, None), &policy, now).await,
            Ok(Reservation::AlreadyPaid(p)) if p.id == d_id
        ));
        assert!(matches!(
            l.reserve(&new("w", &c, 0, None), &policy, now).await,
            Ok(Reservation::InFlight(p)) if p.id == c_id
        ));
        // Nothing more to do; the pending one, once resolved, goes in a later round.
        let again = l
            .prune_history("w", &keep, now, pruned.resume)
            .await
            .unwrap();
        assert_eq!(again.payments, 0);
        l.mark_failed(c_id, "reconciled", T0 + 2).await.unwrap();
        let later = now + 40 * DAY;
        let after = l.prune_history("w", &keep, later, None).await.unwrap();
        assert_eq!(after.payments, 1 + 1 + 1, "{after:?}"); // c, g and h (d still payable)
        let still = l.totals("w").await.unwrap();
        assert_eq!(
            (still.spent, still.received, still.reserved),
            (totals.spent, totals.received, Msat::ZERO),
            "the same totals, less the reservation released"
        );
        assert!(l.wallets().await.unwrap().contains(&"w".to_owned()));
        assert!(l.payment(o_id).await.unwrap().is_some());
    }

    /// Kept rows at the head of the history (paid invoices still payable) do not stall the
    /// pruning of the rows behind them, and one statement deletes at most a batch.
    pub async fn pruning_goes_past_kept_rows_in_bounded_batches(s: &Storage) {
        let l = s.ledger();
        let policy = BudgetPolicy::default();
        let now = T0 + 400 * DAY;
        let keep = Retention::days(30);
        let batch = u64::try_from(PRUNE_BATCH).unwrap();
        // A batch and one of paid invoices payable for ten years, then one expired.
        let (long, pre) = invoice_for(1_000, 10 * 365 * DAY);
        let paid = Settlement {
            preimage: Some(&pre),
            fee: Msat::ZERO,
            note: None,
        };
        for i in 0..=batch {
            let (inv, p) = if i == 0 {
                (long.clone(), pre)
            } else {
                invoice_for(1_000, 10 * 365 * DAY)
            };
            let id = reserved(l.reserve(&new("w", &inv, 0, None), &policy, T0 + i).await);
            let done = Settlement {
                preimage: Some(&p),
                ..paid
            };
            l.mark_succeeded(id, &done, T0 + i).await.unwrap();
        }
        let (x, px) = invoice(500);
        let x_id = reserved(
            l.reserve(&new("w", &x, 0, None), &policy, T0 + 2 * batch)
                .await,
        );
        l.mark_succeeded(
            x_id,
            &Settlement {
                preimage: Some(&px),
                ..paid
            },
            T0 + 2 * batch,
        )
        .await
        .unwrap();
        // Incoming invoices expired unpaid: more than one batch.
        for i in 0..batch + 10 {
            let (inv, _) = invoice(1);
            let id = l.record_incoming("w", &inv, T0 + i).await.unwrap();
            l.mark_incoming_expired(id, T0 + i).await.unwrap();
        }
        let totals = l.totals("w").await.unwrap();
        let first = l.prune_history("w", &keep, now, None).await.unwrap();
        assert!(l.payment(x_id).await.unwrap().is_none(), "{first:?}");
        assert_eq!(
            first.payments,
            1 + batch,
            "one batch of incoming: {first:?}"
        );
        assert!(first.more);
        let second = l
            .prune_history("w", &keep, now, first.resume)
            .await
            .unwrap();
        assert_eq!(second.payments, 10, "{second:?}");
        assert_eq!(l.totals("w").await.unwrap(), totals);
        assert!(matches!(
            l.reserve(&new("w", &long, 0, None), &policy, now).await,
            Ok(Reservation::AlreadyPaid(_))
        ));
    }

    /// Expired credentials, distrust, free-tier days and spent charges go; live ones stay.
    pub async fn expired_rows_are_pruned(s: &Storage) {
        let now = T0 + 10 * DAY;
        let t = s.tokens();
        let token = cached_token;
        t.put_token("w", &token("/old", Some(T0)), T0)
            .await
            .unwrap();
        t.put_token("w", &token("/live", Some(now + 60)), T0)
            .await
            .unwrap();
        t.put_token("w", &token("/forever", None), T0)
            .await
            .unwrap();
        let st = s.seller();
        assert!(st.free_tier_hit("c", "/r", T0 / DAY, 5).await.unwrap());
        assert!(st.free_tier_hit("c", "/r", now / DAY, 5).await.unwrap());
        let m = s.mpp();
        let (old, young) = (PaymentHash(rand_bytes()), PaymentHash(rand_bytes()));
        assert!(m.consume_charge(&old, "a", T0 + 900, T0).await.unwrap());
        assert!(m.consume_charge(&young, "b", now + 900, now).await.unwrap());

        let pruned = s
            .ledger()
            .prune_history("w", &Retention::forever(), now, None)
            .await
            .unwrap();
        assert_eq!(
            (pruned.credentials, pruned.free_tier, pruned.charges),
            (1, 1, 1),
            "{pruned:?}"
        );
        assert!(
            t.find_token("w", "https://api.example", "/old", T0)
                .await
                .unwrap()
                .is_none()
        );
        for path in ["/live", "/forever"] {
            assert!(
                t.find_token("w", "https://api.example", path, now)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        // Today's count is kept (the limit is 1: a second hit is refused).
        assert!(!st.free_tier_hit("c", "/r", now / DAY, 1).await.unwrap());
        assert!(
            st.free_tier_hit("c", "/r", T0 / DAY, 1).await.unwrap(),
            "old day forgotten"
        );
        assert!(!m.consume_charge(&young, "b", now + 900, now).await.unwrap());
        assert!(m.consume_charge(&old, "a", T0 + 900, now).await.unwrap());
    }

    pub async fn the_token_cache(s: &Storage) {
        let t = s.tokens();
        let token = cached_token;
        let wide = token("/v1", None);
        let narrow = token("/v1/data/", Some(T0 + 100));
        t.put_token("w", &wide, T0).await.unwrap();
        t.put_token("w", &narrow, T0).await.unwrap();
        let find = |path: &'static str, now: u64| {
            let t = t.clone();
            async move {
                t.find_token("w", "https://api.example", path, now)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            find("/v1/data/7", T0).await.map(|c| c.scope.path_prefix),
            Some("/v1/data/".into())
        );
        assert_eq!(
            find("/v1/data", T0).await.map(|c| c.scope.path_prefix),
            Some("/v1/data/".into())
        );
        assert_eq!(
            find("/v1/other", T0).await.map(|c| c.scope.path_prefix),
            Some("/v1".into())
        );
        assert_eq!(find("/v1x", T0).await, None);
        assert_eq!(
            find("/v1/data/7", T0 + 100)
                .await
                .map(|c| c.scope.path_prefix),
            Some("/v1".into()),
            "expired"
        );
        assert_eq!(
            t.find_token("v", "https://api.example", "/v1", T0)
                .await
                .unwrap(),
            None
        );
        let found = find("/v1/q", T0).await.unwrap();
        assert_eq!(
            (found.scope.macaroon.clone(), found.preimage, found.honoured),
            (vec![2, 1, 0, 7], Preimage([9; 32]), false)
        );
        // Honoured once; replacing it forgets that.
        assert_eq!(t.token_state("w", &found).await.unwrap(), Some(false));
        t.mark_token_honoured("w", &found, T0).await.unwrap();
        assert_eq!(t.token_state("w", &found).await.unwrap(), Some(true));
        assert!(find("/v1/q", T0).await.unwrap().honoured);
        let replacement = token("/v1", None);
        t.put_token("w", &replacement, T0).await.unwrap();
        assert_eq!(
            t.token_state("w", &found).await.unwrap(),
            None,
            "another credential now"
        );
        assert!(!find("/v1/q", T0).await.unwrap().honoured);
        t.drop_token("w", "https://api.example", "/v1")
            .await
            .unwrap();
        assert_eq!(find("/v1/q", T0).await, None);

        // A credential paid for comes back when its payment is found paid.
        let l = s.ledger();
        let (inv, pre) = invoice(3_000);
        let scope = CredentialScope {
            origin: "https://shop.example".into(),
            path_prefix: "/item".into(),
            scheme: Scheme::Lsat,
            macaroon: vec![1, 2, 3],
            expires_at: None,
        };
        let mut n = new("w", &inv, 0, None);
        n.credential = Some(&scope);
        let id = reserved(l.reserve(&n, &BudgetPolicy::default(), T0).await);
        assert!(!t.restore_token(id, T0).await.unwrap(), "not paid yet");
        l.mark_succeeded(
            id,
            &Settlement {
                preimage: Some(&pre),
                fee: Msat::ZERO,
                note: None,
            },
            T0,
        )
        .await
        .unwrap();
        assert!(t.restore_token(id, T0).await.unwrap());
        let back = t
            .find_token("w", "https://shop.example", "/item/1", T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (back.scope.scheme, back.preimage, back.payment_hash),
            (Scheme::Lsat, pre, inv.payment_hash)
        );
    }

    pub async fn distrust_follows_every_name(s: &Storage) {
        let t = s.tokens();
        let mut seller = Payee::of_host("localhost");
        seller.add_address("127.0.0.1".parse().unwrap());
        let hash = PaymentHash([1; 32]);
        t.distrust("w", &seller, "http://localhost:8080", &hash, T0 + 100, T0)
            .await
            .unwrap();
        for name in ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"] {
            let d = t
                .distrusted("w", &Payee::of_host(name), T0)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (d.origin.as_str(), d.until),
                ("http://localhost:8080", T0 + 100),
                "{name}"
            );
        }
        assert_eq!(
            t.distrusted("w", &Payee::of_host("127.0.0.1"), T0 + 100)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            t.distrusted("v", &Payee::of_host("127.0.0.1"), T0)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            t.distrusted("w", &Payee::of_host("other.example"), T0)
                .await
                .unwrap(),
            None
        );
        // A shorter distrust never shortens a longer one.
        t.distrust(
            "w",
            &Payee::of_host("127.0.0.1"),
            "http://127.0.0.1",
            &hash,
            T0 + 50,
            T0,
        )
        .await
        .unwrap();
        assert_eq!(
            t.distrusted("w", &Payee::of_host("localhost"), T0)
                .await
                .unwrap()
                .unwrap()
                .until,
            T0 + 100
        );
    }

    pub async fn the_sellers_store(s: &Storage) {
        let st = s.seller();
        let root = RootKey(rand_bytes());
        let (token_id, hash, key_id) = (
            TokenId(rand_bytes()),
            PaymentHash(rand_bytes()),
            rand_bytes::<32>(),
        );
        let caps = vec!["read".to_owned(), "write".to_owned()];
        st.store_minted(
            &NewMintedToken {
                key_id,
                root_key: &root,
                token_id,
                wallet: "seller",
                payment_hash: hash,
                amount: msat(21_000),
                service: "api",
                tier: 2,
                capabilities: &caps,
                valid_until: Some(T0 + 60),
                max_uses: Some(2),
            },
            T0,
        )
        .await
        .unwrap();
        assert_eq!(st.root_key(&key_id).await.unwrap(), Some(root.clone()));
        let m = st.minted_token(&token_id).await.unwrap().unwrap();
        // Both at once, as verification reads them; another token's terms are not this key's.
        assert_eq!(
            st.root_key_and_terms(&key_id, &token_id).await.unwrap(),
            (Some(root.clone()), Some(m.clone()))
        );
        assert_eq!(
            st.root_key_and_terms(&key_id, &TokenId(rand_bytes()))
                .await
                .unwrap(),
            (Some(root.clone()), None)
        );
        assert_eq!(
            st.root_key_and_terms(&rand_bytes(), &token_id)
                .await
                .unwrap(),
            (None, None),
            "no root key, nothing to verify with"
        );
        assert_eq!(
            (
                m.wallet.as_str(),
                m.payment_hash,
                m.amount,
                m.tier,
                m.capabilities.clone(),
                m.valid_until,
                m.max_uses
            ),
            (
                "seller",
                hash,
                msat(21_000),
                2,
                caps.clone(),
                Some(T0 + 60),
                Some(2)
            )
        );
        assert_eq!(st.minted_token(&TokenId([0; 32])).await.unwrap(), None);
        // N-use tokens: exactly N uses.
        assert_eq!(st.use_token(&token_id, 2).await.unwrap(), Some(1));
        assert_eq!(st.use_token(&token_id, 2).await.unwrap(), Some(2));
        assert_eq!(st.use_token(&token_id, 2).await.unwrap(), None);
        assert_eq!(
            st.use_token(&TokenId([5; 32]), 0).await.unwrap(),
            None,
            "a 0-use token"
        );
        // Free tier: per client, route and day.
        for expected in [true, true, false] {
            assert_eq!(
                st.free_tier_hit("10.0.0.0/24", "/r", 7, 2).await.unwrap(),
                expected
            );
        }
        assert!(
            st.free_tier_hit("10.0.0.0/24", "/r", 8, 2).await.unwrap(),
            "a new day"
        );
        assert!(
            st.free_tier_hit("10.0.1.0/24", "/r", 7, 2).await.unwrap(),
            "another client"
        );
        assert!(!st.free_tier_hit("x", "/r", 7, 0).await.unwrap());
        // Sales: once per payment.
        assert!(
            st.record_sale(&hash, &token_id, "api", msat(21_000), T0)
                .await
                .unwrap()
        );
        assert!(
            !st.record_sale(&hash, &token_id, "api", msat(21_000), T0)
                .await
                .unwrap()
        );
        assert!(
            st.record_sale(
                &PaymentHash(rand_bytes()),
                &token_id,
                "news",
                msat(1_000),
                T0 + 5
            )
            .await
            .unwrap()
        );
        let all = st.sales_since(T0).await.unwrap();
        assert_eq!(
            (all.count, all.amount, all.by_service.len()),
            (2, msat(22_000), 2)
        );
        assert_eq!(st.sales_since(T0 + 1).await.unwrap().count, 1);
        // Revoking deletes the root key.
        assert!(st.revoke(&key_id).await.unwrap());
        assert_eq!(st.root_key(&key_id).await.unwrap(), None);
        assert_eq!(
            st.root_key_and_terms(&key_id, &token_id).await.unwrap(),
            (None, None),
            "a revoked token has nothing to verify with"
        );
        assert!(!st.revoke(&key_id).await.unwrap());
    }

    /// Settlements racing for one balance: each is whole or nothing. On SQLite they share
    /// transactions (group commit), so a payment refused for want of funds must be undone
    /// alone, its claim on the invoice with it, and leave the others of its batch standing.
    /// What is written together is kept together: a seller's challenge (the embedded wallet's
    /// invoice row, the pending income, the root key and terms), a sale with the income it
    /// settles, and an embedded payment with its record and the credential it bought.
    pub async fn writes_kept_together(s: &Storage) {
        let (st, l, b) = (s.seller(), s.ledger(), s.books());
        seller_and_buyer(&b).await;
        let (inv, pre) = invoice(21_000);
        let (root, token_id, key_id) = (RootKey(rand_bytes()), TokenId(rand_bytes()), rand_bytes());
        let row = EmbeddedInvoice {
            payment_hash: &inv.payment_hash,
            wallet: "seller",
            bolt11: &inv.bolt11,
            preimage: &pre,
            amount: msat(21_000),
            description: "conformance",
            expires_at: T0 + 3600,
        };
        let minted = NewMintedToken {
            key_id,
            root_key: &root,
            token_id,
            wallet: "seller",
            payment_hash: inv.payment_hash,
            amount: msat(21_000),
            service: "api",
            tier: 0,
            capabilities: &[],
            valid_until: None,
            max_uses: None,
        };
        st.store_challenge(
            &NewChallenge {
                embedded: Some(&row),
                income: Income {
                    wallet: "seller",
                    payment_hash: &inv.payment_hash,
                    bolt11: &inv.bolt11,
                    amount: msat(21_000),
                    description: Some("conformance"),
                },
                minted: Some(&minted),
            },
            T0,
        )
        .await
        .unwrap();
        assert_eq!(st.root_key(&key_id).await.unwrap(), Some(root.clone()));
        assert!(
            !b.issued("seller", &inv.payment_hash)
                .await
                .unwrap()
                .unwrap()
                .paid
        );
        let income = l
            .payment_by_hash("seller", Direction::In, &inv.payment_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (income.status, income.amount, income.description.as_deref()),
            (Status::Pending, msat(21_000), Some("conformance"))
        );
        // A key already kept is refused, and nothing of that challenge is kept.
        let (inv2, _) = invoice(1_000);
        let again = NewMintedToken {
            payment_hash: inv2.payment_hash,
            token_id: TokenId(rand_bytes()),
            ..minted
        };
        let dup = NewChallenge {
            embedded: None,
            income: Income {
                wallet: "seller",
                payment_hash: &inv2.payment_hash,
                bolt11: &inv2.bolt11,
                amount: msat(1_000),
                description: None,
            },
            minted: Some(&again),
        };
        assert!(st.store_challenge(&dup, T0).await.is_err());
        assert!(
            l.payment_by_hash("seller", Direction::In, &inv2.payment_hash)
                .await
                .unwrap()
                .is_none(),
            "the income of a challenge that could not be kept is not kept either"
        );

        // The buyer reserves, then the transfer records the payment and caches the credential.
        let scope = CredentialScope {
            origin: "https://seller.example".into(),
            path_prefix: "/x".into(),
            scheme: Scheme::L402,
            macaroon: vec![1, 2, 3],
            expires_at: None,
        };
        let id = reserved(
            l.reserve(
                &new("buyer", &inv, 1_000, None),
                &BudgetPolicy::default(),
                T0,
            )
            .await,
        );
        let record = PaidRecord {
            payment_id: id,
            wallet: "buyer",
            credential: Some(&scope),
        };
        let (settled, recorded) = b
            .settle_recorded("buyer", &inv.bolt11, &inv.payment_hash, T0, &record)
            .await
            .unwrap();
        assert_eq!(settled.preimage, pre);
        assert!(recorded, "recorded in the transfer's commit");
        let paid = l.payment(id).await.unwrap().unwrap();
        assert_eq!((paid.status, paid.preimage), (Status::Succeeded, Some(pre)));
        assert_eq!(paid.reserved, msat(0));
        let token = s
            .tokens()
            .find_token("buyer", "https://seller.example", "/x", T0)
            .await
            .unwrap()
            .expect("the credential is cached with the record");
        assert_eq!((token.preimage, token.honoured), (pre, false));
        assert_eq!(b.balance("buyer").await.unwrap(), msat(29_000));

        // A record for a payment that is not pending, or not this invoice's, changes nothing
        // (the money moves); a transfer refused moves nothing and records nothing.
        let issue = |amount: u64, expires_at: u64| {
            let (inv, pre) = invoice(amount);
            let b = b.clone();
            async move {
                let row = EmbeddedInvoice {
                    payment_hash: &inv.payment_hash,
                    wallet: "seller",
                    bolt11: &inv.bolt11,
                    preimage: &pre,
                    amount: msat(amount),
                    description: "conformance",
                    expires_at,
                };
                b.add_invoice(&row, T0).await.unwrap();
                inv
            }
        };
        let mut others = Vec::new();
        for (amount, expires_at) in [(4_000, T0 + 3600), (6_000, T0), (500_000, T0 + 3600)] {
            let inv = issue(amount, expires_at).await;
            let id = reserved(
                l.reserve(&new("buyer", &inv, 0, None), &BudgetPolicy::default(), T0)
                    .await,
            );
            others.push((inv, id));
        }
        let [(_, id5), (inv7, id7), (inv8, id8)] = &others[..] else {
            unreachable!()
        };
        let (inv3, inv6) = (issue(2_000, T0 + 3600).await, issue(5_000, T0 + 3600).await);
        let cases = [
            (&inv3, id, "moved"),
            (&inv6, *id5, "moved"),
            (inv7, *id7, "expired"),
            (inv8, *id8, "insufficient"),
        ];
        for (inv, payment_id, outcome) in cases {
            let before = b.balance("buyer").await.unwrap();
            let record = PaidRecord {
                payment_id,
                ..record
            };
            let r = b
                .settle_recorded("buyer", &inv.bolt11, &inv.payment_hash, T0, &record)
                .await;
            let moved = match (outcome, r) {
                ("moved", Ok((_, false))) => true,
                ("expired", Err(SettleError::Expired))
                | ("insufficient", Err(SettleError::Insufficient(_))) => false,
                (_, r) => panic!("{outcome}: {r:?}"),
            };
            let issued = b.issued("seller", &inv.payment_hash).await.unwrap();
            assert_eq!(issued.unwrap().paid, moved, "{outcome}");
            assert_eq!(b.balance("buyer").await.unwrap() != before, moved);
        }
        for (inv, id) in &others {
            let left = l.payment(*id).await.unwrap().unwrap();
            assert_eq!(left.status, Status::Pending, "{}", inv.payment_hash);
        }
        // The credential is written only with its record: still the one the first payment
        // bought, not overwritten by the payments above that were not recorded.
        let token = s
            .tokens()
            .find_token("buyer", "https://seller.example", "/x", T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token.preimage, pre);
        // A payment that buys no credential is recorded, and caches none.
        let inv9 = issue(7_000, T0 + 3600).await;
        let id9 = reserved(
            l.reserve(&new("buyer", &inv9, 0, None), &BudgetPolicy::default(), T0)
                .await,
        );
        let (_, recorded) = settle_bare(&b, &inv9, id9).await;
        assert!(recorded);
        let p9 = l.payment(id9).await.unwrap().unwrap();
        assert_eq!(p9.status, Status::Succeeded);
        let other_path = s
            .tokens()
            .find_token("buyer", "https://seller.example", "/y", T0)
            .await
            .unwrap();
        assert!(other_path.is_none());

        // The seller is shown the credential: the sale and its income, once.
        for first in [true, false] {
            let new_sale = st
                .record_sale_and_income(
                    &inv.payment_hash,
                    &token_id,
                    "api",
                    msat(21_000),
                    "seller",
                    T0 + 1,
                )
                .await
                .unwrap();
            assert_eq!(new_sale, first);
        }
        let income = l
            .payment_by_hash("seller", Direction::In, &inv.payment_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (income.status, income.settled_at),
            (Status::Succeeded, Some(T0 + 1))
        );
        let sales = st.sales_since(T0).await.unwrap();
        assert_eq!((sales.count, sales.amount), (1, msat(21_000)));
    }

    pub async fn racing_settlements_are_whole_or_nothing(s: &Storage) {
        let b = s.books();
        payer_and_payee(&b).await;
        let invoices: Vec<(Preimage, String)> = (0..40)
            .map(|i| (Preimage(rand_bytes()), format!("lnbcrt1race{i}")))
            .collect();
        for (pre, bolt11) in &invoices {
            b.add_invoice(
                &EmbeddedInvoice {
                    payment_hash: &pre.payment_hash(),
                    wallet: "payee",
                    bolt11,
                    preimage: pre,
                    amount: msat(1_000),
                    description: "race",
                    expires_at: T0 + 600,
                },
                T0,
            )
            .await
            .unwrap();
        }
        let tasks: Vec<_> = invoices
            .iter()
            .map(|(pre, bolt11)| {
                let (b, bolt11, hash) = (b.clone(), bolt11.clone(), pre.payment_hash());
                tokio::spawn(async move { b.settle("payer", &bolt11, &hash, T0).await })
            })
            .collect();
        let mut settled = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => settled += 1,
                Err(SettleError::Insufficient(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            settled, 10,
            "10 000 msat pay exactly ten 1 000 msat invoices"
        );
        assert_eq!(b.balance("payer").await.unwrap(), Msat::ZERO);
        assert_eq!(b.balance("payee").await.unwrap(), msat(10_000));
        let mut claimed = 0;
        for (pre, _) in &invoices {
            if b.issued("payee", &pre.payment_hash())
                .await
                .unwrap()
                .unwrap()
                .paid
            {
                claimed += 1;
            }
        }
        assert_eq!(claimed, 10, "a refused payment leaves its invoice unpaid");
    }

    /// Accounts paying one another at once from several instances, each transfer locking its
    /// two accounts (on PostgreSQL a batch of transfers must lock them all in one order, or
    /// two batches could each hold an account the other wants): every transfer goes through,
    /// and every account ends with what it had, less what it paid, plus what it was paid.
    pub async fn accounts_pay_one_another_at_once(stores: Vec<Storage>) {
        let names = ["acct-a", "acct-b", "acct-c", "acct-d"];
        let books = stores[0].books();
        for (i, name) in names.iter().enumerate() {
            books
                .open_account(name, &rand_bytes(), &format!("node-{i}"), msat(100_000), T0)
                .await
                .unwrap();
        }
        let mut payments = Vec::new();
        for i in 0..160usize {
            let (payer, payee) = (names[i % 4], names[(i / 4 + i + 1) % 4]);
            if payer == payee {
                continue;
            }
            let pre = Preimage(rand_bytes());
            let bolt11 = format!("lnbcrt1cross{i}");
            let amount = 100 + i as u64;
            books
                .add_invoice(
                    &EmbeddedInvoice {
                        payment_hash: &pre.payment_hash(),
                        wallet: payee,
                        bolt11: &bolt11,
                        preimage: &pre,
                        amount: msat(amount),
                        description: "cross",
                        expires_at: T0 + 600,
                    },
                    T0,
                )
                .await
                .unwrap();
            payments.push((i, payer, payee, amount, bolt11, pre.payment_hash()));
        }
        let mut expected: std::collections::HashMap<&str, i64> =
            names.iter().map(|n| (*n, 100_000)).collect();
        let tasks: Vec<_> = payments
            .into_iter()
            .map(|(i, payer, payee, amount, bolt11, hash)| {
                *expected.get_mut(payer).unwrap() -= amount as i64;
                *expected.get_mut(payee).unwrap() += amount as i64;
                let b = stores[i % stores.len()].books();
                tokio::spawn(async move { b.settle(payer, &bolt11, &hash, T0).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        for name in names {
            assert_eq!(
                books.balance(name).await.unwrap(),
                msat(u64::try_from(expected[name]).unwrap()),
                "{name}"
            );
        }
    }

    pub async fn the_embedded_books(s: &Storage) {
        let b = s.books();
        let key_a = rand_bytes::<32>();
        let a = b
            .open_account("a", &key_a, "node-a", msat(50_000), T0)
            .await
            .unwrap();
        assert!(a.created);
        assert_eq!(a.node_key, key_a);
        let again = b
            .open_account("a", &rand_bytes(), "node-a2", msat(50_000), T0)
            .await
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.node_key, key_a, "the stored key wins");
        b.open_account("b", &rand_bytes(), "node-b", msat(1_000), T0)
            .await
            .unwrap();
        assert_eq!(
            b.accounts().await.unwrap(),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert_eq!(b.deposit("b", msat(500)).await.unwrap(), msat(1_500));
        assert_eq!(b.test_sats_added("b").await.unwrap(), msat(1_500));
        // b issues, a pays.
        let pre = Preimage(rand_bytes());
        let hash = pre.payment_hash();
        let add = |amount: u64, expires_at: u64, bolt11: &'static str| {
            let b = b.clone();
            async move {
                b.add_invoice(
                    &EmbeddedInvoice {
                        payment_hash: &hash,
                        wallet: "b",
                        bolt11,
                        preimage: &pre,
                        amount: msat(amount),
                        description: "d",
                        expires_at,
                    },
                    T0,
                )
                .await
            }
        };
        add(20_000, T0 + 60, "lnbcrt1invoice").await.unwrap();
        let issued = b.issued("b", &hash).await.unwrap().unwrap();
        assert_eq!((issued.amount, issued.paid), (msat(20_000), false));
        assert!(matches!(
            b.settle("b", "lnbcrt1invoice", &hash, T0).await,
            Err(SettleError::OwnInvoice)
        ));
        assert!(matches!(
            b.settle("a", "lnbcrt1other", &hash, T0).await,
            Err(SettleError::Unknown)
        ));
        assert!(matches!(
            b.settle("a", "lnbcrt1invoice", &PaymentHash([0; 32]), T0)
                .await,
            Err(SettleError::Unknown)
        ));
        let settled = b.settle("a", "LNBCRT1INVOICE", &hash, T0).await.unwrap();
        assert_eq!(
            (settled.preimage, settled.payee.as_str(), settled.amount),
            (pre, "b", msat(20_000))
        );
        assert!(matches!(
            b.settle("a", "lnbcrt1invoice", &hash, T0).await,
            Err(SettleError::AlreadyPaid)
        ));
        assert_eq!(
            (b.balance("a").await.unwrap(), b.balance("b").await.unwrap()),
            (msat(30_000), msat(21_500))
        );
        assert_eq!(b.paid_preimage("a", &hash).await.unwrap(), Some(pre));
        assert_eq!(b.paid_preimage("b", &hash).await.unwrap(), None);
        assert!(b.issued("b", &hash).await.unwrap().unwrap().paid);
        // Too little money, an expired invoice: nothing moves.
        let pre2 = Preimage(rand_bytes());
        let h2 = pre2.payment_hash();
        b.add_invoice(
            &EmbeddedInvoice {
                payment_hash: &h2,
                wallet: "a",
                bolt11: "lnbcrt1big",
                preimage: &pre2,
                amount: msat(99_000),
                description: "",
                expires_at: T0 + 60,
            },
            T0,
        )
        .await
        .unwrap();
        assert!(matches!(
            b.settle("b", "lnbcrt1big", &h2, T0).await,
            Err(SettleError::Insufficient(_))
        ));
        let pre3 = Preimage(rand_bytes());
        let h3 = pre3.payment_hash();
        b.add_invoice(
            &EmbeddedInvoice {
                payment_hash: &h3,
                wallet: "a",
                bolt11: "lnbcrt1old",
                preimage: &pre3,
                amount: msat(1),
                description: "",
                expires_at: T0,
            },
            T0,
        )
        .await
        .unwrap();
        assert!(matches!(
            b.settle("b", "lnbcrt1old", &h3, T0).await,
            Err(SettleError::Expired)
        ));
        assert_eq!(b.balance("b").await.unwrap(), msat(21_500));
        assert!(
            !b.issued("a", &h2).await.unwrap().unwrap().paid,
            "the claim was rolled back"
        );
    }

    pub async fn payment_secrets_and_spent_charges(s: &Storage) {
        let m = s.mpp();
        assert_eq!(m.existing_mpp_secret(7).await.unwrap(), None);
        let first = m.mpp_secret(7, &[1; 32], T0).await.unwrap();
        assert_eq!(first, [1; 32]);
        // The first instance to make an epoch's secret decides it.
        assert_eq!(m.mpp_secret(7, &[2; 32], T0).await.unwrap(), [1; 32]);
        assert_eq!(m.existing_mpp_secret(7).await.unwrap(), Some([1; 32]));
        assert_eq!(m.mpp_secret(8, &[3; 32], T0).await.unwrap(), [3; 32]);
        // A charge buys one request.
        let hash = PaymentHash(rand_bytes());
        assert!(m.consume_charge(&hash, "id-1", T0 + 900, T0).await.unwrap());
        assert!(!m.consume_charge(&hash, "id-2", T0 + 900, T0).await.unwrap());
        assert!(
            m.consume_charge(&PaymentHash(rand_bytes()), "id-1", T0 + 900, T0)
                .await
                .unwrap()
        );
    }

    pub async fn sessions_spend_credit_and_close_once(s: &Storage) {
        let m = s.mpp();
        let id = PaymentHash(rand_bytes());
        let open = |id: PaymentHash| NewSession {
            id,
            wallet: "seller",
            service: "weather",
            deposit: msat(2_000),
            return_invoice: "lnbcrt1return",
            idle_secs: 300,
        };
        assert!(m.open_session(&open(id), T0).await.unwrap());
        assert!(
            !m.open_session(&open(id), T0).await.unwrap(),
            "a deposit opens one session"
        );
        assert_eq!(
            m.spend_session(&id, msat(500), T0 + 1).await.unwrap(),
            Some(msat(1_500))
        );
        assert_eq!(
            m.spend_session(&id, msat(1_500), T0 + 2).await.unwrap(),
            Some(msat(0))
        );
        assert_eq!(
            m.spend_session(&id, msat(1), T0 + 3).await.unwrap(),
            None,
            "never past the deposit"
        );
        // A top-up is credited once, to one session.
        let topup = PaymentHash(rand_bytes());
        assert_eq!(
            m.credit_session(&id, &topup, msat(1_000), T0 + 4)
                .await
                .unwrap(),
            Credit::Credited
        );
        assert_eq!(
            m.credit_session(&id, &topup, msat(1_000), T0 + 4)
                .await
                .unwrap(),
            Credit::AlreadyCredited
        );
        assert_eq!(
            m.credit_session(&id, &id, msat(2_000), T0 + 4)
                .await
                .unwrap(),
            Credit::AlreadyCredited,
            "the deposit is credited already"
        );
        let other = PaymentHash(rand_bytes());
        assert!(m.open_session(&open(other), T0).await.unwrap());
        assert_eq!(
            m.credit_session(&other, &topup, msat(1_000), T0 + 4)
                .await
                .unwrap(),
            Credit::Elsewhere
        );
        let got = m.session(&id).await.unwrap().unwrap();
        assert_eq!(
            (got.deposit, got.spent, got.open, got.refund_status),
            (msat(3_000), msat(2_000), true, None)
        );
        // Closed once: the refund is owed (pending); nothing works on it afterwards.
        assert_eq!(
            m.close_session(&id, T0 + 10).await.unwrap(),
            Some(msat(1_000))
        );
        assert_eq!(m.close_session(&id, T0 + 11).await.unwrap(), None);
        assert_eq!(m.spend_session(&id, msat(1), T0 + 12).await.unwrap(), None);
        assert_eq!(
            m.credit_session(&id, &PaymentHash(rand_bytes()), msat(1), T0 + 12)
                .await
                .unwrap(),
            Credit::NotOpen
        );
        let closed = m.session(&id).await.unwrap().unwrap();
        assert_eq!(
            (
                closed.open,
                closed.refund,
                closed.refund_status,
                closed.closed_at
            ),
            (
                false,
                Some(msat(1_000)),
                Some(RefundStatus::Pending),
                Some(T0 + 10)
            )
        );
        assert_eq!(
            m.pending_refunds()
                .await
                .unwrap()
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>(),
            vec![id]
        );
        m.set_refund(&id, RefundStatus::Succeeded, None)
            .await
            .unwrap();
        assert!(m.pending_refunds().await.unwrap().is_empty());
        // A session with nothing left closes with the refund skipped; idle ones are found.
        let spent = PaymentHash(rand_bytes());
        assert!(m.open_session(&open(spent), T0).await.unwrap());
        assert_eq!(m.idle_sessions(T0 + 299).await.unwrap(), vec![]);
        let mut idle = m.idle_sessions(T0 + 300).await.unwrap();
        idle.sort();
        let mut want = vec![other, spent];
        want.sort();
        assert_eq!(idle, want);
        m.spend_session(&spent, msat(2_000), T0).await.unwrap();
        assert_eq!(
            m.close_session(&spent, T0 + 1).await.unwrap(),
            Some(msat(0))
        );
        assert_eq!(
            m.session(&spent).await.unwrap().unwrap().refund_status,
            Some(RefundStatus::Skipped)
        );
    }

    pub async fn amountless_invoices_take_the_payers_amount(s: &Storage) {
        let b = s.books();
        payer_and_payee(&b).await;
        let pre = Preimage(rand_bytes());
        let hash = pre.payment_hash();
        b.add_invoice(
            &EmbeddedInvoice {
                payment_hash: &hash,
                wallet: "payee",
                bolt11: "lnbcrt1amountless",
                preimage: &pre,
                amount: msat(0),
                description: "refund",
                expires_at: T0 + 60,
            },
            T0,
        )
        .await
        .unwrap();
        assert!(matches!(
            b.settle("payer", "lnbcrt1amountless", &hash, T0).await,
            Err(SettleError::AmountMismatch)
        ));
        let settled = b
            .settle_amountless("payer", "lnbcrt1amountless", &hash, msat(1_234), T0)
            .await
            .unwrap();
        assert_eq!((settled.preimage, settled.amount), (pre, msat(1_234)));
        assert!(matches!(
            b.settle_amountless("payer", "lnbcrt1amountless", &hash, msat(1), T0)
                .await,
            Err(SettleError::AlreadyPaid)
        ));
        let issued = b.issued("payee", &hash).await.unwrap().unwrap();
        assert_eq!((issued.amount, issued.paid), (msat(1_234), true));
        assert_eq!(
            (
                b.balance("payer").await.unwrap(),
                b.balance("payee").await.unwrap()
            ),
            (msat(8_766), msat(1_234))
        );
    }

    pub async fn the_buyers_sessions(s: &Storage) {
        let b = s.buyer_sessions();
        let mut session = BuyerSession {
            wallet: "w".into(),
            id: PaymentHash(rand_bytes()),
            origin: "https://api.example".into(),
            realm: "api.example".into(),
            url: "https://api.example/x".into(),
            preimage: Preimage(rand_bytes()),
            challenge: "{}".into(),
            deposit: msat(2_000),
            price: msat(100),
            requests: 0,
            return_hash: PaymentHash(rand_bytes()),
            return_invoice: "lnbcrt1return".into(),
            idle_secs: 300,
            status: BuyerSessionStatus::Opening,
            refund: None,
            refund_status: None,
            opened_at: T0,
            last_used_at: T0,
            closed_at: None,
            pending_top_up: None,
        };
        b.save_buyer_session(&session).await.unwrap();
        assert_eq!(
            b.open_buyer_session("w", "https://api.example", "api.example")
                .await
                .unwrap(),
            None
        );
        // Opened: the deposit's preimage replaces the placeholder written before paying.
        session.status = BuyerSessionStatus::Open;
        session.preimage = Preimage(rand_bytes());
        session.pending_top_up = Some(PaymentHash(rand_bytes()));
        b.save_buyer_session(&session).await.unwrap();
        // Requests are counted in place, all of them when they come at once; a save of the
        // whole row (with a count read before) does not undo them.
        let counts = futures::future::join_all((0..3).map(|i| {
            b.count_buyer_session_request(
                "w",
                &session.id,
                "https://api.example/y",
                (i == 2).then_some("{\"id\":\"c2\"}"),
                T0 + 1,
            )
        }))
        .await;
        let mut counts: Vec<u64> = counts.into_iter().map(|n| n.unwrap().unwrap()).collect();
        counts.sort_unstable();
        assert_eq!(counts, [1, 2, 3]);
        b.save_buyer_session(&session).await.unwrap();
        assert_eq!(
            b.count_buyer_session_request("w", &PaymentHash(rand_bytes()), "x", None, T0)
                .await
                .unwrap(),
            None
        );
        session.requests = 3;
        session.url = "https://api.example/y".into();
        session.challenge = "{\"id\":\"c2\"}".into();
        session.last_used_at = T0 + 1;
        b.save_buyer_session(&session).await.unwrap();
        assert_eq!(
            b.open_buyer_session("w", "https://api.example", "api.example")
                .await
                .unwrap(),
            Some(session.clone())
        );
        assert_eq!(
            b.open_buyer_session("other", "https://api.example", "api.example")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            b.live_buyer_sessions("w").await.unwrap(),
            vec![session.clone()]
        );
        session.status = BuyerSessionStatus::Closed;
        session.refund = Some(msat(1_700));
        session.refund_status = Some("succeeded".into());
        session.closed_at = Some(T0 + 5);
        b.save_buyer_session(&session).await.unwrap();
        assert!(b.live_buyer_sessions("w").await.unwrap().is_empty());
        assert_eq!(
            b.buyer_session("w", &session.id).await.unwrap(),
            Some(session)
        );
    }

    /// Many instances at once: a charge is accepted once, a session is never spent past its
    /// deposit, and only one close wins (so only one refund is owed).
    pub async fn payment_decisions_are_atomic(stores: Vec<Storage>) {
        let hash = PaymentHash(rand_bytes());
        let id = PaymentHash(rand_bytes());
        stores[0]
            .mpp()
            .open_session(
                &NewSession {
                    id,
                    wallet: "seller",
                    service: "s",
                    deposit: msat(10_000),
                    return_invoice: "lnbcrt1r",
                    idle_secs: 300,
                },
                T0,
            )
            .await
            .unwrap();
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let m = stores[i % stores.len()].mpp();
                tokio::spawn(async move {
                    let consumed = m.consume_charge(&hash, "id", T0 + 60, T0).await.unwrap();
                    let spent = m
                        .spend_session(&id, msat(1_000), T0)
                        .await
                        .unwrap()
                        .is_some();
                    (consumed, spent)
                })
            })
            .collect();
        let (mut consumed, mut spent) = (0, 0);
        for t in tasks {
            let (c, s) = t.await.unwrap();
            consumed += u32::from(c);
            spent += u32::from(s);
        }
        assert_eq!((consumed, spent), (1, 10));
        let closes: Vec<_> = (0..10)
            .map(|i| {
                let m = stores[i % stores.len()].mpp();
                tokio::spawn(async move { m.close_session(&id, T0).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for t in closes {
            won += u32::from(t.await.unwrap().is_some());
        }
        assert_eq!(won, 1);
    }

    /// A backend's id for a payment is kept per backend, wallet, direction and payment hash;
    /// a later id (the payment after its quote) replaces the earlier one.
    pub async fn wallet_refs(s: &Storage) {
        let refs = s.refs();
        let (h1, h2) = (PaymentHash(rand_bytes()), PaymentHash(rand_bytes()));
        let key = |backend, wallet, direction, payment_hash| RefKey {
            backend,
            wallet,
            direction,
            payment_hash,
        };
        let out = key("strike", "w", Direction::Out, &h1);
        assert_eq!(refs.get_ref(&out).await.unwrap(), None);
        refs.put_ref(&out, "quote=c9a7e5d3", T0).await.unwrap();
        assert_eq!(
            refs.get_ref(&out).await.unwrap().as_deref(),
            Some("quote=c9a7e5d3")
        );
        refs.put_ref(&out, "quote=c9a7e5d3;payment=5e3b1d9f", T0 + 1)
            .await
            .unwrap();
        assert_eq!(
            refs.get_ref(&out).await.unwrap().as_deref(),
            Some("quote=c9a7e5d3;payment=5e3b1d9f"),
            "replaced"
        );
        // Every part of the key tells references apart.
        for other in [
            key("opennode", "w", Direction::Out, &h1),
            key("strike", "v", Direction::Out, &h1),
            key("strike", "w", Direction::In, &h1),
            key("strike", "w", Direction::Out, &h2),
        ] {
            assert_eq!(refs.get_ref(&other).await.unwrap(), None, "{other:?}");
        }
        let incoming = key("strike", "w", Direction::In, &h1);
        refs.put_ref(&incoming, "3f1c2a9e", T0).await.unwrap();
        assert_eq!(
            refs.get_ref(&incoming).await.unwrap().as_deref(),
            Some("3f1c2a9e")
        );
        assert_eq!(
            refs.get_ref(&out).await.unwrap().as_deref(),
            Some("quote=c9a7e5d3;payment=5e3b1d9f")
        );
        assert!(
            refs.put_ref(&out, "x", u64::MAX).await.is_err(),
            "a time beyond BIGINT is refused, not wrapped"
        );
    }

    /// An approval is opened once per resource, decided once, by the right secret, in time; it
    /// keeps how to pay it; nothing about it holds budget.
    pub async fn approvals_are_decided_once(s: &Storage) {
        let a = s.approvals();
        let (inv, _) = invoice(50_000);
        let mut payee = Payee::of_host("seller.example");
        payee.add_address("192.0.2.7".parse().unwrap());
        let request = ApprovalRequest {
            max_fee_msat: Some(2_000),
            payee: Some((payee.host.clone(), payee.key_list())),
            ..ApprovalRequest::default()
        };
        let subject = "https://seller.example/x";
        let opened = a
            .open_approval(&approval("a1", subject, &inv, &request, "h1", T0 + 300), T0)
            .await
            .unwrap();
        let Asked::Created(first) = opened else {
            panic!("{opened:?}")
        };
        assert_eq!(
            (first.status, first.amount, first.expires_at),
            (ApprovalStatus::Pending, msat(50_000), T0 + 300)
        );
        assert_eq!(first.reasons, ["above_sats", "new_host"]);
        assert_eq!(first.request.max_fee_msat, Some(2_000));
        assert_eq!(first.request.payee().unwrap(), payee);
        // Asked again for the same resource (another invoice): the open question, its secret
        // now the newest.
        let (other, _) = invoice(50_000);
        let again = a
            .open_approval(
                &approval("a2", subject, &other, &request, "h2", T0 + 400),
                T0 + 1,
            )
            .await
            .unwrap();
        let Asked::Existing(same) = again else {
            panic!("{again:?}")
        };
        assert_eq!(
            (same.id.as_str(), same.payment_hash),
            ("a1", inv.payment_hash)
        );
        assert!(matches!(
            a.decide_approval("w", "a1", decision(true, Some("h1")), T0 + 2)
                .await
                .unwrap(),
            Decided::WrongSecret
        ));
        assert!(matches!(
            a.decide_approval("v", "a1", decision(true, None), T0 + 2)
                .await
                .unwrap(),
            Decided::Unknown
        ));
        let taken = a
            .decide_approval("w", "a1", decision(true, Some("h2")), T0 + 2)
            .await
            .unwrap();
        let Decided::Taken(taken) = taken else {
            panic!("{taken:?}")
        };
        assert_eq!(
            (taken.status, taken.decided_by.as_deref(), taken.decided_at),
            (ApprovalStatus::Approved, Some("cli"), Some(T0 + 2))
        );
        // Decided once: neither approving nor denying again changes it.
        for approve in [true, false] {
            assert!(matches!(
                a.decide_approval("w", "a1", decision(approve, None), T0 + 3)
                    .await
                    .unwrap(),
                Decided::NotPending(x) if x.status == ApprovalStatus::Approved
            ));
        }
        a.settle_approval("a1", Ok(42), T0 + 4).await.unwrap();
        let paid = a.approval("w", "a1").await.unwrap().unwrap();
        assert_eq!(
            (paid.status, paid.payment_id),
            (ApprovalStatus::Paid, Some(42))
        );
        // A settled approval is not settled again.
        a.settle_approval("a1", Err("late"), T0 + 5).await.unwrap();
        assert_eq!(
            a.approval("w", "a1").await.unwrap().unwrap().status,
            ApprovalStatus::Paid
        );

        // Once decided, the resource may be asked about anew; a question nobody answers
        // expires, and cannot be approved after.
        let Asked::Created(second) = a
            .open_approval(
                &approval("b1", subject, &other, &request, "h3", T0 + 60),
                T0 + 10,
            )
            .await
            .unwrap()
        else {
            panic!("a new question")
        };
        assert_eq!(second.id, "b1");
        assert!(matches!(
            a.decide_approval("w", "b1", decision(true, None), T0 + 60)
                .await
                .unwrap(),
            Decided::Expired(x) if x.status == ApprovalStatus::Expired
        ));
        let (third_inv, _) = invoice(1_000);
        a.open_approval(
            &approval("c1", "invoice:c", &third_inv, &request, "h4", T0 + 100),
            T0 + 10,
        )
        .await
        .unwrap();
        a.open_approval(
            &approval("d1", "invoice:d", &third_inv, &request, "h5", T0 + 500),
            T0 + 10,
        )
        .await
        .unwrap();
        assert!(matches!(
            a.decide_approval("w", "d1", decision(false, None), T0 + 11)
                .await
                .unwrap(),
            Decided::Taken(x) if x.status == ApprovalStatus::Denied
        ));
        assert_eq!(a.expire_approvals("w", T0 + 100).await.unwrap(), 1);
        let all = a.approvals("w", None, 10).await.unwrap();
        let statuses: Vec<(&str, ApprovalStatus)> =
            all.iter().map(|x| (x.id.as_str(), x.status)).collect();
        assert_eq!(
            statuses,
            [
                ("b1", ApprovalStatus::Expired),
                ("c1", ApprovalStatus::Expired),
                ("d1", ApprovalStatus::Denied),
                ("a1", ApprovalStatus::Paid),
            ]
        );
        assert!(
            a.approvals("w", Some(ApprovalStatus::Pending), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(a.approvals("v", None, 10).await.unwrap().is_empty());
        // Nothing of this holds budget.
        let (_, used) = s
            .ledger()
            .budget_and_use("w", Some(&payee), T0)
            .await
            .unwrap();
        assert_eq!(used.daily_msat, 0);
    }

    /// A payee counts as paid before once any payment to it, under any of its names, is live.
    pub async fn payees_paid_before(s: &Storage) {
        let (l, a) = (s.ledger(), s.approvals());
        let mut seller = Payee::of_host("localhost");
        seller.add_address("127.0.0.1".parse().unwrap());
        assert!(!a.paid_before("w", &seller).await.unwrap());
        let (inv, _) = invoice(1_000);
        let id = reserved(
            l.reserve(
                &new("w", &inv, 0, Some(&seller)),
                &BudgetPolicy::default(),
                T0,
            )
            .await,
        );
        assert!(
            a.paid_before("w", &Payee::of_host("127.0.0.1"))
                .await
                .unwrap()
        );
        assert!(!a.paid_before("v", &seller).await.unwrap());
        assert!(
            !a.paid_before("w", &Payee::of_host("other.example"))
                .await
                .unwrap()
        );
        l.mark_failed(id, "no route", T0).await.unwrap();
        assert!(
            !a.paid_before("w", &seller).await.unwrap(),
            "a failed payment paid nobody"
        );
    }

    /// Many deciders at once (on `stores`, instances on one database): exactly one decision
    /// is taken.
    pub async fn one_of_many_deciders_wins(stores: Vec<Storage>) {
        let (inv, _) = invoice(1_000);
        let request = ApprovalRequest::default();
        stores[0]
            .approvals()
            .open_approval(
                &approval("race", "invoice:race", &inv, &request, "h", T0 + 300),
                T0,
            )
            .await
            .unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let a = stores[i % stores.len()].approvals();
                tokio::spawn(async move {
                    a.decide_approval("w", "race", decision(i % 2 == 0, None), T0 + 1)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut taken = 0;
        for t in tasks {
            match t.await.unwrap() {
                Decided::Taken(_) => taken += 1,
                Decided::NotPending(_) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(taken, 1);
    }

    /// Many payers at once against a budget for exactly ten payments: exactly ten are reserved,
    /// through `instances` separate connections to the storage (instances on one database).
    /// Reservations and their records racing from several instances, at clock readings
    /// around an hour's boundary in no order (as callers that read the clock, then waited for
    /// their turn, bring them): every one succeeds, none waits on another for good (on
    /// PostgreSQL a batch of reservations and a record could each hold a spend bucket the other
    /// wants next), and the windows end exact.
    pub async fn reservations_and_records_race_across_minutes(stores: Vec<Storage>) {
        let policy = BudgetPolicy {
            daily_msat: 1_000_000_000,
            hourly_msat: Some(1_000_000_000),
            ..BudgetPolicy::default()
        };
        let boundary = T0 - T0 % 3600 + 3600;
        let n: u64 = 240;
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let k = i as usize;
                let ledger = stores[k % stores.len()].ledger();
                // Every other payment recorded by another instance than the one that reserved
                // it (as a reconcile elsewhere would).
                let recorder = stores[(k + k % 2) % stores.len()].ledger();
                let policy = policy.clone();
                // Every other caller a few minutes earlier or later than its neighbour.
                let at = boundary - 150 + (i * 37) % 300;
                tokio::spawn(async move {
                    let (inv, pre) = invoice(1_000 + i);
                    let id = reserved(
                        ledger
                            .reserve(&new("race", &inv, 50, None), &policy, at)
                            .await,
                    );
                    tokio::task::yield_now().await;
                    if i % 5 == 4 {
                        recorder.mark_failed(id, "no route", at + 1).await.unwrap();
                        0
                    } else {
                        let paid = Settlement {
                            preimage: Some(&pre),
                            fee: msat(i % 7),
                            note: None,
                        };
                        recorder.mark_succeeded(id, &paid, at + 1).await.unwrap();
                        1_000 + i + i % 7
                    }
                })
            })
            .collect();
        let mut spent = 0;
        for t in tasks {
            spent += t.await.unwrap();
        }
        let (_, used) = stores[0]
            .ledger()
            .budget_and_use("race", None, boundary + 150)
            .await
            .unwrap();
        assert_eq!(used.daily_msat, spent);
        assert_eq!(used.reserved_msat, 0);
    }

    pub async fn concurrent_reservations_never_exceed_a_cap(stores: Vec<Storage>) {
        let policy = BudgetPolicy {
            daily_msat: 10 * 1_000,
            max_fee_floor_msat: 0,
            max_fee_ppm: 0,
            ..BudgetPolicy::default()
        };
        let invoices: Vec<DecodedInvoice> = (0..50).map(|_| invoice(1_000).0).collect();
        let invoices = Arc::new(invoices);
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let (ledger, invoices, policy) = (
                    stores[i % stores.len()].ledger(),
                    invoices.clone(),
                    policy.clone(),
                );
                tokio::spawn(async move {
                    ledger
                        .reserve(&new("fleet", &invoices[i], 0, None), &policy, T0)
                        .await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Reservation::Reserved { .. }) => ok += 1,
                Err(ReserveError::Refused(BudgetRefusal::Window { .. })) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ok, 10);
        let (_, used) = stores[0]
            .ledger()
            .budget_and_use("fleet", None, T0)
            .await
            .unwrap();
        assert_eq!(used.daily_msat, 10_000);
    }
}

/// One `#[tokio::test]` per rule of [`suite`], on storage opened by `$open`.
macro_rules! conformance {
    ($engine:ident, $open:ident $(, #[$attr:meta])?) => {
        mod $engine {
            use super::*;

            macro_rules! rule {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])?
                    async fn $name() {
                        let opened = $open().await;
                        suite::$name(&opened.storage).await;
                    }
                };
            }

            rule!(budgets);
            rule!(an_invoice_is_paid_at_most_once);
            rule!(windows_hold_reservations_and_spend);
            rule!(windows_are_exact_at_every_second);
            rule!(racing_settlements_are_whole_or_nothing);
            rule!(a_late_success_counts_once);
            rule!(income_and_reports);
            rule!(history_is_pruned_by_policy);
            rule!(pruning_goes_past_kept_rows_in_bounded_batches);
            rule!(expired_rows_are_pruned);
            rule!(the_token_cache);
            rule!(writes_kept_together);
            rule!(distrust_follows_every_name);
            rule!(approvals_are_decided_once);
            rule!(payees_paid_before);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])?
            async fn one_of_many_deciders_wins() {
                let opened = $open().await;
                suite::one_of_many_deciders_wins(vec![opened.storage.clone()]).await;
            }
            rule!(the_sellers_store);
            rule!(the_embedded_books);
            rule!(wallet_refs);
            rule!(payment_secrets_and_spent_charges);
            rule!(sessions_spend_credit_and_close_once);
            rule!(amountless_invoices_take_the_payers_amount);
            rule!(the_buyers_sessions);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])?
            async fn payment_decisions_are_atomic() {
                let opened = $open().await;
                suite::payment_decisions_are_atomic(vec![opened.storage.clone()]).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])?
            async fn accounts_pay_one_another_at_once() {
                let opened = $open().await;
                suite::accounts_pay_one_another_at_once(vec![opened.storage.clone()]).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])?
            async fn reservations_and_records_race_across_minutes() {
                let opened = $open().await;
                suite::reservations_and_records_race_across_minutes(vec![opened.storage.clone()])
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])?
            async fn concurrent_reservations_never_exceed_a_cap() {
                let opened = $open().await;
                suite::concurrent_reservations_never_exceed_a_cap(vec![opened.storage.clone()])
                    .await;
            }
        }
    };
}

conformance!(sqlite, sqlite);
conformance!(sqlite_pool_reads, sqlite_pool_reads);
conformance!(postgres, postgres, #[ignore = "needs PostgreSQL: tools/postgres/test.sh"]);

/// Three instances (three connection pools) on one PostgreSQL database reserving one wallet's
/// budget at once: the advisory lock serialises them, never a process lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn instances_on_one_database_share_one_cap() {
    let (_opened, stores) = three_instances().await;
    suite::concurrent_reservations_never_exceed_a_cap(stores).await;
}

/// Three instances reserving and recording one wallet's payments at once, around an hour's
/// boundary: no deadlock between a batch of reservations and a record, exact windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn instances_race_reservations_and_records() {
    let (_opened, stores) = three_instances().await;
    suite::reservations_and_records_race_across_minutes(stores).await;
}

/// The record of a payment another instance reserved takes its wallet's turn, as a batch does
/// (see pg_group's docs on deadlocks: run on its own, it held the payment's row before asking
/// for buckets a batch may hold). While a transaction holds the wallet's advisory lock, the
/// record waits for it; it is written once the lock is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn a_record_of_a_payment_reserved_elsewhere_waits_for_the_wallets_turn() {
    use sqlx::Connection;
    let (opened, stores) = three_instances().await;
    let (inv, _) = invoice(5_000);
    let id = reserved(
        stores[0]
            .ledger()
            .reserve(&new("buyer", &inv, 0, None), &BudgetPolicy::default(), T0)
            .await,
    );
    let url = opened.url.as_deref().unwrap();
    let mut holder = sqlx::PgConnection::connect(url).await.unwrap();
    let mut turn = holder.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(l402_mcp::storage::advisory_key("buyer"))
        .execute(&mut *turn)
        .await
        .unwrap();
    let there = stores[1].ledger();
    let record = tokio::spawn(async move { there.mark_failed(id, "reconciled", T0).await });
    let mut watcher = sqlx::PgConnection::connect(url).await.unwrap();
    let mut waited = false;
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if n > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(waited, "the record did not wait for the wallet's turn");
    assert!(!record.is_finished());
    turn.rollback().await.unwrap();
    record.await.unwrap().unwrap();
    let p = stores[2].ledger().payment(id).await.unwrap().unwrap();
    assert_eq!(p.status, Status::Failed);
}

/// An embedded payment whose record another instance wrote first (as a reconciliation
/// elsewhere would): the transfer's statement moves the money but leaves that record as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn a_record_written_elsewhere_is_not_written_again_by_the_transfer() {
    let (_opened, stores) = three_instances().await;
    let (here, there) = (&stores[0], &stores[1]);
    let b = here.books();
    seller_and_buyer(&b).await;
    let (inv, pre) = invoice(5_000);
    b.add_invoice(
        &EmbeddedInvoice {
            payment_hash: &inv.payment_hash,
            wallet: "seller",
            bolt11: &inv.bolt11,
            preimage: &pre,
            amount: msat(5_000),
            description: "conformance",
            expires_at: T0 + 3600,
        },
        T0,
    )
    .await
    .unwrap();
    let id = reserved(
        here.ledger()
            .reserve(&new("buyer", &inv, 0, None), &BudgetPolicy::default(), T0)
            .await,
    );
    there
        .ledger()
        .mark_failed(id, "reconciled", T0)
        .await
        .unwrap();
    let (settled, recorded) = settle_bare(&b, &inv, id).await;
    assert_eq!(settled.preimage, pre);
    assert!(!recorded, "the record was not pending any more");
    let p = here.ledger().payment(id).await.unwrap().unwrap();
    assert_eq!((p.status, p.preimage), (Status::Failed, None));
    assert_eq!(b.balance("buyer").await.unwrap(), msat(45_000));
}

/// A record that fails on the server (its fee overflows the spend buckets' sum) in a batch
/// of reservations: the reservations beside it are either reserved, with their rows in the
/// ledger, or refused as not committed; none is told it stands when it was rolled back (a
/// record runs without a savepoint of its own, and the failed statement aborts the batch's
/// transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn a_write_failing_on_the_server_sinks_no_neighbour() {
    let opened = postgres().await;
    let ledger = opened.storage.ledger();
    let policy = BudgetPolicy {
        daily_msat: 1_000_000_000,
        ..BudgetPolicy::default()
    };
    let (mut kept, mut sunk) = (0, 0);
    for _ in 0..20 {
        let (inv, pre) = invoice(1_000);
        let victim = reserved(
            ledger
                .reserve(&new("sink", &inv, 0, None), &policy, T0)
                .await,
        );
        // Reservations first, so that some of them run before the failing record in its batch.
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (ledger, policy) = (ledger.clone(), policy.clone());
                tokio::spawn(async move {
                    let (inv, _) = invoice(1_000);
                    ledger
                        .reserve(&new("sink", &inv, 0, None), &policy, T0)
                        .await
                })
            })
            .collect();
        let bad = Settlement {
            preimage: Some(&pre),
            fee: msat(i64::MAX as u64 - 10),
            note: None,
        };
        assert!(ledger.mark_succeeded(victim, &bad, T0 + 1).await.is_err());
        for t in tasks {
            match t.await.unwrap() {
                Ok(Reservation::Reserved { id }) => {
                    let row = ledger.payment(id).await.unwrap();
                    assert_eq!(row.map(|p| p.status), Some(Status::Pending), "#{id}");
                    kept += 1;
                }
                Err(ReserveError::Storage(_)) => sunk += 1,
                other => panic!("{other:?}"),
            }
        }
        let row = ledger.payment(victim).await.unwrap().unwrap();
        assert_eq!(row.status, Status::Pending);
    }
    // Every reservation that stands holds its amount, and nothing else is held.
    let (_, used) = ledger.budget_and_use("sink", None, T0 + 1).await.unwrap();
    assert_eq!(used.daily_msat, (kept + 20) * 1_000);
    eprintln!("{kept} reservations kept, {sunk} in the failed write's batch");
}

/// A transfer whose answer cannot be read (its invoice's preimage is not hex, as in a corrupt
/// row) is undone with its batch: no money moves behind an error, the invoice stays unpaid
/// (the transfer runs as one statement without a savepoint of its own, and the answer is read
/// after the money moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn an_unreadable_settlement_moves_no_money() {
    use sqlx::Connection;
    let opened = postgres().await;
    let b = opened.storage.books();
    payer_and_payee(&b).await;
    let pre = Preimage(rand_bytes());
    let hash = pre.payment_hash();
    b.add_invoice(
        &EmbeddedInvoice {
            payment_hash: &hash,
            wallet: "payee",
            bolt11: "lnbcrt1corrupt",
            preimage: &pre,
            amount: msat(1_000),
            description: "corrupt",
            expires_at: T0 + 600,
        },
        T0,
    )
    .await
    .unwrap();
    let mut c = sqlx::PgConnection::connect(opened.url.as_deref().unwrap())
        .await
        .unwrap();
    sqlx::query("UPDATE embedded_invoices SET preimage = 'not hex' WHERE payment_hash = $1")
        .bind(hash.to_hex())
        .execute(&mut c)
        .await
        .unwrap();
    assert!(
        b.settle("payer", "lnbcrt1corrupt", &hash, T0)
            .await
            .is_err()
    );
    assert_eq!(b.balance("payer").await.unwrap(), msat(10_000));
    assert_eq!(b.balance("payee").await.unwrap(), msat(0));
    let paid_by: Option<String> =
        sqlx::query_scalar("SELECT paid_by FROM embedded_invoices WHERE payment_hash = $1")
            .bind(hash.to_hex())
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(paid_by, None);
}

/// Three instances settling transfers between four accounts that pay one another: no
/// deadlock between batches of transfers, exact balances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn instances_cross_pay_embedded_accounts() {
    let (_opened, stores) = three_instances().await;
    suite::accounts_pay_one_another_at_once(stores).await;
}

/// Three instances on one PostgreSQL database deciding `Payment` charges, spends and closes at
/// once: one charge, never past a deposit, one close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn instances_on_one_database_decide_payments_once() {
    let (_opened, stores) = three_instances().await;
    suite::payment_decisions_are_atomic(stores).await;
}

/// Three instances deciding one approval at once: one decision is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: tools/postgres/test.sh"]
async fn instances_on_one_database_decide_an_approval_once() {
    let (_opened, stores) = three_instances().await;
    suite::one_of_many_deciders_wins(stores).await;
}
