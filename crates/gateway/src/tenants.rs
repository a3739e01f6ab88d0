//! Tenants and their webhook secrets.
//!
//! Each Chat2Desk account gets its own webhook URL, `/hooks/chat2desk/{tenant}`, and its own
//! secret. A tenant may hold two secrets at once, so a secret is rotated without downtime:
//! add the new one, change the URL in Chat2Desk, remove the old one.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use c2d_proto::events::is_valid_tenant;
use subtle::ConstantTimeEq;

/// The shortest secret accepted: anything shorter can be guessed.
pub const MIN_SECRET_LEN: usize = 8;

/// The tenants the gateway accepts, each with its valid secrets.
#[derive(Clone, Default)]
pub struct Tenants {
    secrets: HashMap<String, Vec<Vec<u8>>>,
}

/// The outcome of checking a request's credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    Granted,
    UnknownTenant,
    MissingToken,
    WrongToken,
}

/// A `GATEWAY_TOKENS` entry that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TenantsError {
    #[error("entry {0:?} is not tenant=secret")]
    NotAPair(String),
    #[error(
        "tenant {0:?} must be 1 to 64 letters, digits, '-' or '_' (it becomes part of the URL and of NATS subjects)"
    )]
    BadTenant(String),
    #[error(
        "the secret of tenant {0:?} is shorter than {MIN_SECRET_LEN} characters; use e.g. $(openssl rand -hex 24)"
    )]
    WeakSecret(String),
}

impl FromStr for Tenants {
    type Err = TenantsError;

    /// `tenant=secret,tenant2=secret2`; blanks around entries are ignored.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut tenants = Tenants::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (tenant, secret) = entry
                .split_once('=')
                .map(|(t, s)| (t.trim(), s.trim()))
                .ok_or_else(|| TenantsError::NotAPair(entry.to_owned()))?;
            if !is_valid_tenant(tenant) {
                return Err(TenantsError::BadTenant(tenant.to_owned()));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(TenantsError::WeakSecret(tenant.to_owned()));
            }
            tenants
                .secrets
                .entry(tenant.to_owned())
                .or_default()
                .push(secret.as_bytes().to_vec());
        }
        Ok(tenants)
    }
}

impl Tenants {
    /// Checks `token` for `tenant` in constant time, against every secret of the tenant, so
    /// that neither timing nor the order of secrets tells an attacker anything.
    pub fn check(&self, tenant: &str, token: Option<&str>) -> Access {
        let Some(secrets) = self.secrets.get(tenant) else {
            return Access::UnknownTenant;
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Access::MissingToken;
        };
        let mut matched = subtle::Choice::from(0);
        for secret in secrets {
            matched |= secret.as_slice().ct_eq(token.as_bytes());
        }
        if bool::from(matched) {
            Access::Granted
        } else {
            Access::WrongToken
        }
    }

    /// The tenant names, sorted, for logs and for printing webhook URLs.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for Tenants {
    /// Names only: secrets never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tenants_and_checks_their_secrets() {
        let tenants: Tenants = " acme = s3cret-acme , globex=s3cret-globex"
            .parse()
            .unwrap();
        assert_eq!(tenants.names(), ["acme", "globex"]);
        assert_eq!(tenants.check("acme", Some("s3cret-acme")), Access::Granted);
        assert_eq!(
            tenants.check("acme", Some("s3cret-globex")),
            Access::WrongToken
        );
        assert_eq!(tenants.check("acme", None), Access::MissingToken);
        assert_eq!(tenants.check("acme", Some("")), Access::MissingToken);
        assert_eq!(
            tenants.check("initech", Some("s3cret-acme")),
            Access::UnknownTenant
        );
    }

    #[test]
    fn a_tenant_listed_twice_accepts_both_secrets_during_rotation() {
        let tenants: Tenants = "acme=old-secret,acme=new-secret".parse().unwrap();
        assert_eq!(tenants.check("acme", Some("old-secret")), Access::Granted);
        assert_eq!(tenants.check("acme", Some("new-secret")), Access::Granted);
        assert_eq!(tenants.check("acme", Some("new-secre")), Access::WrongToken);
    }

    #[test]
    fn rejects_bad_entries_with_the_reason() {
        assert_eq!(
            "acme".parse::<Tenants>().unwrap_err(),
            TenantsError::NotAPair("acme".into())
        );
        assert_eq!(
            "a.b=12345678".parse::<Tenants>().unwrap_err(),
            TenantsError::BadTenant("a.b".into())
        );
        assert_eq!(
            "acme=short".parse::<Tenants>().unwrap_err(),
            TenantsError::WeakSecret("acme".into())
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let tenants: Tenants = "acme=topsecret1".parse().unwrap();
        assert_eq!(format!("{tenants:?}"), r#"{"acme"}"#);
    }
}
