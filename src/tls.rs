//! TLS (Redis's --tls-port and friends) with rustls: the server's
//! certificate and key, client certificate checking as
//! `tls-auth-clients` asks (yes: required, optional: checked if sent, no),
//! and the outgoing side for `tls-replication` (a replica's link to its
//! primary) and `tls-cluster` (the cluster bus both ways, and MIGRATE).
//!
//! As in Redis, one set of files serves every direction: outgoing
//! connections present `tls-client-cert-file` / `tls-client-key-file`
//! when set, else `tls-cert-file` / `tls-key-file`, and check the peer's
//! certificate chain against `tls-ca-cert-file`. Like Redis (OpenSSL with
//! SSL_VERIFY_PEER and no host check), the peer's name is not compared
//! with the address dialled: nodes are reached by IP and their
//! certificates rarely name it. The cluster bus listener always requires
//! a client certificate, whatever `tls-auth-clients` says (Redis's
//! TLS_CLIENT_AUTH_YES there).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::verify_server_cert_signed_by_trust_anchor;
use tokio_rustls::rustls::crypto::{
    WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use tokio_rustls::rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, StreamOwned,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::Config;

/// Everything TLS, built once at start from the tls-* settings.
pub struct Tls {
    /// The tls-port's acceptor; `None` when tls-port is 0.
    pub clients: Option<TlsAcceptor>,
    /// The cluster bus listener's acceptor (client certificate required);
    /// `None` unless tls-cluster is yes.
    pub bus: Option<TlsAcceptor>,
    /// tls-replication: a replica reaches its primary over TLS.
    pub replication: bool,
    /// tls-cluster: bus links and MIGRATE use TLS, and the node announces
    /// its tls-port as its client port.
    pub cluster: bool,
    client: Arc<ClientConfig>,
}

/// A byte stream to a peer, plain TCP or TLS, for the links that may be
/// either (replication, the cluster bus).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An outgoing connection with what its callers need from the socket
/// underneath (a TLS stream hides it).
pub struct Dialed {
    pub stream: Box<dyn Stream>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub fd: RawFd,
}

/// Why `dial` failed: the TCP connection, or the TLS handshake over it
/// (a peer that is there but refuses us, worth a log line).
#[derive(Debug)]
pub enum DialError {
    Connect(String),
    Tls(String),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Connect(e) => f.write_str(e),
            DialError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

impl From<DialError> for String {
    fn from(e: DialError) -> String {
        e.to_string()
    }
}

/// Connects to `host:port` within `timeout` (TCP connect, then the TLS
/// handshake when `tls` is given), with TCP_NODELAY set.
pub async fn dial(
    tls: Option<&Tls>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Dialed, DialError> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| DialError::Connect("connect timeout".into()))?
        .map_err(|e| DialError::Connect(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let (Ok(peer), Ok(local)) = (tcp.peer_addr(), tcp.local_addr()) else {
        return Err(DialError::Connect("socket lost".into()));
    };
    let fd = tcp.as_raw_fd();
    let stream: Box<dyn Stream> = match tls {
        None => Box::new(tcp),
        Some(tls) => {
            let connector = TlsConnector::from(tls.client.clone());
            let name = server_name(host).map_err(DialError::Tls)?;
            let s = tokio::time::timeout(timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| DialError::Tls("timeout".into()))?
                .map_err(|e| DialError::Tls(e.to_string()))?;
            Box::new(s)
        }
    };
    Ok(Dialed {
        stream,
        peer,
        local,
        fd,
    })
}

impl Tls {
    /// A TLS session over a connected blocking socket (MIGRATE), its
    /// handshake done (bounded by the socket's timeouts).
    pub fn connect_blocking(
        &self,
        mut tcp: std::net::TcpStream,
        host: &str,
    ) -> Result<StreamOwned<ClientConnection, std::net::TcpStream>, String> {
        let mut conn = ClientConnection::new(self.client.clone(), server_name(host)?)
            .map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
        }
        Ok(StreamOwned::new(conn, tcp))
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|e| format!("invalid host '{host}': {e}"))
}

/// Builds the TLS state, or `None` when no tls-* setting asks for TLS
/// (tls-port 0, tls-replication and tls-cluster no), as Redis configures
/// TLS only then.
pub fn setup(config: &Config) -> Result<Option<Arc<Tls>>, String> {
    let yes = |name: &str| config.get(name).as_deref() == Some("yes");
    let (replication, cluster) = (yes("tls-replication"), yes("tls-cluster"));
    let tls_port = config.get_int("tls-port");
    if tls_port == 0 && !replication && !cluster {
        return Ok(None);
    }
    let setting = |name: &str| config.get(name).filter(|v| !v.is_empty());
    let cert_file = setting("tls-cert-file").ok_or("No tls-cert-file configured!")?;
    let key_file = setting("tls-key-file").ok_or("No tls-key-file configured!")?;
    let auth = config
        .get("tls-auth-clients")
        .unwrap_or_else(|| "yes".into());
    let roots = match setting("tls-ca-cert-file") {
        Some(ca_file) => Some(Arc::new(load_roots(&ca_file)?)),
        None if auth != "no" || replication || cluster => {
            return Err("Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, tls-replication or tls-auth-clients are enabled!".into());
        }
        None => None,
    };
    let (certs, key) = load_pair(&cert_file, &key_file)?;
    let acceptor = |auth: &str| -> Result<TlsAcceptor, String> {
        let builder = ServerConfig::builder();
        let builder = match (&roots, auth) {
            (Some(roots), "yes" | "optional") => {
                let verifier = WebPkiClientVerifier::builder(roots.clone());
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
            }
            _ => builder.with_no_client_auth(),
        };
        let server_config = builder
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| format!("Failed to configure TLS certificate: {e}"))?;
        Ok(TlsAcceptor::from(Arc::new(server_config)))
    };
    let clients = (tls_port != 0).then(|| acceptor(&auth)).transpose()?;
    let bus = cluster.then(|| acceptor("yes")).transpose()?;

    let (client_certs, client_key) = match setting("tls-client-cert-file") {
        Some(cert) => {
            let key = setting("tls-client-key-file").ok_or("No tls-client-key-file configured!")?;
            load_pair(&cert, &key)?
        }
        None => (certs, key),
    };
    let verifier = Arc::new(ChainOnly {
        roots: roots.unwrap_or_else(|| Arc::new(RootCertStore::empty())),
        algs: tokio_rustls::rustls::crypto::ring::default_provider()
            .signature_verification_algorithms,
    });
    let client = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(client_certs, client_key)
        .map_err(|e| format!("Failed to configure TLS client certificate: {e}"))?;
    Ok(Some(Arc::new(Tls {
        clients,
        bus,
        replication,
        cluster,
        client: Arc::new(client),
    })))
}

type CertAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn load_pair(cert_file: &str, key_file: &str) -> Result<CertAndKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect())
        .map_err(|e| format!("Failed to load certificate: {cert_file}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("Failed to load private key: {key_file}: {e}"))?;
    Ok((certs, key))
}

fn load_roots(ca_file: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| {
        format!("Failed to configure CA certificate(s) file/directory: {ca_file}: {e}")
    })? {
        let cert = cert.map_err(|e| format!("Failed to load CA certificate: {ca_file}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("Failed to load CA certificate: {ca_file}: {e}"))?;
    }
    Ok(roots)
}

/// Checks the peer's chain up to one of our CAs (validity dates and the
/// serverAuth usage included) but not its name: what OpenSSL's
/// SSL_VERIFY_PEER does for Redis's outgoing connections.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
