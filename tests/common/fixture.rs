//! Shared pieces of the wallet contract tests: local fixtures that replay a node's documented
//! API, real invoices for them to return, and a buyer app on the backend under test.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use bitcoin::secp256k1::SecretKey;
use l402_mcp::app::App;
use l402_mcp::bolt11::{self, Network, NewInvoice};
use l402_mcp::clock::{ManualClock, SharedClock};
use l402_mcp::wallet::BackendConfig;

use super::T0;

/// A real regtest invoice signed by the key `[key_byte; 32]`, payable with `preimage`.
pub fn invoice_for(key_byte: u8, amount_msat: u64, preimage: [u8; 32]) -> String {
    regtest_invoice(key_byte, Some(amount_msat), preimage)
}

/// A real regtest invoice without an amount (the payer chooses it: a Payment session's return
/// invoice), signed by the key `[key_byte; 32]`, payable with `preimage`.
pub fn amountless_invoice_for(key_byte: u8, preimage: [u8; 32]) -> String {
    regtest_invoice(key_byte, None, preimage)
}

fn regtest_invoice(key_byte: u8, amount_msat: Option<u64>, preimage: [u8; 32]) -> String {
    let key = SecretKey::from_slice(&[key_byte; 32]).expect("test key");
    bolt11::create(
        &key,
        &NewInvoice {
            network: Network::Regtest,
            amount_msat,
            description: "contract test",
            payment_hash: l402_mcp::l402::PaymentHash(l402_mcp::l402::sha256(&preimage)),
            payment_secret: [key_byte ^ 0xff; 32],
            timestamp: T0,
            expiry_secs: 3600,
        },
    )
    .expect("invoice")
}

/// An invoice for `amount_msat` signed by a random key, with a random preimage (returned):
/// no node the tests run made it, and no two are alike (a long-lived LNbits remembers hashes).
pub fn random_invoice(network: Network, amount_msat: u64, timestamp: u64) -> (String, [u8; 32]) {
    let key = SecretKey::new(&mut rand::thread_rng());
    let preimage: [u8; 32] = rand::random();
    let bolt11 = bolt11::create(
        &key,
        &NewInvoice {
            network,
            amount_msat: Some(amount_msat),
            description: "from a node no wallet here knows",
            payment_hash: l402_mcp::l402::PaymentHash(l402_mcp::l402::sha256(&preimage)),
            payment_secret: rand::random(),
            timestamp,
            expiry_secs: 600,
        },
    )
    .expect("invoice");
    (bolt11, preimage)
}

/// A unix time as RFC 3339 (with milliseconds), as hosted wallets' APIs write dates.
pub fn rfc3339(t: u64) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.123Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A stand-in's `429 Too Many Requests` asking to come back in a second, with `body` (JSON).
pub fn too_many_requests(body: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", "1")],
        axum::Json(body),
    )
        .into_response()
}

/// Serve a fixture on loopback; its base URL.
pub async fn serve(app: Router) -> String {
    format!("http://{}", listen(app).await)
}

/// A listener on a free loopback port, and its address.
async fn bind_loopback() -> (tokio::net::TcpListener, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// Serve `app` on a free loopback port; its address.
pub async fn listen(app: Router) -> std::net::SocketAddr {
    let (listener, addr) = bind_loopback().await;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Serve a gateway on a free loopback port with the gateway's own server
/// ([`l402_mcp::gateway::serve_on`]); its address.
pub async fn listen_gateway(app: l402_mcp::gateway::Gateway) -> std::net::SocketAddr {
    let (listener, addr) = bind_loopback().await;
    let never = tokio_util::sync::CancellationToken::new();
    tokio::spawn(l402_mcp::gateway::serve_on(listener, app, never));
    addr
}

/// [`listen`], with each request's peer address available (`ConnectInfo<SocketAddr>`).
pub async fn listen_with_peers(app: Router) -> std::net::SocketAddr {
    let (listener, addr) = bind_loopback().await;
    let make = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, make).await;
    });
    addr
}

/// A shop on loopback selling every path for `price_msat` through `seller`: "the goods" for a
/// valid credential, else a fresh L402 challenge.
pub async fn shop(seller: l402_mcp::mint::Seller, price_msat: u64) -> std::net::SocketAddr {
    use axum::http::{HeaderMap, header};
    use axum::response::IntoResponse;
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let seller = seller.clone();
        async move {
            if let Some(auth) = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                && seller
                    .verify_authorization(auth, None, None)
                    .await
                    .expect("verify")
                    .valid
            {
                return "the goods".into_response();
            }
            super::challenge_402(&seller, price_msat).await
        }
    });
    listen(app).await
}

/// Wallet "w" on `backend`, in a fresh data dir, at time `T0`.
pub async fn open_app(backend: &BackendConfig) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock: SharedClock = ManualClock::new(T0);
    let app = App::open(dir.path(), "w", backend, clock)
        .await
        .expect("open app");
    (dir, app)
}
