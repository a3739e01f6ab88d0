//! Pages as strings: every value from an event or a request is escaped on its way in
//! ([`escape`]), and every page has the same frame ([`page`]) with the session's CSRF token in
//! its logout form. No template engine and no JavaScript build: a page is a function.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::auth::Session;

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24}\
header{display:flex;gap:1.5rem;align-items:center;padding:.6rem 1.2rem;background:#16324f;color:#fff}\
header a{color:#fff}header form{margin-left:auto}main{padding:1rem 1.2rem}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #dde;padding:.3rem .5rem;text-align:left;font-size:.9rem}\
pre{background:#f4f6f8;padding:.8rem;overflow:auto;font-size:.85rem}\
.side{display:grid;grid-template-columns:1fr 1fr;gap:1rem}.error{color:#a40000}\
form.search{display:flex;gap:.5rem;flex-wrap:wrap;margin-bottom:1rem}\
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}\
figure.chart{margin:0;border:1px solid #dde;padding:.5rem}figcaption{font-weight:600;margin-bottom:.3rem}\
.legend{font-size:.8rem}.figures{display:flex;gap:1.5rem;flex-wrap:wrap;margin:.5rem 0 1rem}\
.figures div{border-left:3px solid #16324f;padding-left:.5rem}.figures b{display:block;font-size:1.3rem}\
form.inline{display:inline}.firing{color:#a40000;font-weight:600}.resolved{color:#2d6a2d}";

/// A whole page: the header (who is logged in, the logout form), then `body`.
pub fn page(title: &str, session: Option<&Session>, body: &str) -> Html<String> {
    let nav = match session {
        Some(session) => {
            let who = match session.principal.tenant() {
                Some(tenant) => format!("tenant {}", escape(tenant)),
                None => "operator (every tenant)".to_owned(),
            };
            format!(
                "<a href=\"/events\">Events</a><a href=\"/dead-letters\">Dead letters</a>\
                 <a href=\"/contact-center\">Contact center</a><a href=\"/clients\">Clients</a>\
                 <a href=\"/alerts\">Alerts</a><span>{who}</span>\
                 <form method=\"post\" action=\"/logout\">{csrf}<button type=\"submit\">Log out</button></form>",
                csrf = csrf_field(session)
            )
        }
        None => String::new(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · c2d-console</title><style>{STYLE}</style></head>\
         <body><header><strong>c2d-console</strong>{nav}</header><main><h1>{title}</h1>{body}</main></body></html>",
        title = escape(title),
    ))
}

/// Headers on every answer: no other site may frame a console page (a click on a hidden
/// button would be an action with the user's session), no content type is guessed, and the
/// console's URLs (which carry searches) are not sent to other sites.
pub async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::X_FRAME_OPTIONS,
        axum::http::HeaderValue::from_static("DENY"),
    );
    headers.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("same-origin"),
    );
    response
}

/// A page that only says why the request was not done, with `status`.
pub fn refusal(status: StatusCode, title: &str, session: Option<&Session>, why: &str) -> Response {
    let body = format!("<p class=\"error\">{}</p>", escape(why));
    (status, page(title, session, &body)).into_response()
}

/// The tenant field of a page's form: fixed (hidden) for a tenant's login, a text box with
/// `value` for the operator's, who may look at any tenant.
pub fn tenant_field(session: &Session, value: &str, placeholder: &str) -> String {
    match session.principal.tenant() {
        Some(own) => format!(
            "<input type=\"hidden\" name=\"tenant\" value=\"{}\">",
            escape(own)
        ),
        None => format!(
            "<input name=\"tenant\" placeholder=\"{}\" value=\"{}\">",
            escape(placeholder),
            escape(value.trim())
        ),
    }
}

/// Every value of the form field `name` (a form may repeat a field: selected rows).
pub fn repeated_field(form: &[u8], name: &str) -> Result<Vec<String>, String> {
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(form).map_err(|error| error.to_string())?;
    Ok(fields
        .into_iter()
        .filter(|(field, _)| field == name)
        .map(|(_, value)| value)
        .collect())
}

/// A hidden form field with the session's CSRF token: every form that acts has one.
pub fn csrf_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(&session.csrf)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_text() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }
}
