//! Minimal HTTP/1.1 requests over plain TCP, for tests: one connection per request, so that
//! requests in flight are independent, as Chat2Desk's deliveries are.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// What a server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "answer is not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `POST url` with `body` and `headers`.
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Answer> {
    send("POST", url, headers, body.into()).await
}

/// `GET url`.
pub async fn get(url: &str) -> anyhow::Result<Answer> {
    send("GET", url, &[], Bytes::new()).await
}

/// `POST url` with a JSON body, as Chat2Desk sends it.
pub async fn post_json(url: &str, body: impl Into<Bytes>) -> anyhow::Result<Answer> {
    post(url, &[("content-type", "application/json")], body).await
}

async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<Answer> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    let authority = uri.authority().context("URL without host")?.clone();
    let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(hyper::header::HOST, authority.as_str());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender.send_request(request.body(Full::new(body))?).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A receiver of JSON posts on a free loopback port (alerting's webhook notifications, say):
/// everything it got, in order.
pub struct JsonReceiver {
    /// Where to post: `http://127.0.0.1:{port}{path}`.
    pub url: String,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

/// Starts a [`JsonReceiver`] answering `POST {path}`.
pub async fn json_receiver(path: &str) -> anyhow::Result<JsonReceiver> {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        path,
        axum::routing::post({
            let received = std::sync::Arc::clone(&received);
            move |axum::Json(body): axum::Json<serde_json::Value>| {
                let received = std::sync::Arc::clone(&received);
                async move {
                    received
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(body);
                    "ok"
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{path}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the test's JSON receiver stopped: {error}");
        }
    });
    Ok(JsonReceiver { url, received })
}
