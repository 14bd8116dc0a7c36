//! Shared set-up for integration tests: two embedded wallets trading in one data dir
//! ([`trade`]), a buyer on any backend, the scripted fake wallet included ([`buyer::Buyer`]),
//! invoices and loopback servers for fixtures ([`fixture`]), MCP agents ([`agents`]).
#![allow(dead_code)]
// Test helpers: a failed set-up is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod agents;
pub mod buyer;
pub mod fixture;
pub mod pg;
pub mod refs;

use std::sync::Arc;

use bitcoin::secp256k1::SecretKey;
use l402_mcp::app::App;
use l402_mcp::bolt11::{self, Network, NewInvoice};
use l402_mcp::clock::{ManualClock, SharedClock};

pub const T0: u64 = 1_800_000_000;

pub struct Trade {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub buyer: App,
    pub seller: App,
}

pub async fn trade() -> Trade {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(T0);
    let shared: SharedClock = clock.clone();
    let buyer = App::open_embedded(dir.path(), "buyer", shared.clone())
        .await
        .expect("buyer");
    let seller = App::open_embedded(dir.path(), "seller", shared)
        .await
        .expect("seller");
    Trade {
        dir,
        clock,
        buyer,
        seller,
    }
}

/// An invoice signed by a key no embedded wallet has.
pub fn foreign_invoice(
    network: Network,
    amount_msat: Option<u64>,
    timestamp: u64,
    expiry_secs: u64,
) -> String {
    let key = SecretKey::from_slice(&[0x42; 32]).expect("key");
    bolt11::create(
        &key,
        &NewInvoice {
            network,
            amount_msat,
            description: "not from here",
            payment_hash: l402_mcp::l402::PaymentHash([0x77; 32]),
            payment_secret: [0x01; 32],
            timestamp,
            expiry_secs,
        },
    )
    .expect("invoice")
}

pub async fn balance(app: &App) -> u64 {
    app.wallet.balance().await.expect("balance").msat
}

impl Trade {
    /// A fresh invoice from the seller, valid for 10 minutes.
    pub async fn invoice(&self, amount_msat: u64) -> String {
        let (inv, _) = self
            .seller
            .seller
            .create_invoice(amount_msat, "test", 600)
            .await
            .expect("invoice");
        inv.bolt11
    }

    /// The seller's verdict on an `Authorization` value.
    pub async fn verify(
        &self,
        authorization: &str,
        service: Option<&str>,
        capability: Option<&str>,
    ) -> l402_mcp::mint::Verification {
        self.seller
            .seller
            .verify_authorization(authorization, service, capability)
            .await
            .expect("verify")
    }
}

/// A 402 answer with a fresh challenge from `seller` for `amount_msat`, as a test seller sends it.
pub async fn challenge_402(
    seller: &l402_mcp::mint::Seller,
    amount_msat: u64,
) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let c = seller
        .create_challenge(&l402_mcp::mint::ChallengeRequest {
            amount_msat,
            ..Default::default()
        })
        .await
        .expect("challenge");
    let mut r = StatusCode::PAYMENT_REQUIRED.into_response();
    for line in c.www_authenticate {
        r.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&line).expect("header"),
        );
    }
    r
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// An HTTP client, once `url` answers (any status); panics after 10 s.
pub async fn http_when_up(url: &str) -> reqwest::Client {
    l402_mcp::init_tls();
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(url).send().await.is_ok() {
            return http;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{url} did not come up");
}

/// README.md's text.
pub fn readme() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// The inline code spans of a piece of Markdown.
pub fn code_spans(s: &str) -> Vec<String> {
    s.split('`')
        .enumerate()
        .filter(|(n, _)| n % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}
