//! Who is looking: a login with a token, a session in a cookie, and a CSRF token per session.
//!
//! A token is either the operator's (`CONSOLE_ADMIN_TOKEN`: every tenant) or a tenant's
//! (`CONSOLE_TENANT_TOKENS`: that tenant only). It is typed once into the login form, compared
//! in constant time, and never appears in a URL or a log. What the browser keeps is a random
//! session id in a cookie that scripts cannot read (`HttpOnly`), that other sites' pages do not
//! send (`SameSite=Strict`) and that travels over HTTPS only (`Secure`, unless configured off).
//!
//! Every action (a POST) must also carry the session's CSRF token from the page's form: a
//! request forged by another page has the cookie at most, never the token. Sessions live in
//! memory: a restart logs everyone out, which is the safe direction.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq as _;

/// The name of the session cookie.
pub const COOKIE: &str = "c2d_console";
/// Tokens shorter than this are refused at start: a console reachable from a network must not
/// be guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a session may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Every tenant.
    Admin,
    /// This tenant only.
    Tenant(String),
}

impl Principal {
    /// Whether this principal may see (and act on) `tenant`'s events.
    pub fn may_see(&self, tenant: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant(own) => own == tenant,
        }
    }

    /// The tenant a tenant login is bound to.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Principal::Admin => None,
            Principal::Tenant(tenant) => Some(tenant),
        }
    }

    /// The tenant a request is about: the one it asked for (`""`: none), checked against
    /// this principal. A tenant login is always about its own tenant, and asking for another
    /// is refused whatever its page showed: the check is here, not in hidden links.
    pub fn scope(&self, asked: &str) -> Result<Option<String>, OutOfScope> {
        let asked = asked.trim();
        match (self.tenant(), asked) {
            (Some(own), "") => Ok(Some(own.to_owned())),
            (_, "") => Ok(None),
            (Some(own), asked) if own != asked => Err(OutOfScope::OtherTenant(own.to_owned())),
            (_, asked) if !c2d_proto::events::is_valid_tenant(asked) => {
                Err(OutOfScope::NotATenant(asked.to_owned()))
            }
            (_, asked) => Ok(Some(asked.to_owned())),
        }
    }
}

/// A request about a tenant its login may not see, or about no tenant at all.
#[derive(Debug, thiserror::Error)]
pub enum OutOfScope {
    #[error("This login sees tenant {0} only.")]
    OtherTenant(String),
    #[error("{0:?} is not a tenant name (lowercase letters, digits, - and _).")]
    NotATenant(String),
}

impl OutOfScope {
    /// 403 for another tenant, 400 for a name that is not one.
    pub fn status(&self) -> axum::http::StatusCode {
        match self {
            OutOfScope::OtherTenant(_) => axum::http::StatusCode::FORBIDDEN,
            OutOfScope::NotATenant(_) => axum::http::StatusCode::BAD_REQUEST,
        }
    }
}

/// Why the configured tokens cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error(
        "no console token: set CONSOLE_ADMIN_TOKEN (sees every tenant) and/or CONSOLE_TENANT_TOKENS=tenant=token,... (each sees its tenant), e.g. CONSOLE_ADMIN_TOKEN=$(openssl rand -hex 24)"
    )]
    None,
    #[error(
        "CONSOLE_TENANT_TOKENS: entry {0} is not tenant=token (the entry is not shown: it may be a token)"
    )]
    NotAPair(usize),
    #[error(
        "CONSOLE_TENANT_TOKENS: {0:?} is not a tenant name (lowercase letters, digits, - and _)"
    )]
    BadTenant(String),
    #[error(
        "a console token is shorter than {MIN_TOKEN_LEN} characters ({0}): generate one with openssl rand -hex 24"
    )]
    TooShort(&'static str),
}

/// The tokens that open a session.
#[derive(Clone)]
pub struct Tokens {
    admin: Option<String>,
    tenants: Vec<(String, String)>,
}

impl std::fmt::Debug for Tokens {
    /// Tenants only: a token must not reach a log through a configuration dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("admin", &self.admin.is_some())
            .field(
                "tenants",
                &self.tenants.iter().map(|(t, _)| t).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Tokens {
    /// The operator's token, and `tenant=token,...`.
    pub fn new(admin: Option<String>, tenants: Option<&str>) -> Result<Tokens, TokensError> {
        let mut pairs = Vec::new();
        for (n, pair) in tenants
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .enumerate()
        {
            if pair.is_empty() {
                continue;
            }
            let (tenant, token) = pair.split_once('=').ok_or(TokensError::NotAPair(n + 1))?;
            let tenant = tenant.trim();
            if !c2d_proto::events::is_valid_tenant(tenant) {
                return Err(TokensError::BadTenant(tenant.to_owned()));
            }
            if token.trim().len() < MIN_TOKEN_LEN {
                return Err(TokensError::TooShort("CONSOLE_TENANT_TOKENS"));
            }
            pairs.push((tenant.to_owned(), token.trim().to_owned()));
        }
        if admin.as_ref().is_some_and(|t| t.len() < MIN_TOKEN_LEN) {
            return Err(TokensError::TooShort("CONSOLE_ADMIN_TOKEN"));
        }
        if admin.is_none() && pairs.is_empty() {
            return Err(TokensError::None);
        }
        Ok(Tokens {
            admin,
            tenants: pairs,
        })
    }

    /// Who `token` opens a session for. Every token is compared, in constant time, whatever
    /// matches: the answer's timing says nothing about which tokens exist.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        let token = token.trim().as_bytes();
        let mut found = None;
        if let Some(admin) = &self.admin
            && bool::from(admin.as_bytes().ct_eq(token))
        {
            found = Some(Principal::Admin);
        }
        for (tenant, secret) in &self.tenants {
            if bool::from(secret.as_bytes().ct_eq(token)) && found.is_none() {
                found = Some(Principal::Tenant(tenant.clone()));
            }
        }
        found
    }
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// What every form of this session carries, and every POST must send back.
    pub csrf: String,
    expires: Instant,
}

impl Session {
    /// Whether `sent` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, sent: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(sent.as_bytes()))
    }
}

/// The sessions, by id.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    by_id: Mutex<HashMap<String, Session>>,
}

/// The operating system gave no random bytes: no session can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes from the operating system: {0}")]
pub struct NoRandomness(String);

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `principal`; returns its id, for the cookie.
    pub fn open(&self, principal: Principal) -> Result<String, NoRandomness> {
        let id = random_token()?;
        let session = Session {
            principal,
            csrf: random_token()?,
            expires: Instant::now() + self.ttl,
        };
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let sessions = self.lock();
        sessions
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Ends the session (logout).
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// 32 random bytes, hex: a session id or a CSRF token.
fn random_token() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The session id in a request's `Cookie` header.
pub fn session_id(cookies: Option<&str>) -> Option<&str> {
    cookies?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value that keeps session `id` (empty `id`: the one that removes it).
pub fn cookie(id: &str, secure: bool, ttl: Duration) -> String {
    let age = if id.is_empty() { 0 } else { ttl.as_secs() };
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(
            Some("admin-token-0123456789".into()),
            Some("acme=acme-token-0123456789, globex=globex-token-0123456789, acme=acme-next-0123456789"),
        )
        .unwrap()
    }

    #[test]
    fn a_token_opens_what_it_was_given_for() {
        let tokens = tokens();
        assert_eq!(
            tokens.principal("admin-token-0123456789"),
            Some(Principal::Admin)
        );
        let acme = Principal::Tenant("acme".into());
        assert_eq!(
            tokens.principal("acme-token-0123456789"),
            Some(acme.clone())
        );
        assert_eq!(
            tokens.principal("acme-next-0123456789"),
            Some(acme.clone()),
            "rotation"
        );
        assert_eq!(tokens.principal("acme-token-012345678"), None);
        assert!(acme.may_see("acme") && !acme.may_see("globex"));
        assert!(
            !format!("{tokens:?}").contains("token-0123"),
            "no token in Debug"
        );
    }

    #[test]
    fn weak_or_malformed_tokens_are_refused() {
        assert!(matches!(Tokens::new(None, None), Err(TokensError::None)));
        assert!(matches!(
            Tokens::new(Some("short".into()), None),
            Err(TokensError::TooShort(_))
        ));
        assert!(matches!(
            Tokens::new(None, Some("Acme Corp=acme-token-0123456789")),
            Err(TokensError::BadTenant(_))
        ));
        let error = Tokens::new(None, Some("acme-token-0123456789")).unwrap_err();
        assert!(!error.to_string().contains("token-0123"), "{error}");
    }

    #[test]
    fn sessions_carry_a_csrf_token_and_end() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.open(Principal::Admin).unwrap();
        let session = sessions.get(&id).unwrap();
        assert_eq!(session.csrf.len(), 64);
        assert!(session.csrf_matches(&session.csrf.clone()) && !session.csrf_matches("x"));
        let cookies = format!("other=1; {COOKIE}={id}");
        assert_eq!(session_id(Some(&cookies)), Some(id.as_str()));
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        assert!(cookie("abc", true, Duration::from_secs(60)).contains("HttpOnly; SameSite=Strict"));
    }
}
