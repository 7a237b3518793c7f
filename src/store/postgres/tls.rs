//! TLS to the PostgreSQL server, as libpq's `sslmode` and `sslrootcert` ask, on rustls with the
//! ring provider that ureq already brings. `require` encrypts without checking who answers
//! (unless a root certificate file exists: then, as in libpq, it checks the chain like
//! `verify-ca`); `verify-ca` checks the chain against `sslrootcert`; `verify-full` checks the host
//! name too. The root certificates are read at each connect, so a rotated CA file is picked up.
//! A refused certificate becomes a [`TlsError`] that names the CA file it was checked against.

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::Socket;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where the systems we run on keep their trusted roots, for `sslrootcert=system` when neither
/// `SSL_CERT_FILE` nor `SSL_CERT_DIR` names them (the bundles of Debian, Fedora/RHEL, openSUSE,
/// Alpine; then Debian's folder of single certificates).
const SYSTEM_ROOTS: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/ssl/certs",
];

/// libpq's `sslmode`: whether to encrypt, and what to check of the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it (libpq tries plain text first; here it is `prefer`).
    Allow,
    /// Encrypt when the server offers it, checking nothing (libpq's default).
    Prefer,
    /// Always encrypt; check the chain only when a root certificate file exists.
    Require,
    /// Always encrypt and check the chain against the root certificates.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The mode named `text`, as in a URL.
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The mode's name, as in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The client library's mode: the checks themselves are this module's.
    pub(crate) fn to_client(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        }
    }

    /// Whether the server's certificate chain is always checked.
    fn is_verifying(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Where the trusted root certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of CA certificates.
    File(PathBuf),
    /// The system's trusted roots (`sslrootcert=system`).
    System,
}

/// The TLS settings of a store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode.
    pub mode: SslMode,
    /// The root certificates: as given, else libpq's `~/.postgresql/root.crt`.
    pub rootcert: Option<RootCert>,
    /// Whether `sslrootcert` (or PGSSLROOTCERT) was given: then its file must exist.
    pub rootcert_given: bool,
}

impl TlsSettings {
    /// No TLS: for a unix socket, where libpq ignores `sslmode`.
    pub const OFF: TlsSettings = TlsSettings {
        mode: SslMode::Disable,
        rootcert: None,
        rootcert_given: false,
    };
}

/// Why a TLS connection could not be made; no variant holds a password.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `verify-ca` or `verify-full` with no root certificate file.
    #[error(
        "`sslmode={mode}` checks the server's certificate against a CA file, and `{}` does not exist; give `sslrootcert=PATH` (or `sslrootcert=system`), or use `sslmode=require` to encrypt without checking", path.display()
    )]
    NoRootCert {
        /// The mode.
        mode: &'static str,
        /// The file looked for.
        path: PathBuf,
    },
    /// The root certificate file cannot be read.
    #[error("root certificate file `{}` cannot be read", path.display())]
    RootCertUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The root certificate file holds no usable certificate.
    #[error("root certificate file `{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)", path.display())]
    RootCertEmpty {
        /// The file.
        path: PathBuf,
    },
    /// `sslrootcert=system` and no trusted root certificate where the system keeps them.
    #[error(
        "`sslrootcert=system` found no CA certificate in {}; install the system's CA bundle (`ca-certificates`), or name a PEM bundle with SSL_CERT_FILE or `sslrootcert=PATH`", looked_in.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
    )]
    NoSystemRoots {
        /// The files and folders looked in.
        looked_in: Vec<PathBuf>,
    },
    /// A weaker mode than `verify-full` with `sslrootcert=system`, which libpq refuses too.
    #[error(
        "`sslmode={mode}` with `sslrootcert=system`: the system's CAs sign certificates for anyone, so the host name must be checked; use `sslmode=verify-full`"
    )]
    WeakSystemRoots {
        /// The mode.
        mode: &'static str,
    },
    /// The host is no name a certificate can be checked against.
    #[error("`{host}` is not a host name or address a certificate can name")]
    ServerName {
        /// The host.
        host: String,
    },
    /// The server's certificate chain does not end at a trusted CA.
    #[error("the server's certificate is not signed by a CA in `{roots}`")]
    UnknownCa {
        /// The CA file (or `the system's trusted roots`).
        roots: String,
    },
    /// `verify-full` and the certificate names another host.
    #[error(
        "the server's certificate is not valid for `{host}` (`sslmode=verify-full` checks the host name): connect by a name or address in its subjectAltName, or use `sslmode=verify-ca`"
    )]
    WrongHost {
        /// The host connected to.
        host: String,
    },
    /// Another certificate problem (expired, not yet valid, revoked, bad signature...).
    #[error("the server's certificate is refused (checked against `{roots}`)")]
    Certificate {
        /// The CA file it was checked against.
        roots: String,
        /// What rustls found.
        #[source]
        source: rustls::Error,
    },
    /// The handshake failed for another reason (no common protocol, connection closed...).
    #[error("the TLS handshake failed")]
    Handshake(#[source] io::Error),
}

/// Makes a TLS session for each connection of one `postgres::Config`.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
    /// Where the roots came from, for messages (`None`: nothing is checked).
    roots: Option<String>,
    mode: SslMode,
}

impl MakeRustls {
    /// The connector for `settings`, its root certificates read now.
    ///
    /// # Errors
    /// A [`TlsError`] for a missing or unusable root certificate file.
    pub fn new(settings: &TlsSettings) -> Result<MakeRustls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mode = settings.mode;
        if settings.rootcert == Some(RootCert::System) && mode != SslMode::VerifyFull {
            return Err(TlsError::WeakSystemRoots {
                mode: mode.as_str(),
            });
        }
        let roots = match (&settings.rootcert, mode) {
            (_, SslMode::Disable | SslMode::Allow | SslMode::Prefer) | (None, SslMode::Require) => {
                None
            }
            (Some(RootCert::System), _) => Some((
                system_roots(&|name| std::env::var_os(name))?,
                "the system's trusted roots".to_string(),
            )),
            (Some(RootCert::File(path)), _) => {
                if !settings.rootcert_given && !mode.is_verifying() && !path.exists() {
                    None
                } else if !path.exists() {
                    return Err(TlsError::NoRootCert {
                        mode: mode.as_str(),
                        path: path.clone(),
                    });
                } else {
                    Some((read_roots(path)?, path.display().to_string()))
                }
            }
            (None, _) => {
                return Err(TlsError::NoRootCert {
                    mode: mode.as_str(),
                    path: PathBuf::from("~/.postgresql/root.crt"),
                });
            }
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let (verifier, roots): (Arc<dyn ServerCertVerifier>, _) = match roots {
            None => (
                Arc::new(Unchecked(provider.signature_verification_algorithms)),
                None,
            ),
            Some((store, label)) => {
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()
                    .map_err(|e| TlsError::Certificate {
                        roots: label.clone(),
                        source: rustls::Error::General(e.to_string()),
                    })?;
                let checked = Checked {
                    webpki,
                    check_name: mode == SslMode::VerifyFull,
                };
                (Arc::new(checked), Some(label))
            }
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustls {
            config: Arc::new(config),
            roots,
            mode,
        })
    }
}

/// The system's trusted roots, where OpenSSL (and so libpq) finds them: the bundle
/// `SSL_CERT_FILE` and the folders `SSL_CERT_DIR` name when either is set, else the first of
/// [`SYSTEM_ROOTS`] that holds any. A bundle may hold certificates webpki cannot read (old
/// encodings, unusual extensions): those are passed over, as a browser would, not the bundle.
fn system_roots(env: &dyn Fn(&str) -> Option<OsString>) -> Result<RootCertStore, TlsError> {
    let mut places: Vec<PathBuf> = env("SSL_CERT_FILE")
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(dirs) = env("SSL_CERT_DIR") {
        places.extend(std::env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()));
    }
    let given = !places.is_empty();
    if !given {
        places = SYSTEM_ROOTS.iter().map(PathBuf::from).collect();
    }
    let mut store = RootCertStore::empty();
    for place in &places {
        let files: Vec<PathBuf> = match std::fs::read_dir(place) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(_) => vec![place.clone()],
        };
        for file in files {
            // Unreadable files and folders' odd entries (hash links to the same certificates,
            // `.0` files of revocation lists) are passed over like unparsable certificates.
            if let Ok(text) = std::fs::read(&file) {
                store.add_parsable_certificates(
                    CertificateDer::pem_slice_iter(&text).filter_map(Result::ok),
                );
            }
        }
        if !given && !store.is_empty() {
            break;
        }
    }
    if store.is_empty() {
        return Err(TlsError::NoSystemRoots { looked_in: places });
    }
    Ok(store)
}

/// The CA certificates in the PEM file `path`, which the user named: every one must be usable.
fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let text = std::fs::read(path).map_err(|source| TlsError::RootCertUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&text) {
        let cert = cert.map_err(|e| TlsError::RootCertUnreadable {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        })?;
        store.add(cert).map_err(|source| TlsError::Certificate {
            roots: path.display().to_string(),
            source,
        })?;
    }
    if store.is_empty() {
        return Err(TlsError::RootCertEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(store)
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, TlsError> {
        // The client asks for a connector for every connection, with "" for a unix socket
        // (where `connect` turns TLS off). Only `verify-full` reads the name; the others need
        // one to hand to a handshake, which `disable` never makes.
        let name = match ServerName::try_from(host.to_string()) {
            Ok(name) => name,
            Err(_) if self.mode != SslMode::VerifyFull => ServerName::try_from("localhost")
                .expect("a valid name")
                .to_owned(),
            Err(_) => {
                return Err(TlsError::ServerName {
                    host: host.to_string(),
                });
            }
        };
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
            host: host.to_string(),
            roots: self.roots.clone(),
        })
    }
}

/// One connection's TLS handshake.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    host: String,
    roots: Option<String>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, TlsError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(|s| RustlsStream(Box::new(s)))
                .map_err(|e| explain(e, &self.host, self.roots.as_deref()))
        })
    }
}

/// A handshake error as the user can act on it: which check failed, against which CA file.
fn explain(error: io::Error, host: &str, roots: Option<&str>) -> TlsError {
    let roots = roots.unwrap_or("no CA file").to_string();
    let Some(rustls::Error::InvalidCertificate(cert)) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return TlsError::Handshake(error);
    };
    match cert {
        CertificateError::UnknownIssuer => TlsError::UnknownCa { roots },
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            TlsError::WrongHost {
                host: host.to_string(),
            }
        }
        other => TlsError::Certificate {
            roots,
            source: rustls::Error::InvalidCertificate(other.clone()),
        },
    }
}

/// An encrypted connection to the server.
pub struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM then runs without channel binding (as with `channel_binding=prefer` in libpq
        // against a server that offers none): the certificate checks above stand on their own.
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// `require` without a CA file: any certificate, but the handshake's signatures must be by its
/// key (so the session is encrypted to whoever holds it).
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca` and `verify-full`: the chain against the CA file; the host name only for
/// `verify-full`. webpki checks the name after the chain, so a name error means the chain held.
#[derive(Debug)]
struct Checked {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests;
