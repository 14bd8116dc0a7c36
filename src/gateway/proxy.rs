//! A reverse proxy to one upstream base URL, streaming request and response bodies.

use std::net::SocketAddr;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
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
    /// The upstream's path without its trailing `/`: the request's path is appended to it.
    base_path: String,
}

impl Proxy {
    pub fn new(upstream: &str) -> Result<Proxy, String> {
        crate::init_tls();
        let upstream = reqwest::Url::parse(upstream.trim())
            .map_err(|e| format!("upstream {upstream:?} is not a URL: {e}"))?;
        if !matches!(upstream.scheme(), "http" | "https") {
            return Err("upstream must be an http or https URL".into());
        }
        // Keep-alive connections to the upstream, as many as nginx's pool in the benchmark.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| e.to_string())?;
        let base_path = upstream.path().trim_end_matches('/').to_owned();
        Ok(Proxy {
            client,
            upstream,
            base_path,
        })
    }

    /// The upstream URL for a request: its path appended to the upstream's, with its query.
    /// Built from the parsed upstream (not a string parsed again per request: the host's
    /// parsing was a visible share of the proxy's CPU).
    fn target(&self, uri: &axum::http::Uri) -> reqwest::Url {
        let mut url = self.upstream.clone();
        if self.base_path.is_empty() {
            url.set_path(uri.path());
        } else {
            url.set_path(&format!("{}{}", self.base_path, uri.path()));
        }
        url.set_query(uri.query());
        url
    }
}

/// Drop, in place, connection headers and an L402 or `Payment` credential: it is the buyer's
/// proof of payment, for the gateway, not for the upstream.
fn strip(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    let ours = |v: &HeaderValue| {
        v.to_str().is_ok_and(|a| {
            let scheme = a.split_whitespace().next().unwrap_or("");
            ["L402", "LSAT", "Payment"]
                .iter()
                .any(|s| scheme.eq_ignore_ascii_case(s))
        })
    };
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

/// The axum handler: forward and stream back.
pub(crate) async fn forward(State(proxy): State<Proxy>, request: Request<Body>) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let target = proxy.target(&parts.uri);
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let host = parts.headers.get(header::HOST).cloned();
    let mut headers = std::mem::take(&mut parts.headers);
    strip(&mut headers);
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
    let mut upstream = proxy.client.request(parts.method, target).headers(headers);
    // A request without a body is sent without one (no stream to poll, no chunked encoding).
    if !body.is_end_stream() {
        upstream = upstream.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let resp = match upstream.send().await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "upstream request failed");
            let mut r = Response::new(Body::from("the upstream service is unavailable"));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return r;
        }
    };
    // The upstream's body as it is (its length known when it was): no stream adapter between.
    let mut out: Response<reqwest::Body> = resp.into();
    strip(out.headers_mut());
    out.map(Body::new)
}
