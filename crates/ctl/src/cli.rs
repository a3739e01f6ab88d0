//! The command line. Every address and token has a flag and an environment variable, with the
//! defaults `make run` uses, so on one machine no flag is needed.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "c2dctl",
    version,
    about = "Manage Chat2Desk webhooks, simulate Chat2Desk, tail and replay events, ask analytics, CRM, alerting and hints."
)]
pub struct Cli {
    /// Print JSON (one array, or one object per line when following) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// An account's Chat2Desk webhooks (C2D_API_URL, C2D_API_TOKEN).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// A Chat2Desk stand-in: its webhooks API, realistic traffic, deliveries with retries.
    Simulate(SimulateArgs),
    /// The event log on NATS.
    #[command(subcommand)]
    Events(EventsCommand),
    /// AnalyticsService.
    #[command(subcommand)]
    Analytics(AnalyticsCommand),
    /// CrmService.
    #[command(subcommand)]
    Crm(CrmCommand),
    /// AlertingService.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// HintsService: the hints operators get.
    #[command(subcommand)]
    Hints(HintsCommand),
    /// c2d-keeper: the webhooks it keeps and the gaps it backfills.
    #[command(subcommand)]
    Keeper(KeeperCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeeperCommand {
    /// Per tenant: webhook state, last check, gaps found, messages backfilled, gaps pending
    /// (read from the keeper's bucket C2D_KEEPER on NATS).
    Status {
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// Only this tenant.
        #[arg(long, value_parser = tenant)]
        tenant: Option<String>,
        /// Also each gap of each tenant.
        #[arg(long)]
        gaps: bool,
    },
}

#[derive(Debug, Args)]
pub struct HintsArgs {
    #[arg(long, env = "C2D_HINTS_URL", default_value = "http://127.0.0.1:50054")]
    pub hints_url: String,
    #[arg(long)]
    pub tenant: String,
}

#[derive(Debug, Subcommand)]
pub enum HintsCommand {
    /// The hints for a question (its text), or for a client's message (--message-id).
    Suggest {
        #[command(flatten)]
        hints: HintsArgs,
        #[arg(long)]
        message_id: Option<i64>,
        #[arg(long)]
        client_id: Option<i64>,
        /// At most this many (default: the service's).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        text: Option<String>,
    },
    /// The operator chose a hint for a message: that answer ranks higher for similar questions.
    Feedback {
        #[command(flatten)]
        hints: HintsArgs,
        #[arg(long)]
        message_id: i64,
        #[arg(long)]
        hint_id: i64,
    },
    /// Pairs, answers, conversations and choices the service knows for a tenant.
    Stats {
        #[command(flatten)]
        hints: HintsArgs,
    },
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Chat2Desk's API (the simulator's: http://127.0.0.1:8090/v1).
    #[arg(long, env = "C2D_API_URL", default_value = c2dctl::chat2desk::DEFAULT_API_URL)]
    pub api_url: String,
    /// The account's API token (Chat2Desk: Settings -> API).
    #[arg(long, env = "C2D_API_TOKEN", hide_env_values = true)]
    pub api_token: String,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// The account's webhooks.
    List(ApiArgs),
    /// A new webhook (at most 5 per account).
    Create {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        /// Hook types, comma-separated; default: all 14.
        #[arg(long)]
        events: Option<String>,
    },
    /// Changes a webhook; what is not given stays.
    Update {
        #[command(flatten)]
        api: ApiArgs,
        id: i64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        events: Option<String>,
    },
    /// Deletes a webhook.
    Delete {
        #[command(flatten)]
        api: ApiArgs,
        id: i64,
    },
    /// Points the account's `c2d-gateway` webhook at this gateway with every hook type
    /// (creates it, or updates it and so enables it again).
    Register {
        #[command(flatten)]
        api: ApiArgs,
        /// The gateway as Chat2Desk reaches it (e.g. https://webhooks.example.com); without
        /// it, the account's `c2d-gateway` webhook keeps the gateway it points at.
        #[arg(long, env = "C2D_GATEWAY_URL")]
        gateway_url: Option<String>,
        /// The tenant this account is in GATEWAY_TOKENS.
        #[arg(long, value_parser = tenant)]
        tenant: String,
        /// The tenant's secret in GATEWAY_TOKENS.
        #[arg(long, env = "C2D_GATEWAY_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Where the simulated webhooks API listens.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// Accounts as tenant=api_token, comma-separated.
    #[arg(long, default_value = "demo=demo-api-token", value_delimiter = ',')]
    pub accounts: Vec<String>,
    /// Webhooks registered at start, as tenant=url (repeatable); otherwise register them with
    /// `c2dctl webhooks register`.
    #[arg(long)]
    pub webhook: Vec<String>,
    /// Events per second, on average.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Stop after this many events (and their deliveries); default: until Ctrl-C.
    #[arg(long)]
    pub events: Option<u64>,
    /// The same seed makes the same traffic.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Divides every delay: operators' answers, the retry schedule (10 s, 5 min, 2 h) and the
    /// 5 hours after which a failing webhook is disabled.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Write one JSON line per delivery outcome here.
    #[arg(long)]
    pub record: Option<std::path::PathBuf>,
    /// Start the traffic only once every account has a webhook.
    #[arg(long)]
    pub wait_for_webhooks: bool,
    /// After --events are delivered, go on serving the API (webhooks, messages) until Ctrl-C.
    #[arg(long)]
    pub keep_serving: bool,
}

#[derive(Debug, Args)]
pub struct NatsArgs {
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Only this tenant's events.
    #[arg(long, value_parser = tenant)]
    pub tenant: Option<String>,
    /// Only this hook type.
    #[arg(long = "type")]
    pub hook_type: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Follows new events (or from --since ago) until Ctrl-C or --limit.
    Tail {
        #[command(flatten)]
        nats: NatsArgs,
        #[arg(long, value_parser = duration)]
        since: Option<Duration>,
        #[arg(long)]
        limit: Option<u64>,
    },
    /// The events from --since ago to now; with --post-to, POSTs them again to a gateway.
    Replay {
        #[command(flatten)]
        nats: NatsArgs,
        #[arg(long, value_parser = duration, default_value = "1h")]
        since: Duration,
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// A webhook URL with {tenant}, e.g. http://gw:8080/hooks/chat2desk/{tenant}?token=...
        #[arg(long)]
        post_to: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AnalyticsArgs {
    #[arg(
        long,
        env = "C2D_ANALYTICS_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub analytics_url: String,
    #[arg(long)]
    pub tenant: String,
    /// How far back, e.g. 15m, 24h.
    #[arg(long, value_parser = duration, default_value = "24h")]
    pub since: Duration,
}

#[derive(Debug, Subcommand)]
pub enum AnalyticsCommand {
    /// Volumes, failures, first-response and resolution times (wall-clock and business
    /// time) and the SLA ratio, per operator or channel.
    Summary {
        #[command(flatten)]
        args: AnalyticsArgs,
        /// operator or channel.
        #[arg(long, default_value = "operator")]
        by: String,
        /// The SLA's first-response target in business minutes (the sla column); c2d-analytics'
        /// default (15) when not given.
        #[arg(long)]
        sla_minutes: Option<u32>,
    },
    /// The tenant's business-hours calendar (docs/business-hours.md): shown, or set from a
    /// JSON file (`-` for stdin), or deleted.
    Calendar {
        #[arg(
            long,
            env = "C2D_ANALYTICS_URL",
            default_value = "http://127.0.0.1:50052"
        )]
        analytics_url: String,
        #[arg(long)]
        tenant: String,
        /// A calendar JSON file to set, or - to read it from stdin.
        #[arg(long, conflicts_with = "delete")]
        set: Option<std::path::PathBuf>,
        /// Removes the calendar: the tenant's business time is wall-clock time again.
        #[arg(long)]
        delete: bool,
    },
    /// A metric per bucket.
    Series {
        #[command(flatten)]
        args: AnalyticsArgs,
        /// inbound_messages, outbound_messages, delivery_failures, first_response_seconds,
        /// first_response_business_seconds, ...
        #[arg(long, default_value = "inbound_messages")]
        metric: String,
        /// minute, hour or day.
        #[arg(long, default_value = "hour")]
        granularity: String,
        /// transport, channel, operator, tag, failure or hook_type.
        #[arg(long)]
        group_by: Option<String>,
        /// For duration metrics, e.g. 0.9.
        #[arg(long, default_value_t = 0.5)]
        quantile: f64,
    },
}

#[derive(Debug, Args)]
pub struct CrmArgs {
    #[arg(long, env = "C2D_CRM_URL", default_value = "http://127.0.0.1:50051")]
    pub crm_url: String,
}

#[derive(Debug, Subcommand)]
pub enum CrmCommand {
    /// One client.
    Client {
        #[command(flatten)]
        crm: CrmArgs,
        #[arg(long)]
        tenant: String,
        client_id: i64,
    },
    /// Clients by tag or name prefix.
    Search {
        #[command(flatten)]
        crm: CrmArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// How far crm-sync has read, and its connectors' queues.
    Status {
        #[command(flatten)]
        crm: CrmArgs,
    },
}

#[derive(Debug, Args)]
pub struct AlertingArgs {
    #[arg(
        long,
        env = "C2D_ALERTING_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub alerting_url: String,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alerts, newest first.
    List {
        #[command(flatten)]
        alerting: AlertingArgs,
        /// firing, resolved or any.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value = "")]
        tenant: String,
        #[arg(long, default_value = "")]
        rule: String,
    },
    /// Someone is on it: no more repeats.
    Ack {
        #[command(flatten)]
        alerting: AlertingArgs,
        fingerprint: String,
        #[arg(long, env = "USER")]
        by: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// The rules and their last evaluation.
    Rules {
        #[command(flatten)]
        alerting: AlertingArgs,
    },
    /// Mutes matching alerts' notifications for a while.
    Silence {
        #[command(flatten)]
        alerting: AlertingArgs,
        #[arg(long, default_value = "")]
        tenant: String,
        #[arg(long, default_value = "")]
        rule: String,
        #[arg(long = "for", value_parser = duration, default_value = "1h")]
        duration: Duration,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// What a rule would have fired over the recent log.
    Test {
        #[command(flatten)]
        alerting: AlertingArgs,
        rule: String,
        #[arg(long, default_value = "")]
        tenant: String,
        #[arg(long, value_parser = duration, default_value = "1h")]
        since: Duration,
    },
}

/// `500ms`, `30s`, `10m`, `2h`.
fn duration(text: &str) -> Result<Duration, String> {
    c2d_telemetry::env::duration(text)
}

/// A tenant as the gateway names it: it becomes a token of a NATS subject and a segment of the
/// webhook URL's path, so anything else would read or register the wrong thing.
fn tenant(text: &str) -> Result<String, String> {
    if c2d_proto::events::is_valid_tenant(text) {
        Ok(text.to_owned())
    } else {
        Err("not a tenant name (1 to 64 letters, digits, - or _, as in GATEWAY_TOKENS)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_checked_where_it_is_read() {
        assert_eq!(tenant("acme_2-b").unwrap(), "acme_2-b");
        for bad in ["acme.*", "bad tenant", ""] {
            let error = tenant(bad).unwrap_err();
            assert!(error.contains("not a tenant name"), "{error}");
        }
    }
}
