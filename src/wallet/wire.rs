//! What `Rest` does not do: streamed answers (LND's routerrpc), form bodies (Phoenixd), the
//! lenient integer and msat reading node APIs need, and trusting a node's own TLS certificate.
//! The clients here are set up and fail exactly as `Rest` does (see `rest.rs`).
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::wallet::WalletError;
use crate::wallet::rest::{RestError, Tls, clip, decode_error};

/// Largest streamed message kept in memory.
const MAX_MESSAGE: usize = 4 << 20;

/// An HTTP client for one backend, set up as `Rest` sets up its own.
#[derive(Clone)]
pub struct StreamClient {
    client: reqwest::Client,
    base: Url,
}

impl std::fmt::Debug for StreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl StreamClient {
    pub fn new(
        base_url: &str,
        headers: &[(&str, &str)],
        tls: &Tls,
        timeout: Duration,
    ) -> Result<StreamClient, WalletError> {
        let (client, base) = super::rest::backend_client(base_url, headers, tls, timeout)?;
        Ok(StreamClient { client, base })
    }

    fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder, RestError> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| RestError::NotSent(format!("bad path {path}: {e}")))?;
        Ok(self.client.request(method, url))
    }

    /// Send a request and keep its answer open for reading as a stream of JSON values.
    /// An error status is read whole and returned as [`RestError::Status`].
    pub async fn open(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<JsonStream, RestError> {
        let mut req = self.request(method, path)?;
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = send(req).await?;
        Ok(JsonStream {
            resp,
            buf: Vec::new(),
            done: false,
        })
    }

    /// POST a form (`application/x-www-form-urlencoded`) once, and read a JSON answer.
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        path: &str,
        fields: &[(&str, String)],
    ) -> Result<T, RestError> {
        let req = self
            .request(Method::POST, path)?
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form_body(fields));
        let resp = send(req).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| RestError::Timeout(chain(&e)))?;
        serde_json::from_slice(&bytes).map_err(|e| decode_error(&e, &bytes))
    }
}

fn form_body(fields: &[(&str, String)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        form.append_pair(k, v);
    }
    form.finish()
}

/// TLS that trusts the configured certificates only: a server presenting exactly one of
/// them, or a chain to one of them as root. The first covers LND's own `tls.cert`, which is
/// self-signed with `CA:TRUE` and so refused by WebPKI as a server certificate
/// (`CaUsedAsEndEntity`, lightningnetwork/lnd#5450); the second clnrest's `ca.pem`.
pub fn trusting(pem: &[u8]) -> Result<rustls::ClientConfig, WalletError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad = |e: String| WalletError::Other(format!("TLS certificate is not valid PEM: {e}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    crate::init_tls();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
    let chains = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .ok();
    let verifier = PinnedOrChained {
        pinned: certs,
        chains,
        provider: provider.clone(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WalletError::Other(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[derive(Debug)]
struct PinnedOrChained {
    pinned: Vec<rustls::pki_types::CertificateDer<'static>>,
    chains: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedOrChained {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The very certificate the user handed us: it is the node's identity.
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chains {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Send once; a failure is classified as `Rest` classifies it.
async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, RestError> {
    let resp = req.send().await.map_err(|e| {
        if e.is_connect() || e.is_builder() {
            RestError::NotSent(chain(&e))
        } else {
            // A timeout, or a connection lost mid-answer: the request may have gone out.
            RestError::Timeout(chain(&e))
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| RestError::Decode(chain(&e)))?;
    Err(RestError::Status {
        status: status.as_u16(),
        body: clip(&String::from_utf8_lossy(&bytes)),
    })
}

/// An open answer read as consecutive JSON values (LND writes one per line).
pub struct JsonStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
    done: bool,
}

impl JsonStream {
    /// The next value; `None` when the answer ended. A read failure is a
    /// [`RestError::Timeout`]: the backend may have acted on the request.
    pub async fn next(&mut self) -> Result<Option<Value>, RestError> {
        loop {
            let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter();
            match values.next() {
                Some(Ok(v)) => {
                    let used = values.byte_offset();
                    self.buf.drain(..used);
                    return Ok(Some(v));
                }
                Some(Err(e)) if !e.is_eof() => return Err(decode_error(&e, &self.buf)),
                _ => {}
            }
            if self.done {
                return if self.buf.iter().all(u8::is_ascii_whitespace) {
                    Ok(None)
                } else {
                    Err(RestError::Decode("the answer ended mid-message".into()))
                };
            }
            if self.buf.len() > MAX_MESSAGE {
                return Err(RestError::Decode("a streamed message is too large".into()));
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(None) => self.done = true,
                Err(e) => return Err(RestError::Timeout(chain(&e))),
            }
        }
    }
}

fn chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// An unsigned integer sent as a number, a string (`"1000"`, proto3 JSON) or a string with
/// an `msat` suffix (`"1000msat"`, older Core Lightning); absent or null is `None`.
pub fn de_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{n} is not an amount"))),
        Some(Value::String(s)) => {
            let t = s.trim();
            let t = t.strip_suffix("msat").unwrap_or(t);
            t.parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an amount")))
        }
        Some(other) => Err(serde::de::Error::custom(format!(
            "{other} is not an amount"
        ))),
    }
}

/// The integer after `"key":` in a JSON text that may be cut short.
pub fn scan_int(text: &str, key: &str) -> Option<i64> {
    let rest = after_key(text, key)?;
    let end = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

/// The string after `"key":` in a JSON text that may be cut short (escapes left as sent).
pub fn scan_str(text: &str, key: &str) -> Option<String> {
    let rest = after_key(text, key)?.strip_prefix('"')?;
    let mut end = rest.len();
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                end = i;
                break;
            }
            _ => escaped = false,
        }
    }
    Some(rest[..end].to_owned())
}

fn after_key<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = text[at + key.len() + 2..].trim_start();
    Some(rest.strip_prefix(':')?.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_cut_json() {
        let body = r#"{"code":205,"message":"Ran out of routes to try after 3 attempts","data":{"getroute_tries":3,"sen"#;
        assert_eq!(scan_int(body, "code"), Some(205));
        assert_eq!(
            scan_str(body, "message").as_deref(),
            Some("Ran out of routes to try after 3 attempts")
        );
        assert_eq!(scan_int(r#"{"code": -32602, "m"#, "code"), Some(-32602));
        assert_eq!(scan_int(r#"{"failcode":16399}"#, "code"), None);
        assert_eq!(
            scan_str(r#"{"message":"cut sh"#, "message").as_deref(),
            Some("cut sh")
        );
    }

    #[test]
    fn reads_amounts_in_every_form() {
        #[derive(Deserialize)]
        struct A {
            #[serde(default, deserialize_with = "de_u64")]
            a: Option<u64>,
        }
        let read = |s: &str| serde_json::from_str::<A>(s).map(|a| a.a).ok();
        assert_eq!(read(r#"{"a":1000}"#), Some(Some(1000)));
        assert_eq!(read(r#"{"a":"1000"}"#), Some(Some(1000)));
        assert_eq!(read(r#"{"a":"1000msat"}"#), Some(Some(1000)));
        assert_eq!(read(r#"{"a":null}"#), Some(None));
        assert_eq!(read(r#"{}"#), Some(None));
        assert_eq!(read(r#"{"a":"ten"}"#), None);
        assert_eq!(read(r#"{"a":-1}"#), None);
    }
}
