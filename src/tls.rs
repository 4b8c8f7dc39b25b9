//! TLS (Redis's --tls-port and friends) with rustls: the server's
//! certificate and key, and client certificate checking as
//! `tls-auth-clients` asks (yes: required, optional: checked if sent, no).

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

use crate::config::Config;

/// The acceptor for the TLS port, or `None` when `tls-port` is 0.
pub fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>, String> {
    if config.get_int("tls-port") == 0 {
        return Ok(None);
    }
    let setting = |name: &str| config.get(name).filter(|v| !v.is_empty());
    let cert_file = setting("tls-cert-file").ok_or("No tls-cert-file configured!")?;
    let key_file = setting("tls-key-file").ok_or("No tls-key-file configured!")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|it| it.collect())
        .map_err(|e| format!("Failed to load certificate: {cert_file}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| format!("Failed to load private key: {key_file}: {e}"))?;

    let auth = config
        .get("tls-auth-clients")
        .unwrap_or_else(|| "yes".into());
    let builder = ServerConfig::builder();
    let builder = if auth == "no" {
        builder.with_no_client_auth()
    } else {
        let ca_file = setting("tls-ca-cert-file").ok_or(
            "Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, tls-replication or tls-auth-clients are enabled!",
        )?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&ca_file).map_err(|e| {
            format!("Failed to configure CA certificate(s) file/directory: {ca_file}: {e}")
        })? {
            let cert =
                cert.map_err(|e| format!("Failed to load CA certificate: {ca_file}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("Failed to load CA certificate: {ca_file}: {e}"))?;
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
        let verifier = if auth == "optional" {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        builder.with_client_cert_verifier(
            verifier
                .build()
                .map_err(|e| format!("Failed to configure client verification: {e}"))?,
        )
    };
    let server_config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("Failed to configure TLS certificate: {e}"))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server_config))))
}
