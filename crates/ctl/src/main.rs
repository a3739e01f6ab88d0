//! `c2dctl`: parses the command line, runs the command, prints its rows; errors end here, as
//! one line on stderr and exit code 1.

mod cli;
mod commands;

use anyhow::Context as _;
use c2dctl::chat2desk::{Chat2DeskApi, WebhookSpec};
use c2dctl::output::Rows;
use c2dctl::simulator::{self, SimulatorConfig};
use clap::Parser as _;

use c2d_proto::hints::v1::SuggestRequest;
use cli::{
    AlertsCommand, AnalyticsCommand, ApiArgs, Cli, Command, CrmCommand, EventsCommand,
    HintsCommand, KeeperCommand, NatsArgs, SimulateArgs, WebhooksCommand,
};
use commands::webhooks::{Registered, parse_events};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Commands log at WARN, so that their output is not interleaved with the NATS client's
    // progress; the simulator is a server, whose progress is what its user watches.
    let level = match cli.command {
        Command::Simulate(_) => "info",
        _ => "warn",
    };
    let _telemetry = match c2d_telemetry::init_at("c2dctl", level) {
        Ok(telemetry) => Some(telemetry),
        Err(error) => {
            eprintln!("c2dctl: logging is off: {error}");
            None
        }
    };
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("c2dctl: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Webhooks(command) => webhooks(command, json).await,
        Command::Simulate(args) => simulate(args).await,
        Command::Events(command) => events(command, json).await,
        Command::Analytics(command) => {
            let rows = match command {
                AnalyticsCommand::Summary {
                    args,
                    by,
                    sla_minutes,
                } => {
                    let by_channel = match by.as_str() {
                        "operator" => false,
                        "channel" => true,
                        other => anyhow::bail!("--by {other:?}: use operator or channel"),
                    };
                    commands::analytics::summary(args, by_channel, sla_minutes).await?
                }
                AnalyticsCommand::Series {
                    args,
                    metric,
                    granularity,
                    group_by,
                    quantile,
                } => {
                    let request = commands::analytics::SeriesRequest {
                        tenant: args.tenant,
                        metric,
                        granularity,
                        group_by,
                        since: args.since,
                        quantile,
                    };
                    commands::analytics::series(args.analytics_url, request).await?
                }
                AnalyticsCommand::Calendar {
                    analytics_url,
                    tenant,
                    set,
                    delete,
                } => {
                    let change = match (set, delete) {
                        (Some(path), _) => commands::analytics::CalendarChange::Set(path),
                        (None, true) => commands::analytics::CalendarChange::Delete,
                        (None, false) => commands::analytics::CalendarChange::Show,
                    };
                    commands::analytics::calendar(analytics_url, tenant, change).await?
                }
            };
            rows.print(json);
            Ok(())
        }
        Command::Crm(command) => {
            let rows = match command {
                CrmCommand::Client {
                    crm,
                    tenant,
                    client_id,
                } => commands::crm::client(crm.crm_url, tenant, client_id).await?,
                CrmCommand::Search {
                    crm,
                    tenant,
                    tag,
                    name,
                    limit,
                } => commands::crm::search(crm.crm_url, tenant, tag, name, limit).await?,
                CrmCommand::Status { crm } => commands::crm::status(crm.crm_url).await?,
            };
            rows.print(json);
            Ok(())
        }
        Command::Alerts(command) => alerts(command, json).await,
        Command::Keeper(KeeperCommand::Status {
            nats_url,
            tenant,
            gaps,
        }) => {
            commands::keeper::status(&nats_url, tenant.as_deref(), gaps)
                .await?
                .print(json);
            Ok(())
        }
        Command::Hints(command) => {
            let rows = match command {
                HintsCommand::Suggest {
                    hints,
                    message_id,
                    client_id,
                    limit,
                    text,
                } => {
                    let request = SuggestRequest {
                        tenant: hints.tenant,
                        message_id,
                        client_id,
                        text,
                        limit,
                        dialog_id: None,
                    };
                    commands::hints::suggest(hints.hints_url, request).await?
                }
                HintsCommand::Feedback {
                    hints,
                    message_id,
                    hint_id,
                } => {
                    commands::hints::feedback(hints.hints_url, hints.tenant, message_id, hint_id)
                        .await?
                }
                HintsCommand::Stats { hints } => {
                    commands::hints::stats(hints.hints_url, hints.tenant).await?
                }
            };
            rows.print(json);
            Ok(())
        }
    }
}

async fn webhooks(command: WebhooksCommand, json: bool) -> anyhow::Result<()> {
    let connect = |api: &ApiArgs| Chat2DeskApi::new(&api.api_url, &api.api_token);
    let rows = match command {
        WebhooksCommand::List(api) => commands::webhooks::rows(&connect(&api)?.list().await?),
        WebhooksCommand::Create {
            api,
            name,
            url,
            events,
        } => {
            let events = match events {
                Some(text) => parse_events(&text).map_err(anyhow::Error::msg)?,
                None => c2dctl::chat2desk::every_hook_type(),
            };
            let spec = WebhookSpec {
                name: Some(name),
                url: Some(Some(url)),
                events: Some(events),
            };
            commands::webhooks::rows(&[connect(&api)?.create(&spec).await?])
        }
        WebhooksCommand::Update {
            api,
            id,
            name,
            url,
            events,
        } => {
            let events = events
                .map(|text| parse_events(&text))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let spec = WebhookSpec {
                name,
                url: url.map(Some),
                events,
            };
            match connect(&api)?.update(id, &spec).await? {
                Some(webhook) => commands::webhooks::rows(&[webhook]),
                None => Rows::default(),
            }
        }
        WebhooksCommand::Delete { api, id } => {
            connect(&api)?.delete(id).await?;
            eprintln!("webhook {id} deleted");
            return Ok(());
        }
        WebhooksCommand::Register {
            api,
            gateway_url,
            tenant,
            token,
        } => {
            let registered = commands::webhooks::register(
                &connect(&api)?,
                gateway_url.as_deref(),
                &tenant,
                &token,
            )
            .await?;
            let webhook = match registered {
                Registered::Created(webhook) => {
                    eprintln!("created webhook {} for tenant {tenant}", webhook.id);
                    webhook
                }
                Registered::Updated(webhook) => {
                    eprintln!("updated webhook {} for tenant {tenant}", webhook.id);
                    webhook
                }
            };
            commands::webhooks::rows(&[webhook])
        }
    };
    rows.print(json);
    Ok(())
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let pairs = |items: &[String], what: &str| -> anyhow::Result<Vec<(String, String)>> {
        items
            .iter()
            .map(|item| {
                item.split_once('=')
                    .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .with_context(|| format!("{what} {item:?}: write tenant=value"))
            })
            .collect()
    };
    let accounts = pairs(&args.accounts, "--accounts")?;
    let webhooks = pairs(&args.webhook, "--webhook")?;
    if args.rate <= 0.0 || args.time_scale <= 0.0 {
        anyhow::bail!("--rate and --time-scale must be more than zero");
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another simulator running? (--listen)",
                args.listen
            )
        })?;
    eprintln!(
        "Chat2Desk simulator: webhooks API at http://{}/v1 (tokens: {}); stats at /simulator/stats",
        listener.local_addr()?,
        accounts
            .iter()
            .map(|(t, k)| format!("{t}={k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let config = SimulatorConfig {
        accounts,
        webhooks,
        rate: args.rate,
        events: args.events,
        seed: args.seed,
        time_scale: args.time_scale,
        record: args.record,
        wait_for_webhooks: args.wait_for_webhooks,
        keep_serving: args.keep_serving,
    };
    let summary = simulator::run(config, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    eprintln!(
        "simulated {} events: {} deliveries succeeded, {} retries, {} lost",
        summary.generated, summary.delivered, summary.retried, summary.lost
    );
    Ok(())
}

async fn events(command: EventsCommand, json: bool) -> anyhow::Result<()> {
    let connect = |nats: &NatsArgs| {
        let url = nats.nats_url.clone();
        async move {
            c2d_subscriber::connect("c2dctl", &url)
                .await
                .context("--nats-url and NATS_URL say where NATS is")
        }
    };
    let filter = |nats: &NatsArgs| {
        commands::events::subject(nats.tenant.as_deref(), nats.hook_type.as_deref())
            .map_err(anyhow::Error::msg)
    };
    match command {
        EventsCommand::Tail { nats, since, limit } => {
            let filter = filter(&nats)?;
            let client = connect(&nats).await?;
            commands::events::tail(client, filter, since, limit, json).await
        }
        EventsCommand::Replay {
            nats,
            since,
            limit,
            post_to,
        } => {
            let filter = filter(&nats)?;
            let client = connect(&nats).await?;
            commands::events::replay(client, filter, since, limit, post_to, json).await
        }
    }
}

async fn alerts(command: AlertsCommand, json: bool) -> anyhow::Result<()> {
    let rows = match command {
        AlertsCommand::List {
            alerting,
            state,
            tenant,
            rule,
        } => commands::alerts::list(alerting.alerting_url, state, tenant, rule).await?,
        AlertsCommand::Ack {
            alerting,
            fingerprint,
            by,
            comment,
        } => commands::alerts::acknowledge(alerting.alerting_url, fingerprint, by, comment).await?,
        AlertsCommand::Rules { alerting } => commands::alerts::rules(alerting.alerting_url).await?,
        AlertsCommand::Silence {
            alerting,
            tenant,
            rule,
            duration,
            comment,
        } => {
            commands::alerts::silence(alerting.alerting_url, tenant, rule, duration, comment)
                .await?
        }
        AlertsCommand::Test {
            alerting,
            rule,
            tenant,
            since,
        } => {
            let (rows, explanation) =
                commands::alerts::test(alerting.alerting_url, rule, tenant, since).await?;
            eprintln!("{explanation}");
            rows
        }
    };
    rows.print(json);
    Ok(())
}
