//! The HTTP side of a fetch: one client (no environment proxy, addresses checked in its resolver),
//! redirects followed by hand with the network policy checked at every hop, the credential
//! presented only where it was bought, and bodies read within their limit.

use std::net::IpAddr;

use bytes::BytesMut;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::challenge::with_payment_hash;
use super::{Body, FetchError, FetchReceipt, FetchRequest, FetchResponse, Fetcher, Resource};
use crate::l402::{PaymentHash, b64};
use crate::netguard;
use crate::pay::Receipt;
use crate::payee::Payee;
use crate::storage::CachedToken;

/// Response headers passed back to the caller.
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-language",
    "cache-control",
    "etag",
    "last-modified",
    "location",
    "retry-after",
    "www-authenticate",
    "link",
    "payment-receipt",
];

/// A configured proxy. Its URL may hold a password: never in `Debug`.
pub(super) struct Proxy {
    pub(super) url: reqwest::Url,
    pub(super) host: String,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("host", &self.host).finish()
    }
}

/// What a request presents: a cached L402 credential for its origin and path (looked up at each
/// hop), one in hand (just bought), a payment hash in the body, or a `Payment` credential (sent
/// to the first hop only: it answers that server's challenge).
pub(super) enum Present<'a> {
    Cached,
    Token(CachedToken),
    PaymentHash(&'a PaymentHash),
    Payment { header: HeaderName, value: String },
}

/// One request of an exchange (the first, or a redirect).
#[derive(Clone, Copy)]
struct Hop<'a> {
    method: &'a reqwest::Method,
    url: &'a reqwest::Url,
    /// The credential bought for this hop's origin and path, if any.
    token: Option<&'a CachedToken>,
    body: Option<&'a str>,
    /// The body is JSON we wrote (a `payment_hash` resend).
    json_body: bool,
    /// Another origin than the caller asked for: the caller's own credentials stay behind.
    foreign_origin: bool,
    /// A `Payment` credential and the header it goes in.
    payment: Option<(&'a HeaderName, &'a str)>,
}

/// One request with its redirects: the final response, its URL, the credential sent there and
/// the address that answered (unknown through a proxy).
pub(super) struct Exchange {
    pub(super) response: reqwest::Response,
    pub(super) url: reqwest::Url,
    pub(super) token: Option<CachedToken>,
    pub(super) remote: Option<IpAddr>,
}

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

impl Fetcher {
    /// The HTTP client: no redirects (followed by hand, per hop), addresses checked by the
    /// network policy in the resolver, no proxy from the environment.
    pub(super) fn http(&self) -> Result<&reqwest::Client, FetchError> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        crate::init_tls();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("l402-mcp/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(netguard::resolver(
                self.policy,
                self.proxy.as_ref().map(|p| p.host.as_str()),
                self.resolved.clone(),
            ));
        if let Some(p) = &self.proxy {
            builder = builder.proxy(
                reqwest::Proxy::all(p.url.clone())
                    .map_err(|_| FetchError::Invalid("[fetch] proxy is not usable".into()))?,
            );
        }
        let client = builder
            .build()
            .map_err(|e| FetchError::Http(e.to_string()))?;
        // Two first calls at once may both build one; either is the same client.
        Ok(self.http.get_or_init(|| client))
    }

    /// The payee that answered `ex`: its host, the addresses that name resolved to, and the
    /// address that answered.
    pub(super) async fn payee_of(&self, ex: &Exchange) -> Payee {
        let mut payee = Payee::of_host(ex.url.host_str().unwrap_or_default());
        if let Some(url::Host::Domain(name)) = ex.url.host() {
            let known = self.resolved.get(name);
            let addrs = match known {
                Some(a) => a,
                None => netguard::lookup(name).await.unwrap_or_default(),
            };
            addrs.into_iter().for_each(|a| payee.add_address(a));
        }
        if let Some(ip) = ex.remote {
            payee.add_address(ip);
        }
        payee
    }

    /// Send the request and follow redirects, checking each hop against the network policy and
    /// presenting, at each hop, only a credential bought for that hop's origin and path.
    /// A token in hand (just bought) is presented at the first hop without asking the cache;
    /// later hops always ask it.
    pub(super) async fn exchange(
        &self,
        req: &FetchRequest,
        mut url: reqwest::Url,
        present: Present<'_>,
    ) -> Result<Exchange, FetchError> {
        let (payment_hash, mut known, mut payment) = match present {
            Present::Cached => (None, None, None),
            Present::Token(t) => (None, Some(t), None),
            Present::PaymentHash(h) => (Some(h), None, None),
            Present::Payment { header, value } => (None, None, Some((header, value))),
        };
        let mut method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| FetchError::Invalid(format!("{:?} is not an HTTP method", req.method)))?;
        let mut body = req.body.clone();
        if let Some(hash) = payment_hash {
            body = Some(with_payment_hash(body.as_deref(), hash));
        }
        // The caller's own headers (their Authorization, cookies) are for the origin they asked
        // for: a redirect elsewhere does not carry them.
        let asked_origin = reqwest::Url::parse(&req.url).ok().map(|u| u.origin());
        for _ in 0..=MAX_REDIRECTS {
            self.check_target(&url).await?;
            let here = Resource::of(&url);
            let foreign = asked_origin.as_ref() != Some(&url.origin());
            let credential = payment.take();
            let token = match (known.take(), &credential) {
                (Some(t), _) => Some(t),
                (None, Some(_)) => None,
                (None, None) => {
                    self.tokens
                        .find_token(&self.wallet, &here.origin, &here.path, self.clock.now())
                        .await?
                }
            };
            let hop = Hop {
                method: &method,
                url: &url,
                token: token.as_ref(),
                body: body.as_deref(),
                json_body: payment_hash.is_some(),
                foreign_origin: foreign,
                payment: credential.as_ref().map(|(h, v)| (h, v.as_str())),
            };
            let response = self.send(req, &hop).await?;
            // Through a proxy the address that answered is the proxy's, not the seller's.
            let remote = response
                .remote_addr()
                .map(|a| a.ip())
                .filter(|_| self.proxy.is_none());
            let status = response.status();
            let next = (status.is_redirection() && status != reqwest::StatusCode::NOT_MODIFIED)
                .then(|| {
                    response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .and_then(|l| url.join(l).ok())
                })
                .flatten();
            let Some(next) = next else {
                return Ok(Exchange {
                    response,
                    url,
                    token,
                    remote,
                });
            };
            if !matches!(next.scheme(), "http" | "https") {
                return Err(FetchError::Invalid(format!(
                    "redirected to a {} URL, which is not fetched",
                    next.scheme()
                )));
            }
            // 303, and 301/302 after a POST, turn into a GET without a body (as browsers do).
            if status == reqwest::StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = None;
            }
            url = next;
        }
        Err(FetchError::Http(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Check a hop's target against the network policy before anything is sent. An IP literal
    /// is checked here (names are checked by the resolver); through a proxy, which resolves
    /// names itself, every address the name resolves to here must be allowed.
    pub(super) async fn check_target(&self, url: &reqwest::Url) -> Result<(), FetchError> {
        match url.host() {
            Some(url::Host::Ipv4(v4)) => Ok(self.policy.check(&v4.to_string(), v4.into())?),
            Some(url::Host::Ipv6(v6)) => Ok(self.policy.check(&v6.to_string(), v6.into())?),
            Some(url::Host::Domain(name)) if self.proxy.is_some() => {
                let addrs = netguard::lookup(name).await.map_err(|e| {
                    FetchError::Http(format!(
                        "{name} does not resolve here ({e}); through a proxy, a name is fetched only when every address it resolves to is allowed"
                    ))
                })?;
                if addrs.is_empty() {
                    return Err(FetchError::Http(format!("{name} resolves to no address")));
                }
                self.policy.check_all(name, &addrs)?;
                self.resolved.put(name, addrs);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn send(
        &self,
        req: &FetchRequest,
        hop: &Hop<'_>,
    ) -> Result<reqwest::Response, FetchError> {
        let Hop {
            method,
            url,
            token,
            body,
            json_body,
            foreign_origin,
            payment,
        } = *hop;
        let mut headers = HeaderMap::new();
        for (k, v) in &req.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| FetchError::Invalid(format!("bad header name {k:?}")))?;
            // Headers only a browser sets, which pages (ours: the approval page, the dashboard)
            // take as proof that a person's page sent the request: never on the agent's word.
            if name == reqwest::header::ORIGIN || name.as_str().starts_with("sec-fetch-") {
                return Err(FetchError::Invalid(format!(
                    "header {k:?} is a browser's, not sent by fetch_paid"
                )));
            }
            if (name == AUTHORIZATION && token.is_some())
                || payment.is_some_and(|(h, _)| *h == name)
            {
                continue; // ours wins: it is what was paid for
            }
            if foreign_origin
                && (name == AUTHORIZATION
                    || name == reqwest::header::COOKIE
                    || name == reqwest::header::PROXY_AUTHORIZATION)
            {
                continue; // the caller's credentials stay with the origin they asked for
            }
            let value = HeaderValue::from_str(v)
                .map_err(|_| FetchError::Invalid(format!("bad value for header {k:?}")))?;
            headers.append(name, value);
        }
        if let Some(t) = token {
            let mut value = HeaderValue::from_str(&t.authorization())
                .map_err(|_| FetchError::Invalid("credential is not a valid header".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if let Some((name, value)) = payment {
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| FetchError::Invalid("credential is not a valid header".into()))?;
            value.set_sensitive(true);
            headers.insert(name.clone(), value);
        }
        if json_body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        // The Payment offers this wallet takes, best first (mppx sellers rank their 402 by it),
        // unless the caller said otherwise.
        let accept = HeaderName::from_static(crate::l402::mpp::accept::HEADER);
        if !headers.contains_key(&accept) {
            let prefer = req.prefer.unwrap_or(self.prefer);
            headers.insert(
                accept,
                HeaderValue::from_static(super::payment::accept_payment(
                    prefer,
                    self.sessions.is_some(),
                )),
            );
        }
        let mut builder = self
            .http()?
            .request(method.clone(), url.clone())
            .headers(headers)
            .timeout(req.timeout);
        if let Some(b) = body {
            builder = builder.body(b.to_owned());
        }
        builder.send().await.map_err(|e| match blocked_cause(&e) {
            Some(b) => FetchError::Blocked(b),
            None => FetchError::Http(describe_reqwest(&e)),
        })
    }

    pub(super) async fn finish(
        &self,
        ex: Exchange,
        req: &FetchRequest,
        paid: Option<&Receipt>,
    ) -> Result<FetchResponse, FetchError> {
        let Exchange {
            response: resp,
            url,
            token,
            ..
        } = ex;
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()))
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The budget left for the receipt is read while the body arrives.
        let (body, remaining) = tokio::join!(
            read_body(resp, req.max_response_bytes),
            self.budget_remaining()
        );
        let (bytes, truncated) = body?;
        let remaining = remaining?;
        Ok(FetchResponse {
            status,
            url: url.to_string(),
            headers,
            body: encode_body(&bytes, truncated, content_type.as_deref()),
            content_type,
            receipt: FetchReceipt {
                paid: paid.is_some_and(|r| !r.already_paid),
                amount_msat: paid.map_or(0, |r| r.amount_msat),
                fee_msat: paid.map_or(0, |r| r.fee_msat),
                payment_hash: paid
                    .map(|r| r.payment_hash.to_hex())
                    .or_else(|| token.as_ref().map(|t| t.payment_hash.to_hex())),
                token_reused: paid.is_none() && token.is_some(),
                scheme: token.as_ref().map(|t| t.scope.scheme),
                budget_remaining_msat: remaining,
                payment: None,
            },
        })
    }
}

pub(super) async fn read_body(
    resp: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), FetchError> {
    let mut out = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| FetchError::Http(describe_reqwest(&e)))?;
        let room = limit.saturating_sub(out.len());
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out.to_vec(), true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out.to_vec(), false))
}

pub(super) fn encode_body(bytes: &[u8], truncated: bool, content_type: Option<&str>) -> Body {
    let texty = content_type.is_none_or(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.starts_with("text/")
            || [
                "json",
                "xml",
                "javascript",
                "x-www-form-urlencoded",
                "yaml",
                "csv",
            ]
            .iter()
            .any(|t| ct.contains(t))
    });
    // A truncated body may end inside a UTF-8 sequence: keep the valid prefix.
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => Some(t),
        Err(e) if truncated && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(t) if texty => Body {
            encoding: "text",
            content: t.to_owned(),
            bytes: bytes.len(),
            truncated,
        },
        _ => Body {
            encoding: "base64",
            content: b64::encode(bytes),
            bytes: bytes.len(),
            truncated,
        },
    }
}

/// The network policy's refusal, when that is why a request failed.
pub(super) fn blocked_cause(e: &reqwest::Error) -> Option<crate::netguard::Blocked> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<crate::netguard::Blocked>() {
            return Some(b.clone());
        }
        source = s.source();
    }
    None
}

pub(super) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_body() || e.is_decode() {
        "could not read the response"
    } else {
        "failed"
    };
    format!("{kind}: {}", crate::error_chain(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let b = encode_body(b"{\"a\":1}", false, Some("application/json"));
        assert_eq!((b.encoding, b.content.as_str()), ("text", "{\"a\":1}"));
        let b = encode_body(&[0xff, 0x00], false, Some("image/png"));
        assert_eq!((b.encoding, b.content.as_str()), ("base64", "/wA="));
        // Cut inside a two-byte character: the valid prefix is kept as text.
        let b = encode_body(
            "né".as_bytes().get(..2).unwrap_or_default(),
            true,
            Some("text/plain"),
        );
        assert_eq!(
            (b.encoding, b.content.as_str(), b.truncated),
            ("text", "n", true)
        );
    }
}
