//! Who an alert is about: the client's name and tags from CrmService, so a notification says
//! "Ana Souza (VIP)" rather than "client 501", and a rule can route VIP clients elsewhere.
//!
//! Enrichment helps but must never hold an alert back: when crm-sync is not configured, down
//! or slow (over [`TIMEOUT`]), the alert goes out with the client id alone. Alerts are
//! evaluated one at a time, so after CrmService failed to answer it is skipped for
//! [`BACKOFF`]: a crm-sync that is down costs one wait, not one per alert.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use c2d_proto::crm::CrmServiceClient;
use c2d_proto::crm::v1::{GetClientRequest, get_client_request::By};
use tonic::transport::{Channel, Endpoint};

use crate::alert::ClientInfo;

/// How long an alert waits for CrmService.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// How long CrmService is not asked after it failed to answer.
pub const BACKOFF: Duration = Duration::from_secs(30);

/// CrmService, if configured.
#[derive(Clone, Default)]
pub struct Directory {
    client: Option<CrmServiceClient<Channel>>,
    /// Until when CrmService is skipped, after it failed to answer.
    skip_until: Arc<Mutex<Option<Instant>>>,
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
            skip_until: Arc::default(),
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
        if self.skipping() {
            return Some(bare);
        }
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
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => {
                tracing::debug!(%tenant, client_id, "CrmService has no such client; the alert goes out with the id");
                Some(bare)
            }
            Ok(Err(status)) => {
                self.skip(&format!("answered {status}"));
                Some(bare)
            }
            Err(_) => {
                self.skip(&format!("did not answer within {TIMEOUT:?}"));
                Some(bare)
            }
        }
    }

    /// Whether CrmService is being skipped after a failure.
    fn skipping(&self) -> bool {
        let skip_until = self
            .skip_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        skip_until.is_some_and(|until| Instant::now() < until)
    }

    fn skip(&self, why: &str) {
        tracing::warn!(
            "CrmService {why}; alerts go out with client ids alone for the next {BACKOFF:?} (is crm-sync running at ALERTING_CRM_URL?)"
        );
        *self
            .skip_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_crm_service_that_does_not_answer_is_skipped_for_a_while() {
        // A port nobody listens on: the call fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let directory = Directory::connect(&format!("http://127.0.0.1:{port}")).unwrap();
        assert!(!directory.skipping());
        let client = directory.client("acme", 501).await.unwrap();
        assert_eq!((client.client_id, client.name), (501, None), "a bare id");
        assert!(directory.skipping(), "the next alerts do not ask");
        assert!(directory.clone().skipping(), "clones share the backoff");
        assert!(!Directory::none().skipping());
    }
}
