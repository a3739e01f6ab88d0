//! c2d-console: the pipeline in a browser, for the people who run a contact center and the
//! integrators chasing a missing webhook, who would rather look than read a CLI's tables.
//!
//! Pages are rendered on the server from what the pipeline already has: the event log on NATS,
//! and the gRPC services (analytics, CRM, alerting, hints). There is no JavaScript build and no
//! chart library: charts are SVG drawn on the server, and the few lines of script on a page
//! only follow a live stream. A login is an operator's (every tenant) or a tenant's (its own
//! only), checked on every request and every action, which also needs the session's CSRF
//! token.
//!
//! - [`auth`]: tokens, sessions, cookies, CSRF and tenant scope; [`login`]: log in and out.
//! - The event log: [`events`] (search and live tail), [`search`] (the newest matches of a
//!   large log), [`event`] (one event, [`typed`] as protobuf JSON beside its raw body),
//!   [`replay`] (selected events to the gateway again), [`dead_letters`].
//! - Through the services ([`services`]): [`contact_center`] (charts from AnalyticsService,
//!   live by WatchMinutes), [`clients`] (CrmService: clients, connector queues), [`alerts`]
//!   (AlertingService: acknowledge and silence; hints figures).
//! - [`html`], [`chart`] and [`time`]: how pages, charts and times are written; [`cfg`]: the
//!   environment.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub mod alerts;
pub mod auth;
pub mod cfg;
pub mod chart;
pub mod clients;
pub mod contact_center;
pub mod dead_letters;
pub mod event;
pub mod events;
pub mod html;
pub mod login;
pub mod replay;
pub mod search;
pub mod services;
pub mod time;
pub mod typed;

pub use cfg::Config;

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Connect(#[from] c2d_subscriber::ConnectError),
    #[error(transparent)]
    ServiceUrl(#[from] services::BadUrl),
    #[error("cannot make an HTTP client for replays: {0}")]
    Http(#[from] reqwest::Error),
}

/// The running console's state, shared by every request.
pub struct Console {
    pub config: Config,
    pub sessions: auth::Sessions,
    /// Reads the log (searches); the console never publishes.
    pub nats: async_nats::Client,
    pub jetstream: async_nats::jetstream::Context,
    /// The gRPC services, connected on first use.
    pub services: services::Services,
    /// Posts replays to the gateway.
    pub http: reqwest::Client,
    /// Set when the console stops: live pages end their streams, or a graceful stop would wait
    /// for browsers that never close them.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Console {
    /// Connects to NATS as the environment's user; the services are connected on first use.
    pub async fn start(config: Config) -> Result<Arc<Console>, StartError> {
        let services = services::Services::new(&config.services)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        let options = config
            .nats_credentials
            .apply(async_nats::ConnectOptions::new().name("c2d-console"))
            .await
            .map_err(c2d_subscriber::ConnectError::from)?;
        let nats = c2d_subscriber::connect::connect_with(options, &config.nats_url).await?;
        Ok(Arc::new(Console {
            services,
            http,
            stopping: tokio::sync::watch::Sender::new(false),
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
            .route("/events/replay", post(replay::replay))
            .route("/events/{sequence}", get(event::show))
            .route("/dead-letters", get(dead_letters::list))
            .route("/contact-center", get(contact_center::show))
            .route("/contact-center/charts", get(contact_center::fragment))
            .route("/contact-center/live", get(contact_center::live))
            .route("/clients", get(clients::list))
            .route("/clients/{tenant}/{client_id}", get(clients::card))
            .route("/connectors", get(clients::connectors))
            .route("/connectors/retry", post(clients::retry))
            .route("/alerts", get(alerts::list))
            .route("/alerts/acknowledge", post(alerts::acknowledge))
            .route("/silences", post(alerts::silence))
            .route("/silences/expire", post(alerts::expire))
            .layer(axum::middleware::map_response(html::protect))
            .with_state(self)
    }

    /// Serves on `listener` until `shutdown`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %listener.local_addr()?, "console at http://{}/", listener.local_addr()?);
        let stopping = self.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Resolves when the console stops: a live page's stream ends with it.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }
}
