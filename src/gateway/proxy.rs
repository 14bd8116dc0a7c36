//! A reverse proxy to one upstream base URL, streaming request and response bodies.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, Request, Response, StatusCode, header};
use futures::TryStreamExt;
use tracing::warn;

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Forwards every request it gets to `upstream`.
#[derive(Clone, Debug)]
pub(crate) struct Proxy {
    client: reqwest::Client,
    upstream: reqwest::Url,
}

impl Proxy {
    pub fn new(upstream: &str) -> Result<Proxy, String> {
        crate::init_tls();
        let upstream = reqwest::Url::parse(upstream.trim())
            .map_err(|e| format!("upstream {upstream:?} is not a URL: {e}"))?;
        if !matches!(upstream.scheme(), "http" | "https") {
            return Err("upstream must be an http or https URL".into());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Proxy { client, upstream })
    }

    fn target(&self, request: &Request<Body>) -> String {
        let base = self.upstream.as_str().trim_end_matches('/');
        let pq = request.uri().path_and_query().map_or("/", |p| p.as_str());
        format!("{base}{pq}")
    }
}

/// Drop connection headers, and an L402 or `Payment` credential: it is the buyer's proof of
/// payment, for the gateway, not for the upstream.
fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        if HOP_BY_HOP.contains(&k.as_str()) {
            continue;
        }
        if k == header::AUTHORIZATION
            && v.to_str().is_ok_and(|a| {
                let scheme = a.split_whitespace().next().unwrap_or("");
                ["L402", "LSAT", "Payment"]
                    .iter()
                    .any(|s| scheme.eq_ignore_ascii_case(s))
            })
        {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}

/// The axum handler: forward and stream back.
pub(crate) async fn forward(State(proxy): State<Proxy>, request: Request<Body>) -> Response<Body> {
    let target = proxy.target(&request);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let host = request.headers().get(header::HOST).cloned();
    let mut headers = forwardable(request.headers());
    if let Some(ip) = peer {
        let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = chain.parse() {
            headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    if let Some(h) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), h);
    }
    let method = request.method().clone();
    let body = reqwest::Body::wrap_stream(request.into_body().into_data_stream());
    let upstream = proxy
        .client
        .request(method, &target)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let resp = match upstream {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "upstream request failed");
            let mut r = Response::new(Body::from("the upstream service is unavailable"));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return r;
        }
    };
    let mut out = Response::builder().status(resp.status().as_u16());
    if let Some(h) = out.headers_mut() {
        *h = forwardable(resp.headers());
    }
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    out.body(Body::from_stream(stream)).unwrap_or_else(|_| {
        let mut r = Response::new(Body::from("bad upstream response"));
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        r
    })
}
