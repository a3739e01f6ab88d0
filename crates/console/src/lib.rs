//! c2d-console: the pipeline in a browser, for the people who run a contact center and the
//! integrators chasing a missing webhook, who would rather look than read a CLI's tables.
//!
//! This first part is the event log and the access to it: a login with a token (an operator's,
//! or a tenant's that sees its tenant only), sessions in `HttpOnly`, `SameSite=Strict`,
//! `Secure` cookies, a CSRF token on every action, and the events searched by tenant, hook
//! type, text and time, each shown typed beside its raw Chat2Desk body. Pages are rendered on
//! the server from the existing stores (the log on NATS here), with no JavaScript build.
//!
//! - [`auth`]: tokens, sessions, cookies and CSRF; [`login`]: the login and logout actions.
//! - [`events`]: the search, the live tail and the event page; [`dead_letters`]: the
//!   dead-letter queue; [`html`]: escaping and the page frame.
//! - [`cfg`]: the environment.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub mod auth;
pub mod cfg;
pub mod dead_letters;
pub mod events;
pub mod html;
pub mod login;

pub use cfg::Config;

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Connect(#[from] c2d_subscriber::ConnectError),
}

/// The running console's state, shared by every request.
pub struct Console {
    pub config: Config,
    pub sessions: auth::Sessions,
    /// Reads the log (searches); the console never publishes.
    pub nats: async_nats::Client,
    pub jetstream: async_nats::jetstream::Context,
}

impl Console {
    /// Connects to NATS as the environment's user.
    pub async fn start(config: Config) -> Result<Arc<Console>, StartError> {
        let nats = c2d_subscriber::connect("c2d-console", &config.nats_url).await?;
        Ok(Arc::new(Console {
            sessions: auth::Sessions::new(config.session),
            jetstream: async_nats::jetstream::new(nats.clone()),
            nats,
            config,
        }))
    }

    /// Every page and action.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", get(|| async { Redirect::to("/events") }))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/login", get(login::form).post(login::login))
            .route("/logout", post(login::logout))
            .route("/events", get(events::search))
            .route("/events/live", get(events::live))
            .route("/events/{sequence}", get(events::show))
            .route("/dead-letters", get(dead_letters::list))
            .with_state(self)
    }

    /// Serves on `listener` until `shutdown`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %listener.local_addr()?, "console at http://{}/", listener.local_addr()?);
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}
