//! A real browser for the console's tests: headless Chromium, driven over the W3C WebDriver
//! protocol by chromedriver (Debian's `chromium` and `chromium-driver` packages, which
//! `make tools` installs through scripts/install-chromium.sh). A test sees the pages as a user
//! does: scripts run, cookies are kept by the browser's own rules, forms are submitted.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value as Json, json};

use crate::{ServiceProcess, free_port};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One headless Chromium window; the browser and its driver go when this is dropped.
pub struct Browser {
    _driver: ServiceProcess,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium through it.
    pub async fn start() -> anyhow::Result<Browser> {
        let driver_binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let mut driver = ServiceProcess::spawn_with_args(
            &driver_binary,
            &[&format!("--port={port}")],
            &[],
        )
        .with_context(|| {
            format!("cannot start {driver_binary}: run `make tools` (it installs Debian's chromium and chromium-driver) or set CHROMEDRIVER")
        })?;
        let base = format!("http://127.0.0.1:{port}");
        driver
            .wait_for_ok(&format!("{base}/status"), Duration::from_secs(20))
            .await?;
        let http = reqwest::Client::new();
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"]
        });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let answer: Json = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}))
            .send()
            .await?
            .json()
            .await?;
        let Some(session) = answer["value"]["sessionId"].as_str() else {
            bail!("chromedriver opened no browser: {answer}");
        };
        Ok(Browser {
            session: format!("{base}/session/{session}"),
            _driver: driver,
            http,
        })
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Json,
    ) -> anyhow::Result<Json> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        // A GET carries no body; chromedriver refuses one.
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let answer: Json = request.send().await?.json().await?;
        if let Some(error) = answer["value"]["error"].as_str() {
            bail!("WebDriver {path}: {error}: {}", answer["value"]["message"]);
        }
        Ok(answer["value"].clone())
    }

    /// Opens `url` and waits for the page to load.
    pub async fn go(&self, url: &str) -> anyhow::Result<()> {
        self.command(reqwest::Method::POST, "/url", json!({"url": url}))
            .await?;
        Ok(())
    }

    async fn element(&self, css: &str) -> anyhow::Result<String> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        found[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no element {css}"))
    }

    /// Types `text` into the element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.element(css).await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({"text": text}),
        )
        .await?;
        Ok(())
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.element(css).await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await?;
        Ok(())
    }

    /// The page as the browser has it now (after its scripts ran).
    pub async fn source(&self) -> anyhow::Result<String> {
        let source = self
            .command(reqwest::Method::GET, "/source", Json::Null)
            .await?;
        Ok(source.as_str().unwrap_or_default().to_owned())
    }

    /// The page once `ready` holds for it (a navigation or a script has finished), polled for
    /// up to 15 s; the test fails naming `what` it waited for.
    pub async fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let ready = &ready;
        crate::eventually(what, Duration::from_secs(15), || async move {
            let source = self.source().await.map_err(|e| e.to_string())?;
            if ready(&source) {
                Ok(source)
            } else {
                Err("not yet".to_owned())
            }
        })
        .await
    }

    /// The current URL.
    pub async fn url(&self) -> anyhow::Result<String> {
        let url = self
            .command(reqwest::Method::GET, "/url", Json::Null)
            .await?;
        Ok(url.as_str().unwrap_or_default().to_owned())
    }

    /// A PNG of the window, written to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let png = self
            .command(reqwest::Method::GET, "/screenshot", Json::Null)
            .await?;
        let png = base64_decode(png.as_str().unwrap_or_default())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the browser before the driver is killed, so that no Chromium is left behind.
        let url = self.session.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    let _ = reqwest::Client::new().delete(url).send().await;
                });
            }
        })
        .join();
    }
}

/// Standard base64 (what WebDriver's screenshots are), without a dependency for it.
fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    let value = |c: u8| -> anyhow::Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("not base64: {c}"),
        } as u32)
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let take = chunk.len().saturating_sub(1);
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_decoded() {
        assert_eq!(
            super::base64_decode("aGVsbG8gd29ybGQ=").unwrap(),
            b"hello world"
        );
        assert_eq!(super::base64_decode("YQ==").unwrap(), b"a");
    }
}
