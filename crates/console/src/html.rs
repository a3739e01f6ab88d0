//! Pages as strings: every value from an event or a request is escaped on its way in
//! ([`escape`]), and every page has the same frame ([`page`]) with the session's CSRF token in
//! its logout form. No template engine and no JavaScript build: a page is a function.

use axum::response::Html;

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
form.search{display:flex;gap:.5rem;flex-wrap:wrap;margin-bottom:1rem}";

/// A whole page: the header (who is logged in, the logout form), then `body`.
pub fn page(title: &str, session: Option<&Session>, body: &str) -> Html<String> {
    let nav = match session {
        Some(session) => {
            let who = match session.principal.tenant() {
                Some(tenant) => format!("tenant {}", escape(tenant)),
                None => "operator (every tenant)".to_owned(),
            };
            format!(
                "<a href=\"/events\">Events</a><a href=\"/dead-letters\">Dead letters</a><span>{who}</span>\
                 <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\">Log out</button></form>",
                csrf = escape(&session.csrf)
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
