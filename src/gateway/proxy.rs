//! A reverse proxy to one upstream base URL, streaming request and response bodies.
//!
//! An `http://` upstream is reached over HTTP/1.1 keep-alive connections that the request's
//! own task writes to and reads from ([`super::pool`], framing in [`super::http1`]): the
//! request's URI is its own path and query (below the upstream's base path), its `Host` the
//! upstream's, set once, and its headers and bodies are passed on as they are, after the
//! stripping below (and without `Expect`: the gateway's server answers a client's
//! `100-continue` itself). This was most of the proxy's own CPU per request with reqwest, then
//! hyper-util's pooled client, then hyper's client connections (BENCHMARKS.md section 5). An
//! `https://` upstream, or one with a user name or password in its URL, still goes through
//! reqwest (its TLS with the platform's roots; its Basic credentials from the URL).
//!
//! An upstream that has not answered (its status and headers) within [`RESPONSE_TIMEOUT`] is
//! given up: the client gets a 504.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::ConnectInfo;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use futures::future::BoxFuture;
use tracing::{info, warn};

use super::http1::{self, WireError};
use super::pool::{self, Pool, SendError};

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    // First: `strip` reads its bit to find the headers `Connection` names.
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What the client is told when the upstream cannot be reached or fails mid-answer.
const UNAVAILABLE: &str = "the upstream service is unavailable";
/// What the client is told when the upstream does not answer in time.
const TOO_SLOW: &str = "the upstream service did not answer in time";
/// What the client is told when its request's body stops coming.
const BODY_STALLED: &str = "the request's body stopped coming";

/// How long the upstream has to answer a request (its status and headers; the body may take
/// longer), counted from the request's start for a request without a body and from the end of
/// its body for one with a body, whose every step (each frame from the client, each write to
/// the upstream) has as long: nginx's `proxy_read_timeout`, `proxy_send_timeout` and
/// `client_body_timeout`. An `https://` upstream (through reqwest) has it from the request's
/// start, upload included.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Forwards every request it gets to one upstream. A tower service (the gateway puts the
/// paywall in front of it); cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Proxy {
    inner: Arc<Upstream>,
    timeout: Duration,
}

#[derive(Debug)]
enum Upstream {
    /// `http://`: hyper's HTTP/1 connections, pooled.
    Plain(Box<Plain>),
    /// `https://`, or credentials in the URL: reqwest.
    Reqwest(ReqwestUpstream),
}

#[derive(Debug)]
struct Plain {
    pool: Arc<Pool>,
    /// The upstream's host and port (unless 80), as its `Host` header.
    host: HeaderValue,
    /// The upstream's path without its trailing `/`: the request's path is appended to it.
    base_path: String,
}

#[derive(Debug)]
struct ReqwestUpstream {
    client: reqwest::Client,
    upstream: reqwest::Url,
    base_path: String,
}

impl Proxy {
    pub fn new(upstream: &str) -> Result<Proxy, String> {
        let url = reqwest::Url::parse(upstream.trim())
            .map_err(|e| format!("upstream {upstream:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("upstream must be an http or https URL".into());
        }
        let base_path = url.path().trim_end_matches('/').to_owned();
        let plain = url.scheme() == "http" && url.username().is_empty() && url.password().is_none();
        let inner = if plain {
            Upstream::Plain(Box::new(Plain::new(&url, base_path)?))
        } else {
            crate::init_tls();
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(pool::MAX_IDLE)
                .build()
                .map_err(|e| e.to_string())?;
            Upstream::Reqwest(ReqwestUpstream {
                client,
                upstream: url,
                base_path,
            })
        };
        Ok(Proxy {
            inner: Arc::new(inner),
            timeout: RESPONSE_TIMEOUT,
        })
    }

    /// The same proxy with another response timeout (tests).
    #[cfg(test)]
    fn with_timeout(mut self, timeout: Duration) -> Proxy {
        self.timeout = timeout;
        self
    }

    /// Whether requests go through hyper's connections (an `http://` upstream).
    #[cfg(test)]
    fn is_plain(&self) -> bool {
        matches!(*self.inner, Upstream::Plain(_))
    }
}

impl Plain {
    fn new(url: &reqwest::Url, base_path: String) -> Result<Plain, String> {
        let name = url.host_str().ok_or("the upstream URL has no host")?;
        // `host_str` keeps an IPv6 address's brackets, as a `Host` needs them; a socket
        // address does not.
        let addr = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => name.to_owned(),
        };
        let host = match url.port() {
            Some(port) => format!("{name}:{port}"),
            None => name.to_owned(),
        };
        let host = HeaderValue::try_from(host)
            .map_err(|e| format!("upstream host {name:?} is not usable: {e}"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        // Redirects are the client's business: they are passed back, never followed. Nor is
        // HTTP_PROXY and friends read (reqwest did): the upstream is reached directly, as
        // nginx reaches it.
        Ok(Plain {
            pool: Pool::new(addr, port),
            host,
            base_path,
        })
    }

    /// The request target for the upstream (origin-form): the request's path appended to the
    /// upstream's, with the request's query.
    fn target(&self, uri: Uri) -> Result<Uri, axum::http::Error> {
        let mut parts = uri.into_parts();
        let path_and_query = match parts.path_and_query.take() {
            Some(pq) if self.base_path.is_empty() => pq,
            pq => {
                let (path, query) = pq
                    .as_ref()
                    .map_or(("/", None), |pq| (pq.path(), pq.query()));
                let mut s = String::with_capacity(
                    self.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
                );
                s.push_str(&self.base_path);
                s.push_str(path);
                if let Some(q) = query {
                    s.push('?');
                    s.push_str(q);
                }
                PathAndQuery::try_from(s)?
            }
        };
        Ok(Uri::from(path_and_query))
    }

    async fn send(&self, request: Request<Body>, patience: Duration) -> Response<Body> {
        // The pool writes its own request line (always HTTP/1.1) and reads no extensions.
        let (mut parts, body) = request.into_parts();
        parts.uri = match self.target(std::mem::take(&mut parts.uri)) {
            Ok(uri) => uri,
            Err(e) => {
                warn!(error = %e, "cannot build the upstream URI");
                return unavailable();
            }
        };
        // The upstream is asked by its own name, not the client's (which `prepare` dropped).
        parts.headers.insert(header::HOST, self.host.clone());
        match self
            .pool
            .send(Request::from_parts(parts, body), patience)
            .await
        {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
            Err(SendError::Wire(WireError::TimedOut)) => timed_out(patience),
            Err(SendError::Wire(WireError::ClientStalled)) => {
                info!(
                    timeout_secs = patience.as_secs_f64(),
                    "the client stopped sending its request's body"
                );
                let mut r = Response::new(Body::from(BODY_STALLED));
                *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
                r
            }
            Err(e) => {
                warn!(error = %crate::error_chain(&e), "upstream request failed");
                unavailable()
            }
        }
    }
}

impl ReqwestUpstream {
    /// The upstream URL for a request: its path appended to the upstream's, with its query.
    fn target(&self, uri: &Uri) -> reqwest::Url {
        let mut url = self.upstream.clone();
        if self.base_path.is_empty() {
            url.set_path(uri.path());
        } else {
            url.set_path(&format!("{}{}", self.base_path, uri.path()));
        }
        url.set_query(uri.query());
        url
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let target = self.target(&parts.uri);
        let mut upstream = self
            .client
            .request(parts.method, target)
            .headers(parts.headers);
        // A request without a body is sent without one (no stream to poll, no chunked encoding).
        if !body.is_end_stream() {
            upstream = upstream.body(reqwest::Body::wrap_stream(body.into_data_stream()));
        }
        match upstream.send().await {
            Ok(resp) => {
                // The upstream's body as it is (its length known when it was).
                let mut out: Response<reqwest::Body> = resp.into();
                strip(out.headers_mut());
                out.map(Body::new)
            }
            Err(e) => {
                warn!(error = %e, "upstream request failed");
                unavailable()
            }
        }
    }
}

fn unavailable() -> Response<Body> {
    let mut r = Response::new(Body::from(UNAVAILABLE));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

/// 504, for an upstream that took longer than `timeout`.
fn timed_out(timeout: Duration) -> Response<Body> {
    warn!(
        timeout_secs = timeout.as_secs_f64(),
        "the upstream did not answer in time"
    );
    let mut r = Response::new(Body::from(TOO_SLOW));
    *r.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    r
}

/// Whether an `Authorization` value is a credential for the gateway (L402, LSAT, `Payment`).
fn ours(v: &HeaderValue) -> bool {
    // The scheme is the value's first word: read from the bytes, without checking the whole
    // (long) credential for visible ASCII first.
    let bytes = v.as_bytes();
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let rest = &bytes[start..];
    let end = rest
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(rest.len());
    let scheme = &rest[..end];
    [&b"L402"[..], b"LSAT", b"Payment"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
}

/// Drop, in place, connection headers (those named in `Connection` too) and an L402 or
/// `Payment` credential: it is the buyer's proof of payment, for the gateway, not for the
/// upstream.
fn strip(headers: &mut HeaderMap) {
    // One pass over the names present finds what there is to drop; most messages carry no
    // connection header but `Host`, and no credential.
    let (mut hop_by_hop, mut authorization) = (0u16, false);
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            hop_by_hop |= 1 << i;
        } else if name == header::AUTHORIZATION {
            authorization = true;
        }
    }
    if hop_by_hop & 1 != 0 {
        // `Connection` (HOP_BY_HOP[0]) names more headers to drop.
        let named: Vec<HeaderName> = http1::list(headers, header::CONNECTION)
            .filter_map(|n| HeaderName::from_bytes(n).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if hop_by_hop & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if !authorization {
        return;
    }
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return;
    };
    let single = values.next().is_none();
    if single {
        // The common case: one value, dropped if it is ours, without collecting the others.
        if ours(first) {
            headers.remove(header::AUTHORIZATION);
        }
        return;
    }
    if headers.get_all(header::AUTHORIZATION).iter().any(ours) {
        let others: Vec<HeaderValue> = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter(|v| !ours(v))
            .cloned()
            .collect();
        headers.remove(header::AUTHORIZATION);
        for v in others {
            headers.append(header::AUTHORIZATION, v);
        }
    }
}

/// `ip` as a header value. The last one made on this thread is kept: a connection's requests
/// all come from one address, and formatting it was most of what `prepare` cost.
fn address_value(ip: IpAddr) -> Option<HeaderValue> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((seen, value)) if *seen == ip => Some(value.clone()),
        _ => {
            let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.to_string())).ok()?;
            *last = Some((ip, value.clone()));
            Some(value)
        }
    })
}

/// The forwarding headers: the client's address appended to `X-Forwarded-For`, the `Host` it
/// asked for as `X-Forwarded-Host`; then [`strip`].
fn prepare(headers: &mut HeaderMap, peer: Option<IpAddr>) {
    let host = headers.get(header::HOST).cloned();
    strip(headers);
    if let Some(ip) = peer {
        let value = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => {
                HeaderValue::from_maybe_shared(bytes::Bytes::from(format!("{prev}, {ip}"))).ok()
            }
            None => address_value(ip),
        };
        if let Some(v) = value {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }
    if let Some(h) = host {
        headers.insert(X_FORWARDED_HOST, h);
    }
}

impl Proxy {
    /// Forward `request` and stream the answer back; a 502 when the upstream cannot be reached.
    pub(crate) async fn forward(&self, request: Request<Body>) -> Response<Body> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        self.forward_from(request, peer).await
    }

    /// [`Proxy::forward`] for a request from `peer`, however the server learnt it.
    pub(crate) async fn forward_from(
        &self,
        mut request: Request<Body>,
        peer: Option<IpAddr>,
    ) -> Response<Body> {
        prepare(request.headers_mut(), peer);
        let r = match &*self.inner {
            // The pool bounds each step itself (an upload that keeps moving may take longer).
            Upstream::Plain(p) => return p.send(request, self.timeout).await,
            Upstream::Reqwest(r) => r,
        };
        // Dropping a request not answered in time closes its upstream connection.
        match tokio::time::timeout(self.timeout, r.send(request)).await {
            Ok(response) => response,
            Err(_) => timed_out(self.timeout),
        }
    }
}

impl tower::Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let proxy = self.clone();
        Box::pin(async move { Ok(proxy.forward(request).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn credentials_for_the_gateway_are_dropped_and_others_kept() {
        for scheme in ["L402", "LSAT", "Payment", "l402", "  lsat", "payment"] {
            let mut h = map(&[("authorization", &format!("{scheme} abc:def"))]);
            strip(&mut h);
            assert!(h.get("authorization").is_none(), "{scheme}");
        }
        let mut h = map(&[("authorization", "Basic dXNlcjpwdw==")]);
        strip(&mut h);
        assert_eq!(h["authorization"], "Basic dXNlcjpwdw==");
        let mut h = map(&[
            ("authorization", "Bearer t1"),
            ("authorization", "L402 mac:pre"),
            ("authorization", "Basic b"),
        ]);
        strip(&mut h);
        let left: Vec<_> = h.get_all("authorization").iter().collect();
        assert_eq!(left, ["Bearer t1", "Basic b"]);
        // A scheme only starting like ours is not ours.
        let mut h = map(&[("authorization", "L402x abc")]);
        strip(&mut h);
        assert_eq!(h["authorization"], "L402x abc");
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = map(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("host", "example.com"),
            ("x-kept", "1"),
        ]);
        strip(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "1");
        // Headers named in `Connection` are the connection's too (RFC 9110 §7.6.1).
        let mut h = map(&[
            ("connection", "close, X-Hop-A"),
            ("connection", " x-hop-b ,"),
            ("x-hop-a", "1"),
            ("x-hop-b", "2"),
            ("x-kept", "1"),
        ]);
        strip(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "1");
    }

    #[test]
    fn forwarding_headers() {
        let ip = Some(std::net::IpAddr::from([10, 0, 0, 7]));
        let mut h = map(&[("host", "shop.example"), ("authorization", "L402 a:b")]);
        prepare(&mut h, ip);
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert!(h.get("host").is_none() && h.get("authorization").is_none());
        let mut h = map(&[("x-forwarded-for", "192.0.2.1")]);
        prepare(&mut h, ip);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 10.0.0.7");
        // The address kept from the last request is not given to another client's.
        for (addr, text) in [
            (std::net::IpAddr::from([10, 0, 0, 8]), "10.0.0.8"),
            (std::net::IpAddr::from([10, 0, 0, 8]), "10.0.0.8"),
            ("2001:db8::1".parse().unwrap(), "2001:db8::1"),
            (std::net::IpAddr::from([10, 0, 0, 7]), "10.0.0.7"),
        ] {
            let mut h = HeaderMap::new();
            prepare(&mut h, Some(addr));
            assert_eq!(h["x-forwarded-for"], text);
        }
    }

    #[test]
    fn upstream_uris_keep_the_base_path_and_the_query() {
        let target = |upstream: &str, uri: &str| {
            let p = Proxy::new(upstream).unwrap();
            match &*p.inner {
                Upstream::Plain(plain) => format!(
                    "http://{}{}",
                    plain.host.to_str().unwrap(),
                    plain.target(uri.parse().unwrap()).unwrap()
                ),
                Upstream::Reqwest(r) => r.target(&uri.parse().unwrap()).to_string(),
            }
        };
        assert_eq!(
            target("http://127.0.0.1:3000", "/api/x?a=1&b=2"),
            "http://127.0.0.1:3000/api/x?a=1&b=2"
        );
        assert_eq!(
            target("http://127.0.0.1:3000/v1/", "/api/x?a=1"),
            "http://127.0.0.1:3000/v1/api/x?a=1"
        );
        assert_eq!(
            target("http://up.example/v1", "/api"),
            "http://up.example/v1/api"
        );
        assert_eq!(target("http://[::1]:8080", "/a"), "http://[::1]:8080/a");
        // An absolute-form request target is sent to the upstream, not to the host it names.
        assert_eq!(
            target("http://127.0.0.1:3000", "http://elsewhere.example/x?q"),
            "http://127.0.0.1:3000/x?q"
        );
        // The upstream's own query is replaced by the request's, as before.
        assert_eq!(
            target("http://127.0.0.1:3000/?k=v", "/x"),
            "http://127.0.0.1:3000/x"
        );
        assert_eq!(
            target("https://up.example/v1/", "/api?z"),
            "https://up.example/v1/api?z"
        );
    }

    #[tokio::test]
    async fn an_upstream_that_does_not_answer_in_time_is_a_504() {
        // Accepts connections, reads, never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        for scheme in ["http", "https"] {
            let proxy = Proxy::new(&format!("{scheme}://{addr}"))
                .unwrap()
                .with_timeout(Duration::from_millis(200));
            let r = proxy
                .forward(Request::get("/x").body(Body::empty()).unwrap())
                .await;
            assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT, "{scheme}");
            let body = axum::body::to_bytes(r.into_body(), 1000).await.unwrap();
            assert_eq!(&body[..], TOO_SLOW.as_bytes(), "{scheme}");
        }
    }

    /// A body of `parts` pieces of ten bytes, `gap` apart, that then stalls for good if
    /// `stall`.
    fn trickle(
        parts: usize,
        gap: Duration,
        stall: bool,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        use futures::StreamExt as _;
        futures::stream::iter(0..parts)
            .then(move |_| async move {
                tokio::time::sleep(gap).await;
                Ok(Bytes::from_static(b"0123456789"))
            })
            .chain(futures::stream::once(async move {
                if stall {
                    std::future::pending::<()>().await;
                }
                Ok(Bytes::new())
            }))
    }

    #[tokio::test]
    async fn an_upload_longer_than_the_timeout_goes_through_while_it_moves() {
        // An upstream that answers with the length of what it got.
        let app = axum::Router::new().fallback(|body: Bytes| async move { body.len().to_string() });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        let proxy = Proxy::new(&format!("http://{addr}"))
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        let post = |body| Request::post("/x").body(body).unwrap();

        // Eight pieces 100 ms apart: 800 ms of upload, never 300 ms without one.
        let r = proxy
            .forward(post(Body::from_stream(trickle(
                8,
                Duration::from_millis(100),
                false,
            ))))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"80");

        // A body that stops coming: 408, the client's doing.
        let r = proxy
            .forward(post(Body::from_stream(trickle(1, Duration::ZERO, true))))
            .await;
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        let body = axum::body::to_bytes(r.into_body(), 1000).await.unwrap();
        assert_eq!(&body[..], BODY_STALLED.as_bytes());
    }

    #[tokio::test]
    async fn an_upstream_that_takes_a_body_and_never_answers_is_a_504() {
        // Reads whatever comes, never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt as _;
                    let mut sink = [0u8; 4096];
                    while s.read(&mut sink).await.is_ok_and(|n| n > 0) {}
                    std::future::pending::<()>().await;
                });
            }
        });
        let proxy = Proxy::new(&format!("http://{addr}"))
            .unwrap()
            .with_timeout(Duration::from_millis(200));
        let r = proxy
            .forward(
                Request::post("/x")
                    .body(Body::from_stream(trickle(3, Duration::ZERO, false)))
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn https_and_credentials_in_the_url_go_through_reqwest() {
        assert!(Proxy::new("http://127.0.0.1:3000").unwrap().is_plain());
        assert!(!Proxy::new("https://127.0.0.1:3000").unwrap().is_plain());
        assert!(
            !Proxy::new("http://user:pw@127.0.0.1:3000")
                .unwrap()
                .is_plain()
        );
        assert!(Proxy::new("ftp://127.0.0.1").is_err());
        assert!(Proxy::new("not a url").is_err());
    }
}
