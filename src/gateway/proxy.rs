//! A reverse proxy to one upstream base URL, streaming request and response bodies.
//!
//! An `http://` upstream is reached through a bare hyper client (hyper-util's pooled `Client`
//! over an `HttpConnector`): the request's URI is the upstream's scheme and authority, parsed
//! once, with the request's own path and query (no URL parsed or built per request), and the
//! request's headers and bodies are passed on as they are, after the stripping below. This was
//! most of the proxy's own CPU per request with reqwest in between (BENCHMARKS.md section 5).
//! An `https://` upstream, or one with a user name or password in its URL, still goes through
//! reqwest (its TLS with the platform's roots; its Basic credentials from the URL).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::ConnectInfo;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use futures::future::BoxFuture;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tracing::warn;

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
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

/// Keep-alive connections kept to the upstream, as many as nginx's pool in the benchmark.
const POOL_IDLE_PER_HOST: usize = 64;
/// How long an idle pooled connection is kept (reqwest's default, which this proxy used).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on upstream connections (reqwest's defaults, kept).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// Forwards every request it gets to one upstream. A tower service (the gateway puts the
/// paywall in front of it); cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Proxy {
    inner: Arc<Upstream>,
}

#[derive(Debug)]
enum Upstream {
    /// `http://`: the bare hyper client.
    Plain(Box<Plain>),
    /// `https://`, or credentials in the URL: reqwest.
    Reqwest(ReqwestUpstream),
}

#[derive(Debug)]
struct Plain {
    client: Client<HttpConnector, Body>,
    scheme: Scheme,
    authority: Authority,
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
                .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
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
        })
    }

    /// Whether requests go through the bare hyper client (an `http://` upstream).
    #[cfg(test)]
    fn is_plain(&self) -> bool {
        matches!(*self.inner, Upstream::Plain(_))
    }
}

impl Plain {
    fn new(url: &reqwest::Url, base_path: String) -> Result<Plain, String> {
        let host = url.host_str().ok_or("the upstream URL has no host")?;
        // `host_str` keeps an IPv6 address's brackets, as an authority needs them.
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let authority = Authority::try_from(authority)
            .map_err(|e| format!("upstream host {host:?} is not usable: {e}"))?;
        let mut connector = HttpConnector::new();
        // reqwest's socket options, which this proxy had: no Nagle delay, TCP keep-alive.
        connector.set_nodelay(true);
        connector.set_keepalive(Some(TCP_KEEPALIVE));
        connector.set_keepalive_interval(Some(TCP_KEEPALIVE));
        connector.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
        // Redirects are the client's business: hyper's client never follows them. Nor does it
        // read HTTP_PROXY and friends (reqwest did): the upstream is reached directly, as nginx
        // reaches it.
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .build(connector);
        Ok(Plain {
            client,
            scheme: Scheme::HTTP,
            authority,
            base_path,
        })
    }

    /// The upstream URI for a request: its path appended to the upstream's, with its query.
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
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        let (mut parts, body) = request.into_parts();
        // HTTP/1.1 to the upstream whatever the client spoke (as reqwest sent it), and none of
        // the server's request extensions.
        parts.version = axum::http::Version::HTTP_11;
        parts.extensions = axum::http::Extensions::new();
        parts.uri = match self.target(std::mem::take(&mut parts.uri)) {
            Ok(uri) => uri,
            Err(e) => {
                warn!(error = %e, "cannot build the upstream URI");
                return unavailable();
            }
        };
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
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

/// Drop, in place, connection headers and an L402 or `Payment` credential: it is the buyer's
/// proof of payment, for the gateway, not for the upstream.
fn strip(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
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

/// The forwarding headers: the client's address appended to `X-Forwarded-For`, the `Host` it
/// asked for as `X-Forwarded-Host`; then [`strip`].
fn prepare(headers: &mut HeaderMap, peer: Option<std::net::IpAddr>) {
    let host = headers.get(header::HOST).cloned();
    strip(headers);
    if let Some(ip) = peer {
        let chain = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(chain)) {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }
    if let Some(h) = host {
        headers.insert(X_FORWARDED_HOST, h);
    }
}

impl Proxy {
    /// Forward `request` and stream the answer back; a 502 when the upstream cannot be reached.
    pub(crate) async fn forward(&self, mut request: Request<Body>) -> Response<Body> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        prepare(request.headers_mut(), peer);
        match &*self.inner {
            Upstream::Plain(p) => p.send(request).await,
            Upstream::Reqwest(r) => r.send(request).await,
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
    }

    #[test]
    fn upstream_uris_keep_the_base_path_and_the_query() {
        let target = |upstream: &str, uri: &str| {
            let p = Proxy::new(upstream).unwrap();
            match &*p.inner {
                Upstream::Plain(plain) => plain.target(uri.parse().unwrap()).unwrap().to_string(),
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
