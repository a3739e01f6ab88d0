//! Connecting a service to NATS: one way for every process of the pipeline, so that each one
//! names itself to the server (`nats server report connections` shows who is who), reads
//! `NATS_URL` as a list of servers, proves who it is with its own credentials, and fails with
//! the same error that says what to check.
//!
//! Who may do what is the server's business (`deploy/base/config/nats-users.conf`): the
//! gateway and the keeper publish events, consumers only read them and write their dead
//! letters, so a consumer's leaked password cannot forge a Chat2Desk event. A service only
//! has to present its user; these variables, the same for every service, say how:
//!
//! | variable | meaning |
//! |---|---|
//! | `NATS_USER`, `NATS_PASSWORD` | the service's NATS user (from a Secret on Kubernetes) |
//! | `NATS_CREDS` | a `.creds` file instead (NATS accounts with JWTs) |
//! | `NATS_TLS_CA` | a PEM file of the CA that signed the servers' certificates |
//! | `NATS_TLS_CERT`, `NATS_TLS_KEY` | a client certificate, for servers that verify clients |
//! | `NATS_TLS_REQUIRED` | `true` to refuse a server that does not offer TLS (also implied by a `tls://` URL or `NATS_TLS_CA`) |
//!
//! Unset, the connection is anonymous and in clear text, as a local `nats-server` expects.

use std::path::PathBuf;

/// Why a service could not connect to NATS.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "cannot connect to NATS at {url}: {source}; is nats-server running? (make run starts one; on Kubernetes check NATS_URL and the nats pods); if it refused the credentials, check NATS_USER and NATS_PASSWORD against the server's users"
    )]
    Server {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

/// Why the NATS credentials in the environment cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "NATS_USER is set but NATS_PASSWORD is not: set both (on Kubernetes, NATS_PASSWORD comes from the c2d-nats-users Secret), or neither for a server without users"
    )]
    NoPassword,
    #[error("NATS_PASSWORD is set but NATS_USER is not: name the service's NATS user")]
    NoUser,
    #[error("NATS_TLS_CERT and NATS_TLS_KEY go together: set both for a client certificate")]
    HalfCertificate,
    #[error("NATS_TLS_REQUIRED={0:?}: write true or false")]
    TlsRequired(String),
    #[error("cannot read the NATS credentials file NATS_CREDS={path}: {source}")]
    CredsFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// How a process proves who it is to NATS and whether its connection is encrypted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NatsCredentials {
    /// User and password, as the server's `authorization { users }` lists them.
    pub user: Option<(String, String)>,
    /// A `.creds` file (a user JWT and its key), for servers run with NATS accounts.
    pub creds_file: Option<PathBuf>,
    /// The CA to trust for the servers' certificates.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and its key.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Refuse a server that does not offer TLS.
    pub tls_required: bool,
}

impl std::fmt::Debug for NatsCredentials {
    /// Without the password: a configuration dump in a log must not hand it out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCredentials")
            .field("user", &self.user.as_ref().map(|(user, _)| user))
            .field("creds_file", &self.creds_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_client", &self.tls_client)
            .field("tls_required", &self.tls_required)
            .finish()
    }
}

impl NatsCredentials {
    /// The credentials this process's environment gives.
    pub fn from_env() -> Result<NatsCredentials, CredentialsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The credentials `lookup` gives (the environment, or a test's own).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<NatsCredentials, CredentialsError> {
        let env = c2d_telemetry::env::Env::new(lookup);
        let user = match (env.get("NATS_USER"), env.lookup("NATS_PASSWORD")) {
            (Some(user), Some(password)) if !password.is_empty() => Some((user, password)),
            (Some(_), _) => return Err(CredentialsError::NoPassword),
            (None, Some(password)) if !password.is_empty() => {
                return Err(CredentialsError::NoUser);
            }
            (None, _) => None,
        };
        let tls_client = match (env.get("NATS_TLS_CERT"), env.get("NATS_TLS_KEY")) {
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            (None, None) => None,
            _ => return Err(CredentialsError::HalfCertificate),
        };
        let tls_required = match env.get("NATS_TLS_REQUIRED").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(CredentialsError::TlsRequired(other.to_owned())),
        };
        Ok(NatsCredentials {
            user,
            creds_file: env.get("NATS_CREDS").map(PathBuf::from),
            tls_ca: env.get("NATS_TLS_CA").map(PathBuf::from),
            tls_client,
            tls_required,
        })
    }

    /// `options` presenting these credentials.
    pub async fn apply(
        &self,
        mut options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, CredentialsError> {
        if let Some(path) = &self.creds_file {
            options = options.credentials_file(path).await.map_err(|source| {
                CredentialsError::CredsFile {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        }
        if let Some((user, password)) = &self.user {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls_required {
            options = options.require_tls(true);
        }
        Ok(options)
    }
}

/// The options every process of the pipeline starts from: its name and the credentials in its
/// environment. A process that needs more (the gateway's reconnect policy) adds to them.
pub async fn options(service: &str) -> Result<async_nats::ConnectOptions, ConnectError> {
    let credentials = NatsCredentials::from_env()?;
    Ok(credentials
        .apply(async_nats::ConnectOptions::new().name(service))
        .await?)
}

/// Connects `service` (its binary's name) to the NATS servers in `nats_url` (comma-separated),
/// as the user its environment names.
pub async fn connect(service: &str, nats_url: &str) -> Result<async_nats::Client, ConnectError> {
    connect_with(options(service).await?, nats_url).await
}

/// Connects with `options` to the servers in `nats_url`.
pub async fn connect_with(
    options: async_nats::ConnectOptions,
    nats_url: &str,
) -> Result<async_nats::Client, ConnectError> {
    options
        .connect(c2d_telemetry::env::list(nats_url))
        .await
        .map_err(|source| ConnectError::Server {
            url: nats_url.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(vars: &[(&str, &str)]) -> Result<NatsCredentials, CredentialsError> {
        NatsCredentials::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn no_variables_mean_an_anonymous_clear_connection() {
        assert_eq!(credentials(&[]).unwrap(), NatsCredentials::default());
    }

    #[test]
    fn a_user_needs_its_password_and_a_password_its_user() {
        let both = credentials(&[("NATS_USER", "crm-sync"), ("NATS_PASSWORD", " p ")]).unwrap();
        // A password is taken as written: spaces may be part of it.
        assert_eq!(both.user, Some(("crm-sync".into(), " p ".into())));
        let shown = format!("{both:?}");
        assert!(
            shown.contains("crm-sync") && !shown.contains(" p "),
            "{shown}"
        );
        let error = credentials(&[("NATS_USER", "crm-sync")]).unwrap_err();
        assert!(error.to_string().contains("c2d-nats-users"), "{error}");
        assert!(matches!(
            credentials(&[("NATS_PASSWORD", "p")]),
            Err(CredentialsError::NoUser)
        ));
    }

    #[test]
    fn tls_settings_are_checked() {
        let tls = credentials(&[
            ("NATS_TLS_CA", "/etc/nats/ca.pem"),
            ("NATS_TLS_CERT", "/etc/nats/tls.crt"),
            ("NATS_TLS_KEY", "/etc/nats/tls.key"),
            ("NATS_TLS_REQUIRED", "true"),
        ])
        .unwrap();
        assert_eq!(tls.tls_ca, Some("/etc/nats/ca.pem".into()));
        assert!(tls.tls_client.is_some() && tls.tls_required);
        assert!(matches!(
            credentials(&[("NATS_TLS_CERT", "/c")]),
            Err(CredentialsError::HalfCertificate)
        ));
        assert!(matches!(
            credentials(&[("NATS_TLS_REQUIRED", "yes")]),
            Err(CredentialsError::TlsRequired(_))
        ));
    }
}
