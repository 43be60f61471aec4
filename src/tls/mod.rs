//! TLS for `wss://` targets and for `barrage serve --tls`: the rustls client
//! and server configurations (trust roots, client certificates, the
//! self-signed certificate of the built-in server) and [`TlsIo`], which moves
//! bytes between a readiness-driven `TcpStream` and a rustls client
//! connection once the handshake is done.
//!
//! Every configuration is built with the ring provider passed explicitly, so
//! no process-wide default `CryptoProvider` has to be installed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};

/// The only application protocol offered and accepted: WebSocket upgrades
/// are HTTP/1.1 requests.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Ciphertext rustls may hold for one connection before the socket takes it
/// (rustls's `set_buffer_limit`, the same 64 KiB as rustls's default, set
/// explicitly so it is a decision). Plaintext handed to [`TlsIo::write_plain`]
/// beyond it waits unencrypted in the `TlsIo` backlog; [`TlsIo::wants_write`]
/// covers both, and is the caller's signal to stop queueing.
pub const SEND_BUFFER_LIMIT: usize = 64 * 1024;

/// TLS settings of a scenario (`tls:` in YAML); all optional.
#[derive(Clone, Debug, Default)]
pub struct ClientTlsOptions {
    /// Extra CA certificate(s) (PEM file) trusted in addition to the webpki
    /// roots; a server certificate identical to one of them is accepted
    /// even when it is a CA certificate (pinned; name and dates still
    /// checked). Default: none.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs `key`. Default:
    /// none.
    pub cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of `cert`.
    pub key: Option<PathBuf>,
    /// Name to verify the server certificate against and send as SNI;
    /// default: the URL host.
    pub server_name: Option<String>,
    /// Accept any server certificate (no verification). Default false.
    /// Signatures of the handshake are still checked with the provider's
    /// algorithms.
    pub insecure: bool,
}

/// Why a TLS configuration could not be built. The `String` of the PEM
/// errors names the source: a file path, or which argument for in-memory PEM.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {1}", path = .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("invalid PEM in {0}: {1}")]
    Pem(String, #[source] pem::Error),
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    #[error("no private key (PKCS#8, PKCS#1 or SEC1 PEM) found in {0}")]
    NoPrivateKey(String),
    #[error("CA certificate in {path} is not usable: {1}", path = .0.display())]
    BadCa(PathBuf, #[source] rustls::Error),
    #[error("tls.cert is set but tls.key is not: a client certificate needs its private key")]
    CertWithoutKey,
    #[error("tls.key is set but tls.cert is not")]
    KeyWithoutCert,
    #[error("invalid TLS server name {0:?}: not a DNS name or IP address")]
    InvalidServerName(String),
    #[error("cannot generate a self-signed certificate: {0}")]
    CertGen(#[from] rcgen::Error),
    /// rustls refused the configuration (e.g. a key not matching its
    /// certificate, or an unsupported key type).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The ring provider, built once and shared by every configuration.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Builds the client config: roots = webpki-roots + `ca`, and a server
/// certificate identical to one in `ca` accepted as pinned (name, dates and
/// handshake signatures still checked); client auth when `cert` + `key`;
/// ALPN `["http/1.1"]`; `insecure` accepts any certificate but still
/// verifies handshake signatures. `SSLKEYLOGFILE` is honoured.
///
/// Connections sharing the returned config share its session cache (TLS
/// resumption), as a browser's would.
pub fn client_config(opts: &ClientTlsOptions) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // Read even when `insecure`, so a wrong path is reported either way.
    // Each `ca` certificate is a root, and also pinned: accepted as the
    // server's own certificate when identical (see `pin`).
    let mut pinned = Vec::new();
    if let Some(path) = &opts.ca {
        let what = path.display().to_string();
        for cert in parse_certs(&read_file(path)?, &what)? {
            roots
                .add(cert.clone())
                .map_err(|e| TlsSetupError::BadCa(path.clone(), e))?;
            pinned.push(cert);
        }
    }
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
    } else if pinned.is_empty() {
        builder.with_root_certificates(roots)
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pin::PinningVerifier::new(webpki, pinned)))
    };
    let mut config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let chain = parse_certs(&read_file(cert)?, &cert.display().to_string())?;
            let key = parse_key(&read_file(key)?, &key.display().to_string())?;
            builder.with_client_auth_cert(chain, key)?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(TlsSetupError::CertWithoutKey),
        (None, Some(_)) => return Err(TlsSetupError::KeyWithoutCert),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(Arc::new(config))
}

/// The ServerName to connect with: `opts.server_name` or `host`. An IP
/// literal (brackets allowed, as in URLs: `[::1]`) becomes
/// `ServerName::IpAddress`, verified against the certificate's IP SANs and
/// sent without SNI.
pub fn server_name(
    opts: &ClientTlsOptions,
    host: &str,
) -> Result<ServerName<'static>, TlsSetupError> {
    let name = opts.server_name.as_deref().unwrap_or(host);
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_owned())
        .map_err(|_| TlsSetupError::InvalidServerName(name.to_owned()))
}

/// A self-signed certificate for the built-in server: valid for
/// "localhost", 127.0.0.1 and ::1 (ECDSA P-256). Returns (cert PEM, key PEM).
pub fn self_signed() -> Result<(String, String), TlsSetupError> {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "barrage serve (self-signed)");
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Server config from PEM cert chain + key (strings), ALPN `["http/1.1"]`,
/// no client auth.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let chain = parse_certs(cert_pem.as_bytes(), "the certificate PEM")?;
    let key = parse_key(key_pem.as_bytes(), "the key PEM")?;
    build_server_config(chain, key)
}

/// Reads PEM files and builds the server config as [`server_config`] does;
/// errors name the file.
pub fn server_config_from_files(
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let chain = parse_certs(&read_file(cert)?, &cert.display().to_string())?;
    let key = parse_key(&read_file(key)?, &key.display().to_string())?;
    build_server_config(chain, key)
}

fn build_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|e| TlsSetupError::Read(path.to_owned(), e))
}

/// Every `CERTIFICATE` section of `pem`, in order; at least one.
fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::Pem(what.to_owned(), e))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate(what.to_owned()));
    }
    Ok(certs)
}

/// The first private key of `pem` (PKCS#8, PKCS#1 or SEC1).
fn parse_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsSetupError::NoPrivateKey(what.to_owned()),
        e => TlsSetupError::Pem(what.to_owned(), e),
    })
}

/// `tls.insecure`: any certificate chain and name is accepted, but the
/// handshake signatures must still be valid for the presented certificate's
/// key, checked with the provider's algorithms.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

mod io;
mod pin;

pub use io::{ReadOutcome, TlsIo};

#[cfg(test)]
mod tests;
