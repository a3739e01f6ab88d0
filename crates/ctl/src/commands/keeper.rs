//! `c2dctl keeper status`: what c2d-keeper recorded per tenant in its bucket `C2D_KEEPER`,
//! read straight from NATS, so it answers even while the keeper restarts.

use c2d_keeper::{State, TenantStatus};
use serde_json::json;

use c2dctl::output::Rows;

/// One row per tenant (`tenant` alone when given); with `gaps`, one row per gap instead.
pub async fn status(nats_url: &str, tenant: Option<&str>, gaps: bool) -> anyhow::Result<Rows> {
    let client = c2d_subscriber::connect("c2dctl", nats_url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let state = State::existing(&jetstream).await?;
    let statuses: Vec<TenantStatus> = state
        .all()
        .await?
        .into_iter()
        .filter(|s| tenant.is_none_or(|t| s.tenant == t))
        .collect();
    Ok(if gaps {
        gap_rows(&statuses)
    } else {
        rows(&statuses)
    })
}

/// The tenants' summaries.
pub fn rows(statuses: &[TenantStatus]) -> Rows {
    let mut rows = Rows::new(&[
        "tenant",
        "webhook",
        "last_check",
        "repairs",
        "unannounced",
        "gaps_found",
        "backfilled",
        "clients",
        "already_stored",
        "pending",
        "last_error",
    ]);
    for s in statuses {
        let last_check = s.last_check.map(|ms| prost_types::Timestamp {
            seconds: ms.div_euclid(1_000),
            nanos: 0,
        });
        rows.push(vec![
            json!(s.tenant),
            json!(s.webhook),
            c2dctl::output::time(last_check.as_ref()),
            json!(s.repairs),
            json!(c2d_keeper::repairs::owed(&s.unannounced)),
            json!(s.gaps_found),
            json!(s.backfilled),
            json!(s.backfilled_clients),
            json!(s.already_stored),
            json!(s.pending()),
            json!(s.last_error),
        ]);
    }
    rows
}

/// Every gap of the tenants, oldest first.
pub fn gap_rows(statuses: &[TenantStatus]) -> Rows {
    let at =
        |seconds: i64| c2dctl::output::time(Some(&prost_types::Timestamp { seconds, nanos: 0 }));
    let mut rows = Rows::new(&[
        "tenant", "from", "to", "reason", "listed", "stored", "skipped", "complete",
    ]);
    for s in statuses {
        for g in &s.gaps {
            rows.push(vec![
                json!(s.tenant),
                at(g.from),
                at(g.to),
                json!(g.reason),
                json!(g.listed),
                json!(g.stored),
                json!(g.skipped),
                json!(g.complete),
            ]);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2d_keeper::gaps::Gap;

    #[test]
    fn a_status_reads_as_one_row_and_its_gaps_as_more() {
        let mut gap = Gap::new(1_765_051_200, 1_765_051_260, "webhook disabled", None);
        gap.stored = 7;
        let status = TenantStatus {
            tenant: "acme".into(),
            webhook: "ok".into(),
            last_check: Some(1_765_051_300_500),
            backfilled: 7,
            gaps_found: 1,
            gaps: vec![gap],
            ..TenantStatus::default()
        };
        let table = rows(std::slice::from_ref(&status)).to_table();
        assert!(table.contains("2025-12-06T20:01:40Z"), "{table}");
        let json = rows(std::slice::from_ref(&status)).to_json();
        assert_eq!(json[0]["pending"], 1);
        assert_eq!(json[0]["backfilled"], 7);
        assert_eq!(json[0]["unannounced"], 0);
        let gaps = gap_rows(&[status]).to_json();
        assert_eq!(gaps[0]["from"], "2025-12-06T20:00:00Z");
        assert_eq!(gaps[0]["stored"], 7);
    }
}
