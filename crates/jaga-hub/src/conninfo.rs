//! The hub's PostgreSQL connection string, read as libpq reads it, TLS
//! included: `sslmode` (`disable`, `prefer` by default, `require`,
//! `verify-ca`, `verify-full`), `sslrootcert` (a PEM file, or `system`
//! for the system's CA roots), `sslcert` and `sslkey` (a client
//! certificate), in the `key=value` form or as URI parameters. tokio-postgres
//! knows neither the verifying modes nor the files: they are taken out of
//! the string here and become a rustls configuration.
//!
//! As libpq does: a root certificate (`sslrootcert`, or
//! `~/.postgresql/root.crt` when it exists) makes `prefer` and `require`
//! verify the server's chain as `verify-ca` does; `verify-ca` and
//! `verify-full` need one; `sslrootcert=system` makes `verify-full` the
//! default and refuses weaker modes. Unlike libpq, a `sslrootcert` named
//! in the string that cannot be read is an error in every mode but
//! `disable`, rather than no verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::HubError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self, HubError> {
        Ok(match text {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => {
                return Err(invalid(
                    "sslmode 'allow' is not supported (the hub tries TLS first): use 'prefer' or 'disable'",
                ))
            }
            other => {
                return Err(invalid(format!(
                    "sslmode '{}' is not one of disable, prefer, require, verify-ca, verify-full",
                    jaga_model::escape_control(other)
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// What the server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    None,
    System,
    File(PathBuf),
}

/// How the hub reaches PostgreSQL: the string's settings and its TLS.
#[derive(Clone)]
pub struct Conninfo {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    /// The mode in effect (`require` with a root certificate verifies as
    /// `verify-ca`).
    pub sslmode: SslMode,
}

/// How long a connection attempt may take when the string does not say
/// (`connect_timeout`): a reconnect must not hang on a silent host.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Conninfo {
    /// Reads the string and the certificate files it names; connects to
    /// nothing.
    pub fn parse(text: &str) -> Result<Self, HubError> {
        Self::parse_with_home(text, std::env::var_os("HOME").map(PathBuf::from).as_deref())
    }

    fn parse_with_home(text: &str, home: Option<&Path>) -> Result<Self, HubError> {
        let split = split(text)?;
        let mut config = split.rest.parse::<tokio_postgres::Config>().map_err(|e| {
            invalid(format!(
                "'postgres' is not a libpq connection string: {}",
                crate::with_causes(&e)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let roots = match split.sslrootcert.as_deref() {
            Some("system") => Roots::System,
            Some(path) => Roots::File(PathBuf::from(path)),
            None => match home.map(|h| h.join(".postgresql/root.crt")) {
                Some(default) if default.exists() => Roots::File(default),
                _ => Roots::None,
            },
        };
        let mut sslmode = match split.sslmode.as_deref() {
            Some(mode) => SslMode::parse(mode)?,
            None if roots == Roots::System => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if roots == Roots::System && sslmode != SslMode::VerifyFull {
            return Err(invalid(format!(
                "weak sslmode '{}' may not be used with sslrootcert=system (use 'verify-full')",
                sslmode.as_str()
            )));
        }
        // Whether TLS is a must is as asked (prefer still falls back to
        // plain text with a server without TLS); how it is checked, not.
        let tls_mode = match sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        };
        if matches!(sslmode, SslMode::Prefer | SslMode::Require) && roots != Roots::None {
            sslmode = SslMode::VerifyCa;
        }
        if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && roots == Roots::None {
            return Err(invalid(format!(
                "sslmode '{}' needs the server's CA: give sslrootcert=<PEM file> (or sslrootcert=system) in 'postgres'",
                sslmode.as_str()
            )));
        }
        config.ssl_mode(tls_mode);
        let client_auth = match (&split.sslcert, &split.sslkey) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert.as_str(), key.as_str())),
            (Some(_), None) => return Err(invalid("sslcert needs its sslkey in 'postgres'")),
            (None, Some(_)) => return Err(invalid("sslkey needs its sslcert in 'postgres'")),
        };
        let tls = if sslmode == SslMode::Disable {
            // Never used, but tokio-postgres takes one.
            tls_config(SslMode::Disable, &Roots::None, None)?
        } else {
            tls_config(sslmode, &roots, client_auth)?
        };
        Ok(Self {
            config,
            tls: MakeRustlsConnect::new(tls),
            sslmode,
        })
    }
}

fn invalid(message: impl Into<String>) -> HubError {
    HubError::Config(message.into())
}

/// The string without the keys read here, and their values.
#[derive(Debug, Default, PartialEq)]
struct Split {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
}

impl Split {
    /// Takes `key` if it is one of ours.
    fn take(&mut self, key: &str, value: String) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

fn split(text: &str) -> Result<Split, HubError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        split_uri(trimmed)
    } else {
        split_pairs(text)
    }
}

/// `postgresql://...?sslmode=verify-full&sslrootcert=/path`.
fn split_uri(text: &str) -> Result<Split, HubError> {
    let mut out = Split::default();
    let Some((base, query)) = text.split_once('?') else {
        out.rest = text.to_owned();
        return Ok(out);
    };
    let mut kept = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        if !out.take(&percent_decode(key)?, percent_decode(value)?) {
            kept.push(param);
        }
    }
    out.rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(out)
}

fn percent_decode(text: &str) -> Result<String, HubError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "'postgres' has a bad %-escape in '{}'",
                        jaga_model::escape_control(text)
                    ))
                })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        invalid(format!(
            "'postgres' has a %-escape that is not UTF-8 in '{}'",
            jaga_model::escape_control(text)
        ))
    })
}

/// `key=value key='quoted \' value'`, as libpq reads it.
fn split_pairs(text: &str) -> Result<Split, HubError> {
    let mut out = Split::default();
    let mut kept: Vec<String> = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(invalid(format!(
                "'postgres' is not a libpq connection string: '{}' has no '=value'",
                jaga_model::escape_control(&key)
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(invalid(format!(
                            "'postgres' is not a libpq connection string: the value of '{}' has no closing quote",
                            jaga_model::escape_control(&key)
                        )))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if !out.take(&key, value.clone()) {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    out.rest = kept.join(" ");
    Ok(out)
}

fn read_certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, HubError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| {
            invalid(format!(
                "{key} in 'postgres': cannot read '{}': {error}",
                path.display()
            ))
        })?;
    if certificates.is_empty() {
        return Err(invalid(format!(
            "{key} in 'postgres': '{}' holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certificates)
}

fn tls_config(
    sslmode: SslMode,
    roots: &Roots,
    client_auth: Option<(&str, &str)>,
) -> Result<rustls::ClientConfig, HubError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        Roots::None => Arc::new(Lenient {
            chain: None,
            provider: Arc::clone(&provider),
        }),
        Roots::System | Roots::File(_) => {
            let mut store = rustls::RootCertStore::empty();
            let (certificates, source) = match roots {
                Roots::File(path) => (
                    read_certificates("sslrootcert", path)?,
                    format!("'{}'", path.display()),
                ),
                _ => (
                    rustls_native_certs::load_native_certs().certs,
                    "the system's CA roots".to_owned(),
                ),
            };
            let (added, _) = store.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(invalid(format!(
                    "sslrootcert in 'postgres': {source} holds no usable CA certificate"
                )));
            }
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
                    .build()
                    .map_err(|e| {
                        invalid(format!(
                            "sslrootcert in 'postgres': cannot use {source}: {e}"
                        ))
                    })?;
            if sslmode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(Lenient {
                    chain: Some(webpki),
                    provider: Arc::clone(&provider),
                })
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("cannot set up TLS for postgres: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client_auth {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = read_certificates("sslcert", Path::new(cert))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                invalid(format!(
                    "sslkey in 'postgres': cannot read a PEM key from '{key}': {e}"
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("sslkey in 'postgres' does not match sslcert: {e}")))
        }
    }
}

/// `prefer` and `require` without a root certificate (`chain` none):
/// encrypted, the server's certificate not checked; `verify-ca`: the
/// chain up to a trusted root, whatever name the certificate is for
/// (webpki checks the name after the chain, so a name mismatch means the
/// chain is good). The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_are_taken_out_of_both_forms_and_the_rest_kept() {
        let pairs = split(
            "host=db  user = jaga password='it\\'s secret' sslmode=verify-full sslrootcert='/etc/ca dir/ca.pem'",
        )
        .unwrap();
        assert_eq!(pairs.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(pairs.sslrootcert.as_deref(), Some("/etc/ca dir/ca.pem"));
        assert_eq!(pairs.rest, "host='db' user='jaga' password='it\\'s secret'");
        let config: tokio_postgres::Config = pairs.rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"it's secret"[..]));

        let uri = split(
            "postgresql://jaga@db:5433/fleet?sslmode=require&application_name=hub&sslrootcert=%2Fca%20dir%2Fca.pem",
        )
        .unwrap();
        assert_eq!(uri.sslmode.as_deref(), Some("require"));
        assert_eq!(uri.sslrootcert.as_deref(), Some("/ca dir/ca.pem"));
        assert_eq!(
            uri.rest,
            "postgresql://jaga@db:5433/fleet?application_name=hub"
        );
        assert_eq!(
            split("postgres://db/x?sslmode=disable").unwrap().rest,
            "postgres://db/x"
        );
        assert!(split("host=db user").is_err());
        assert!(split("host='db").is_err());
        assert!(split("postgres://db/x?sslmode=%zz").is_err());
    }

    #[test]
    fn sslmode_follows_libpq() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let mode = |text: &str, home: Option<&Path>| {
            Conninfo::parse_with_home(text, home).map(|c| c.sslmode)
        };
        // No root certificate: as written, prefer by default.
        assert_eq!(mode("host=db", None).unwrap(), SslMode::Prefer);
        assert_eq!(
            mode("host=db sslmode=require", Some(home)).unwrap(),
            SslMode::Require
        );
        assert_eq!(
            mode("host=db sslmode=disable", None).unwrap(),
            SslMode::Disable
        );
        // Verifying needs a CA.
        let error = mode("host=db sslmode=verify-full", Some(home))
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs the server's CA"), "{error}");
        let error = mode("host=db sslmode=allow", None).unwrap_err().to_string();
        assert!(error.contains("'allow' is not supported"), "{error}");
        let error = mode("host=db sslmode=verify_full", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("'verify_full' is not one of"), "{error}");
        // A CA file that is not there, or not PEM, is said.
        let missing = home.join("nope.pem");
        let error = mode(
            &format!(
                "host=db sslmode=verify-ca sslrootcert={}",
                missing.display()
            ),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("cannot read") && error.contains("nope.pem"),
            "{error}"
        );
        let junk = home.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let error = mode(&format!("host=db sslrootcert={}", junk.display()), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        // system: verify-full, weaker refused.
        let error = mode("host=db sslmode=require sslrootcert=system", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("weak sslmode 'require'"), "{error}");
        let error = mode("host=db sslcert=/c.pem", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("sslcert needs its sslkey"), "{error}");
    }

    #[test]
    fn unknown_options_are_refused_by_name() {
        let error = Conninfo::parse_with_home("host=db sslcrl=/x", None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("sslcrl"), "{error}");
        let timeout = Conninfo::parse_with_home("host=db", None)
            .unwrap()
            .config
            .get_connect_timeout()
            .copied();
        assert_eq!(timeout, Some(CONNECT_TIMEOUT));
    }
}
