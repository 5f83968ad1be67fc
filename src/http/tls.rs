//! TLS for the server (rustls, ring provider): a PEM certificate chain and key, served with ALPN
//! `h2` and `http/1.1`, and read again whenever either file changes, so a rotated certificate is
//! in force without a restart. A replacement that does not load (half-written, key and
//! certificate not matching) is logged and the certificate in force stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key cannot be used. Never carries key material: only the file and the
/// kind of problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read or holds no PEM section of the expected kind.
    #[error("{file}: {what}")]
    File {
        /// The file.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the pair (unsupported key type, key not matching the certificate).
    #[error("{cert} / {key}: {why}")]
    Pair {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// rustls' reason.
        why: String,
    },
}

/// Loads the chain and key from PEM files and checks that they belong together.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let file_err = |p: &Path, what: String| TlsError::File { file: p.display().to_string(), what };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, format!("cannot read the certificate chain ({e})")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no CERTIFICATE section".to_owned()));
    }
    // The pki-types error names the PEM problem only, never the key's bytes.
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_err(key, format!("no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")))?;
    CertifiedKey::from_der(chain, private, &default_provider()).map_err(|e| TlsError::Pair {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        why: e.to_string(),
    })
}

/// Size and mtime of both files: what "changed" means for the reloader.
type Stamp = Option<[(u64, SystemTime); 2]>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
    Some([one(cert)?, one(key)?])
}

/// The certificate in force, replaced when the files change.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    last: Mutex<Stamp>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key file's path only; CertifiedKey's own Debug is not relied upon.
        f.debug_struct("Certificates").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl Certificates {
    /// Loads the pair now (the configuration check already did once, so this fails only if the
    /// files changed in between).
    pub fn open(cert: &Path, key: &Path) -> Result<Certificates, TlsError> {
        let last = stamp(cert, key);
        let loaded = load(cert, key)?;
        Ok(Certificates {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(loaded)),
            last: Mutex::new(last),
        })
    }

    /// Reloads the pair if either file's size or mtime changed since the last look. `Ok(true)`:
    /// a new certificate is in force; an error leaves the previous one in force (and is reported
    /// once per change, not on every poll).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamp(&self.cert, &self.key);
        {
            let mut last = match self.last.lock() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            if *last == now {
                return Ok(false);
            }
            *last = now;
        }
        let loaded = load(&self.cert, &self.key)?;
        let mut cur = match self.current.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        *cur = Arc::new(loaded);
        Ok(true)
    }

    /// The rustls server configuration: this resolver, ALPN h2 then http/1.1.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_no_client_auth().with_cert_resolver(self.clone()))
            .unwrap_or_else(|_| {
                // The ring provider supports the default versions; this branch is not reached.
                rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(self.clone())
            });
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let cur = match self.current.read() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        Some(cur.clone())
    }
}
