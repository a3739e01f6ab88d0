//! Who an alert is about: the client's name and tags from CrmService, so a notification says
//! "Ana Souza (VIP)" rather than "client 501", and a rule can route VIP clients elsewhere.
//!
//! Enrichment helps but must never hold an alert back: when crm-sync is not configured, down
//! or slow (over [`TIMEOUT`]), the alert goes out with the client id alone.

use std::time::Duration;

use c2d_proto::crm::CrmServiceClient;
use c2d_proto::crm::v1::{GetClientRequest, get_client_request::By};
use tonic::transport::{Channel, Endpoint};

use crate::alert::ClientInfo;

/// How long an alert waits for CrmService.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// CrmService, if configured.
#[derive(Clone, Default)]
pub struct Directory {
    client: Option<CrmServiceClient<Channel>>,
}

impl Directory {
    /// A directory at `url` (e.g. `http://127.0.0.1:50051`), connected on first use.
    pub fn connect(url: &str) -> Result<Directory, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .connect_lazy();
        Ok(Directory {
            client: Some(CrmServiceClient::new(channel)),
        })
    }

    /// No enrichment.
    pub fn none() -> Directory {
        Directory::default()
    }

    /// The client, as CrmService knows them; a bare id when it does not answer.
    pub async fn client(&self, tenant: &str, client_id: i64) -> Option<ClientInfo> {
        let bare = ClientInfo {
            client_id,
            name: None,
            tags: Vec::new(),
        };
        let Some(mut client) = self.client.clone() else {
            return Some(bare);
        };
        let request = GetClientRequest {
            tenant: tenant.to_owned(),
            by: Some(By::ClientId(client_id)),
        };
        match tokio::time::timeout(TIMEOUT, client.get_client(request)).await {
            Ok(Ok(answer)) => {
                let record = answer.into_inner();
                Some(ClientInfo {
                    client_id,
                    name: record.name,
                    tags: record.tags,
                })
            }
            Ok(Err(status)) => {
                tracing::debug!(%tenant, client_id, %status, "CrmService has no such client; the alert goes out with the id");
                Some(bare)
            }
            Err(_) => {
                tracing::warn!(%tenant, client_id, "CrmService did not answer in time; the alert goes out with the id");
                Some(bare)
            }
        }
    }
}
