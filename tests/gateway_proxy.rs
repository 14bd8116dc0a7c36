//! The gateway's reverse proxy, through real HTTP on a free route: what reaches the upstream
//! and what comes back (connection headers and credentials dropped both ways, forwarding
//! headers, the upstream's base path, redirects passed back, bodies streamed, keep-alive to the
//! upstream, a 502 when the upstream is down).
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use axum::routing::any;
use common::fixture::{listen_gateway, listen_with_peers};
use common::{Trade, trade};
use l402_mcp::gateway::discovery::About;
use l402_mcp::gateway::{self, Paywall, Price, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// What the upstream got: the peer it saw, method, path and query, headers, body length.
#[derive(Clone, Debug)]
struct Got {
    peer: SocketAddr,
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: usize,
}

type Seen = Arc<Mutex<Vec<Got>>>;
/// Lets the streaming path's second chunk go.
type Release = Arc<Mutex<Option<oneshot::Receiver<()>>>>;

/// An upstream recording what it gets. `/free/answer-headers` answers with connection headers
/// and a credential; `/free/redirect` with a 302; `/free/stream` with one chunk, then another
/// once `release` fires; anything else with what it saw.
async fn upstream(release: Release) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = Router::new().fallback(any(
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
              method: Method,
              uri: Uri,
              headers: HeaderMap,
              body: Bytes| {
            let s = s.clone();
            let release = release.clone();
            async move {
                let pq = uri.path_and_query().map(|p| p.as_str().to_owned());
                let pq = pq.unwrap_or_default();
                s.lock().unwrap().push(Got {
                    peer,
                    method,
                    uri: pq.clone(),
                    headers,
                    body: body.len(),
                });
                let b = Response::builder();
                match uri.path() {
                    "/free/answer-headers" => b
                        .header("keep-alive", "timeout=5")
                        .header("proxy-authenticate", "Basic realm=\"x\"")
                        .header("upgrade", "h2c")
                        .header("connection", "x-hop")
                        .header("x-hop", "for the gateway's connection")
                        .header("authorization", "L402 mac:preimage")
                        .header("x-upstream", "kept")
                        .body(Body::from("answer")),
                    "/free/redirect" => b
                        .status(StatusCode::FOUND)
                        .header("location", "/free/elsewhere")
                        .body(Body::empty()),
                    "/free/stream" => {
                        let rx = release.lock().unwrap().take();
                        // One chunk now, the second only when the test has read the first.
                        let first =
                            futures::stream::once(async { Ok::<_, std::io::Error>("first;") });
                        let second = futures::stream::once(async move {
                            if let Some(rx) = rx {
                                let _ = rx.await;
                            }
                            Ok::<_, std::io::Error>("second")
                        });
                        b.body(Body::from_stream(futures::StreamExt::chain(first, second)))
                    }
                    path if path.starts_with("/free/big/") => {
                        let n: usize = path["/free/big/".len()..].parse().unwrap();
                        b.body(Body::from(pattern(n)))
                    }
                    path if path.starts_with("/free/chunks/") => {
                        // The same bytes in pieces of 7,000, without a length.
                        let n: usize = path["/free/chunks/".len()..].parse().unwrap();
                        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
                            pattern(n).chunks(7000).map(|c| Ok(c.to_vec())).collect();
                        b.body(Body::from_stream(futures::stream::iter(pieces)))
                    }
                    _ => b.body(Body::from(format!(
                        "upstream saw {pq} ({} bytes)",
                        body.len()
                    ))),
                }
                .unwrap()
            }
        },
    ));
    (listen_with_peers(app).await, seen)
}

/// `n` bytes that are not all alike.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn about() -> About {
    About {
        name: "Test API".into(),
        description: "things".into(),
        base_url: None,
        network: "regtest".into(),
    }
}

/// A gateway with `/free` free in front of `upstream_url`.
async fn gateway_to(t: &Trade, upstream_url: &str) -> SocketAddr {
    let paywall = Paywall::new(
        t.seller.seller.clone(),
        vec![Route::new("/free", Price::Free)],
    );
    let app = gateway::app(paywall, upstream_url, about(), &[]).unwrap();
    listen_gateway(app).await
}

/// A gateway in front of a fresh recording upstream (at `base` below its root).
async fn gateway(t: &Trade, base: &str) -> (SocketAddr, Seen, oneshot::Sender<()>) {
    let (tx, rx) = oneshot::channel();
    let (up, seen) = upstream(Arc::new(Mutex::new(Some(rx)))).await;
    (gateway_to(t, &format!("http://{up}{base}")).await, seen, tx)
}

/// Send `request` as written on a new connection (which it must ask to close); the answer.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// GET `path` at the gateway `gw`.
async fn get(gw: SocketAddr, path: &str) -> reqwest::Response {
    http()
        .get(format!("http://{gw}{path}"))
        .send()
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    l402_mcp::init_tls();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn connection_headers_and_credentials_stay_at_the_gateway() {
    let t = trade().await;
    let (gw, seen, _release) = gateway(&t, "").await;
    let answer = raw(
        gw,
        "GET /free/h?a=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close, X-Hop\r\n\
         X-Hop: for this connection\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x-sum\r\n\
         Proxy-Authorization: Basic cHJveHk6cHc=\r\nUpgrade: h2c\r\n\
         Authorization: L402 bWFj:00ff\r\nX-Forwarded-For: 192.0.2.1\r\nX-Custom: kept\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("upstream saw /free/h?a=1 (0 bytes)"),
        "{answer}"
    );
    let got = seen.lock().unwrap().last().cloned().unwrap();
    for name in [
        "x-hop",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "upgrade",
        "authorization",
    ] {
        assert!(
            got.headers.get(name).is_none(),
            "{name} reached the upstream"
        );
    }
    assert_eq!(got.headers["x-custom"], "kept");
    assert_eq!(got.headers["x-forwarded-host"], "shop.example");
    assert_eq!(got.headers["x-forwarded-for"], "192.0.2.1, 127.0.0.1");
    // The upstream is asked by its own name, not the client's.
    let up_host = got.headers["host"].to_str().unwrap();
    assert!(up_host.starts_with("127.0.0.1:"), "{up_host}");

    // A credential that is not the gateway's (Basic, Bearer) is the upstream's: kept.
    let r = http()
        .get(format!("http://{gw}/free/basic"))
        .header("authorization", "Basic dXNlcjpwdw==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(got.headers["authorization"], "Basic dXNlcjpwdw==");
}

#[tokio::test]
async fn the_upstreams_connection_headers_and_credentials_are_not_passed_back() {
    let t = trade().await;
    let (gw, _, _release) = gateway(&t, "").await;
    let r = get(gw, "/free/answer-headers").await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    for name in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
        "authorization",
    ] {
        assert!(h.get(name).is_none(), "{name} came back from the upstream");
    }
    assert_eq!(h["x-upstream"], "kept");
    assert_eq!(h["content-length"], "6");
    assert_eq!(r.text().await.unwrap(), "answer");
}

#[tokio::test]
async fn the_upstreams_base_path_prefixes_every_request() {
    let t = trade().await;
    let (gw, seen, _release) = gateway(&t, "/v1/").await;
    let r = http()
        .post(format!("http://{gw}/free/x?q=1&r=%20"))
        .body("12345")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        "upstream saw /v1/free/x?q=1&r=%20 (5 bytes)"
    );
    let got = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (got.method, got.uri.as_str()),
        (Method::POST, "/v1/free/x?q=1&r=%20")
    );
}

#[tokio::test]
async fn redirects_are_passed_back_not_followed() {
    let t = trade().await;
    let (gw, seen, _release) = gateway(&t, "").await;
    let r = get(gw, "/free/redirect").await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/free/elsewhere");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn bodies_stream_through_without_a_length() {
    let t = trade().await;
    let (gw, seen, release) = gateway(&t, "").await;
    // A chunked request body (no length) reaches the upstream whole.
    let answer = raw(
        gw,
        "POST /free/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await;
    assert!(
        answer.ends_with("upstream saw /free/up (11 bytes)"),
        "{answer}"
    );
    assert_eq!(seen.lock().unwrap().last().unwrap().body, 11);
    // A GET's too.
    let answer = raw(
        gw,
        "GET /free/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(
        answer.ends_with("upstream saw /free/up (5 bytes)"),
        "{answer}"
    );

    // The answer's first chunk arrives while the upstream still holds back the second.
    let mut r = get(gw, "/free/stream").await;
    let first = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .expect("the first chunk was held back")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first;");
    release.send(()).unwrap();
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"second");
}

#[tokio::test]
async fn large_bodies_pass_whole_both_ways() {
    let t = trade().await;
    let (gw, seen, _release) = gateway(&t, "").await;
    let client = http();
    // Up: a megabyte and a bit, with its length.
    let r = client
        .post(format!("http://{gw}/free/upload"))
        .body(pattern(1_048_579))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        "upstream saw /free/upload (1048579 bytes)"
    );
    // Down: with a length, and in chunks.
    for path in ["/free/big/1048579", "/free/chunks/1048579"] {
        let r = get(gw, path).await;
        assert_eq!(r.status(), 200);
        let chunked = path.contains("chunks");
        assert_eq!(r.content_length().is_none(), chunked, "{path}");
        assert!(r.bytes().await.unwrap() == pattern(1_048_579), "{path}");
    }
    // HEAD: the length, no body, and the connection still good for the next request.
    let r = client
        .head(format!("http://{gw}/free/big/1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], "1000");
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get(gw, "/free/big/10").await;
    assert_eq!(r.bytes().await.unwrap(), pattern(10));
    let mut peers: Vec<SocketAddr> = seen.lock().unwrap().iter().map(|g| g.peer).collect();
    assert_eq!(peers.len(), 5);
    peers.dedup();
    assert_eq!(peers.len(), 1, "every exchange on one upstream connection");
}

#[tokio::test]
async fn connections_to_the_upstream_are_kept_alive() {
    let t = trade().await;
    let (gw, seen, _release) = gateway(&t, "").await;
    let client = http();
    for i in 0..20 {
        let r = client
            .get(format!("http://{gw}/free/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let mut peers: Vec<SocketAddr> = seen.lock().unwrap().iter().map(|g| g.peer).collect();
    assert_eq!(peers.len(), 20);
    peers.dedup();
    assert_eq!(
        peers.len(),
        1,
        "one upstream connection for sequential requests"
    );
}

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502() {
    let t = trade().await;
    // A port that was free a moment ago and has no listener now.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for scheme in ["http", "https"] {
        let gw = gateway_to(&t, &format!("{scheme}://{closed}")).await;
        let r = get(gw, "/free/x").await;
        assert_eq!(r.status(), 502, "{scheme}");
        assert_eq!(
            r.text().await.unwrap(),
            "the upstream service is unavailable",
            "{scheme}"
        );
    }
}
