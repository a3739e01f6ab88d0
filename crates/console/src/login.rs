//! The login and logout actions, and the one check every page and action starts with
//! ([`Console::session`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::Console;
use crate::auth::{self, Session};
use crate::html::{escape, page, refusal};

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

#[derive(serde::Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
}

impl Console {
    /// The request's live session, or the answer to give instead: a page asks for the login
    /// form, an API answer would be 401.
    pub fn session(&self, headers: &HeaderMap) -> Result<(String, Session), Box<Response>> {
        let cookies = headers
            .get(header::COOKIE)
            .and_then(|value| value.to_str().ok());
        auth::session_id(cookies)
            .and_then(|id| Some((id.to_owned(), self.sessions.get(id)?)))
            .ok_or_else(|| Box::new(Redirect::to("/login").into_response()))
    }

    /// The session of an action (a POST): it must carry the session's CSRF token in its form
    /// field `csrf`, or it is refused with 403, whatever its cookie.
    pub fn action_session(
        &self,
        headers: &HeaderMap,
        form: &[u8],
    ) -> Result<(String, Session), Box<Response>> {
        let (id, session) = self.session(headers)?;
        let sent = serde_urlencoded::from_bytes::<ActionForm>(form)
            .map(|f| f.csrf)
            .unwrap_or_default();
        if !session.csrf_matches(&sent) {
            tracing::warn!("an action without this session's CSRF token was refused");
            return Err(Box::new(
                (
                StatusCode::FORBIDDEN,
                page(
                    "Refused",
                    Some(&session),
                    "<p class=\"error\">This action did not come from a console page (its CSRF token is missing or wrong). Go back, reload the page and try again.</p>",
                ),
            )
                .into_response(),
            ));
        }
        Ok((id, session))
    }

    /// An action's session (CSRF checked as [`Console::action_session`]) and its form, or
    /// the answer to give instead: a form that does not parse is refused with 400 and why.
    pub fn action<T: serde::de::DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        form: &[u8],
    ) -> Result<(Session, T), Box<Response>> {
        let (_, session) = self.action_session(headers, form)?;
        match serde_urlencoded::from_bytes::<T>(form) {
            Ok(fields) => Ok((session, fields)),
            Err(error) => {
                let why =
                    format!("This form is not one the console sent ({error}); reload the page.");
                Err(Box::new(refusal(
                    StatusCode::BAD_REQUEST,
                    "Refused",
                    Some(&session),
                    &why,
                )))
            }
        }
    }
}

/// GET /login: the form.
pub async fn form() -> Response {
    login_page(StatusCode::OK, "")
}

fn login_page(status: StatusCode, error: &str) -> Response {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\">{}</p>", escape(error))
    };
    let body = format!(
        "{error}<form method=\"post\" action=\"/login\">\
         <label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label>\
         <button type=\"submit\">Log in</button></form>\
         <p>The operator's token (<code>CONSOLE_ADMIN_TOKEN</code>) sees every tenant; a tenant's \
         (<code>CONSOLE_TENANT_TOKENS</code>) sees its own.</p>"
    );
    (status, page("Log in", None, &body)).into_response()
}

/// POST /login: a token in, a session cookie out.
pub async fn login(State(console): State<Arc<Console>>, form: Bytes) -> Response {
    let token = serde_urlencoded::from_bytes::<LoginForm>(&form)
        .map(|f| f.token)
        .unwrap_or_default();
    let Some(principal) = console.config.tokens.principal(&token) else {
        tracing::warn!("a login with an unknown token was refused");
        return login_page(
            StatusCode::UNAUTHORIZED,
            "This token is not one the console knows: check CONSOLE_ADMIN_TOKEN or CONSOLE_TENANT_TOKENS.",
        );
    };
    let id = match console.sessions.open(principal.clone()) {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "cannot open a session");
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    tracing::info!(?principal, "logged in");
    let cookie = auth::cookie(&id, console.config.secure_cookies, console.config.session);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/events")).into_response()
}

/// POST /logout: the session ends (an action: it needs the CSRF token too).
pub async fn logout(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    let (id, _) = match console.action_session(&headers, &form) {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    console.sessions.close(&id);
    let cookie = auth::cookie("", console.config.secure_cookies, console.config.session);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}
