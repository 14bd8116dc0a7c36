//! Trusting a node's own TLS certificate: LND's `tls.cert` and clnrest's `ca.pem` are not
//! signed by a public CA, so the certificate the user configures is what is trusted.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};

use crate::wallet::WalletError;

/// TLS settings for a backend with its own certificate (LND, Core Lightning).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// PEM certificate to trust (e.g. LND's `tls.cert`), in addition to the system roots.
    pub ca_cert_pem: Option<Vec<u8>>,
}

impl Tls {
    /// The certificate at `path` (a PEM file, see [`read_pem`]), or the system roots alone.
    pub fn from_pem_file(what: &str, path: Option<&std::path::Path>) -> Result<Tls, WalletError> {
        Ok(Tls {
            ca_cert_pem: read_pem(what, path)?,
        })
    }
}

/// A PEM certificate file, refused unless it holds one (reqwest reads zero from other text).
pub fn read_pem(
    what: &str,
    path: Option<&std::path::Path>,
) -> Result<Option<Vec<u8>>, WalletError> {
    let Some(path) = path else { return Ok(None) };
    let pem = std::fs::read(path)
        .map_err(|e| WalletError::Other(format!("cannot read {what} {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(WalletError::Other(format!(
            "{what} {} is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(Some(pem))
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
