//! A gateway served in-process over real HTTP, in front of a test's own nats-server, so that
//! events reach the stream exactly as they do in production. Consumers' tests use it to feed
//! the stream; the gateway's own tests run the binary instead ([`crate::GatewayProcess`]).

use std::time::Duration;

use c2d_gateway::{Config, Gateway};

use crate::gateway::{ACME_TOKEN, TENANTS};
use crate::{NatsServer, http};

/// nats-server and an in-process gateway, both on free ports.
pub struct Pipeline {
    pub nats: NatsServer,
    pub base_url: String,
}

impl Pipeline {
    pub async fn start() -> Pipeline {
        Self::start_on(NatsServer::start().await.expect("nats-server starts")).await
    }

    /// As [`Pipeline::start`], on a server with production's users: the gateway connects as
    /// `gateway`, [`Pipeline::client`] as `admin`.
    pub async fn start_with_users() -> Pipeline {
        Self::start_on(
            NatsServer::start_with_users()
                .await
                .expect("nats-server starts"),
        )
        .await
    }

    /// As [`Pipeline::start`], with the gateway also filing events by tenant partition
    /// (`GATEWAY_PARTITIONS`), for `tenants` tenants named `tenant-{n}`.
    pub async fn start_partitioned(partitions: u32, tenants: usize) -> Pipeline {
        let nats = NatsServer::start().await.expect("nats-server starts");
        Self::start_partitioned_on(nats, partitions, tenants).await
    }

    /// As [`Pipeline::start_partitioned`], on a server with production's users.
    pub async fn start_partitioned_with_users(partitions: u32, tenants: usize) -> Pipeline {
        let nats = NatsServer::start_with_users()
            .await
            .expect("nats-server starts");
        Self::start_partitioned_on(nats, partitions, tenants).await
    }

    async fn start_partitioned_on(nats: NatsServer, partitions: u32, tenants: usize) -> Pipeline {
        let tokens: Vec<String> = (0..tenants)
            .map(|n| format!("tenant-{n}=tenant-{n}-secret-1"))
            .collect();
        let gateway_env = [
            ("GATEWAY_TOKENS", tokens.join(",")),
            ("GATEWAY_PARTITIONS", partitions.to_string()),
        ];
        Self::start_with(nats, &gateway_env).await
    }

    async fn start_on(nats: NatsServer) -> Pipeline {
        Self::start_with(nats, &[]).await
    }

    /// The gateway with the test settings, and `gateway_env` over them.
    async fn start_with(nats: NatsServer, gateway_env: &[(&str, String)]) -> Pipeline {
        let overridden = |name: &str| {
            let set = gateway_env.iter().find(|(set, _)| *set == name);
            set.map(|(_, value)| value.clone())
        };
        let config = Config::from_lookup(|name| match name {
            name if overridden(name).is_some() => overridden(name),
            "GATEWAY_TOKENS" => Some(TENANTS.to_owned()),
            "GATEWAY_SPOOL_DIR" | "GATEWAY_HINTS_URL" => Some("off".to_owned()),
            "GATEWAY_TENANT_RATE" | "GATEWAY_TENANT_BURST" => Some("1000000".to_owned()),
            "GATEWAY_TENANT_CONCURRENCY" => Some("100000".to_owned()),
            name => nats.variable_for("gateway", name),
        })
        .expect("test configuration is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let base_url = format!("http://{}", listener.local_addr().expect("bound"));
        let gateway = Gateway::start(config).await.expect("gateway starts");
        tokio::spawn(gateway.serve(listener, std::future::pending()));
        for _ in 0..400 {
            if http::get(&format!("{base_url}/readyz"))
                .await
                .is_ok_and(|a| a.status == 200)
            {
                return Pipeline { nats, base_url };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the in-process gateway did not become ready");
    }

    /// POSTs a webhook body for `tenant` (one of [`TENANTS`]) and expects it stored.
    pub async fn post_as(&self, tenant: &str, body: impl Into<bytes::Bytes>) -> serde_json::Value {
        // Every test tenant's secret is spelled like ACME_TOKEN.
        let token = ACME_TOKEN.replacen("acme", tenant, 1);
        let url = format!("{}/hooks/chat2desk/{tenant}?token={token}", self.base_url);
        let answer = http::post_json(&url, body).await.expect("gateway answers");
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    }

    /// POSTs a webhook body for tenant `acme`.
    pub async fn post(&self, body: impl Into<bytes::Bytes>) -> serde_json::Value {
        self.post_as("acme", body).await
    }

    pub async fn client(&self) -> async_nats::Client {
        self.nats.client().await
    }
}

/// A distinct client message number `n`, as Chat2Desk would deliver it.
pub fn inbox(n: u64) -> String {
    serde_json::json!({
        "message_id": 300_000_000 + n, "type": "from_client", "text": format!("olá {n}"),
        "transport": "telegram", "client_id": 500 + n % 7, "channel_id": 17, "request_id": 7_000 + n / 5,
        "hook_type": "inbox", "event_time": "2024-03-10T12:00:00Z"
    })
    .to_string()
}
