//! Built-in TLS (rustls with the `ring` provider: it compiles far faster than aws-lc and needs no
//! cmake). The certificate is picked per handshake from a [`CertStore`], so replacing the PEM
//! files and sending SIGHUP (or calling [`CertStore::reload`]) changes what new handshakes see
//! while connections already open — widget sockets included — carry on untouched.

use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::config::TlsFiles;
use crate::error::{Error, Result};

/// The certificate in force, and the files it is read from.
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Reads the files once; an unusable certificate or key is an error naming the file.
    pub fn open(files: &TlsFiles) -> Result<Arc<Self>> {
        let key = load(files).map_err(Error::Config)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on any problem the certificate in force stays.
    pub fn reload(&self) -> Result<()> {
        let key = load(&self.files).map_err(Error::Config)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    /// A TLS acceptor (HTTP/1.1 by ALPN) that asks this store for the certificate per handshake.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor> {
        let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("tls: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Parses the PEM chain and key and checks that they belong together.
pub fn load(files: &TlsFiles) -> std::result::Result<CertifiedKey, String> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            format!("tls.cert: cannot read a PEM certificate chain from {cert_path}: {e}")
        })?;
    if chain.is_empty() {
        return Err(format!("tls.cert: {cert_path} holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("tls.key: cannot read a PEM private key from {key_path}: {e}"))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        format!("tls: the key in {key_path} does not fit the certificate in {cert_path}: {e}")
    })
}

/// Reloads `store` on every SIGHUP until aborted. The handler is installed before this returns,
/// so a SIGHUP sent once the server answers never kills the process.
pub fn reload_on_sighup(store: Arc<CertStore>) -> Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match store.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::warn!(error = %e, "TLS certificate reload failed; the current one stays")
                }
            }
        }
    }))
}
