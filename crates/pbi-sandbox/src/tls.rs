//! HTTPS for the sandbox: a certificate from files or a fresh self-signed CA, and a TLS listener for
//! `axum::serve`. MSAL refuses `http://` authorities, so real Microsoft clients need this mode.

use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A server certificate chain and its private key, PEM-encoded.
#[derive(Clone)]
pub struct TlsConfig {
    pub cert_chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig { key: [redacted] }")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the certificate file has no PEM certificate")]
    NoCertificate,
    #[error("the key file has no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey,
    #[error("the certificate and key were refused: {0}")]
    Refused(String),
    #[error("could not generate a certificate: {0}")]
    Generate(String),
}

/// A self-signed CA and the server certificate it signed; trust `ca_pem` in the client.
pub struct SelfSigned {
    pub tls: TlsConfig,
    pub ca_pem: String,
}

impl TlsConfig {
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, TlsError> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
        };
        Ok(Self { cert_chain_pem: read(cert)?, key_pem: read(key)? })
    }

    /// A fresh CA, and a server certificate it signs for `localhost`, `127.0.0.1` and `extra_names`.
    pub fn self_signed(extra_names: &[String]) -> Result<SelfSigned, TlsError> {
        let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "pbi-bridge sandbox CA");
        ca_params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca_key = rcgen::KeyPair::generate().map_err(generate)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(generate)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        names.extend(extra_names.iter().cloned());
        let mut params = rcgen::CertificateParams::new(names).map_err(generate)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "pbi-bridge sandbox");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().map_err(generate)?;
        let cert = params.signed_by(&key, &issuer).map_err(generate)?;
        Ok(SelfSigned {
            tls: TlsConfig { cert_chain_pem: format!("{}{}", cert.pem(), ca_cert.pem()), key_pem: key.serialize_pem() },
            ca_pem: ca_cert.pem(),
        })
    }

    fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes()).filter_map(Result::ok).collect();
        if certs.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|_| TlsError::NoKey)?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Refused(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Refused(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A TCP listener whose connections are TLS streams. Handshakes run concurrently in tasks this listener
/// owns (a slow client cannot stall the others) and are given up after 10 seconds.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: &TlsConfig) -> Result<Self, TlsError> {
        Ok(Self { tcp, acceptor: TlsAcceptor::from(config.server_config()?), handshakes: JoinSet::new() })
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Some((tls, addr)),
                                _ => None,
                            }
                        });
                    }
                    // Out of file descriptors and the like: back off briefly, as axum's own listener does.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
