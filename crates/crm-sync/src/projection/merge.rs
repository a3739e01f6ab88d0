//! How an upsert merges what one event says into the row that earlier events left: one
//! [`Rule`] per column, each written here once as SQL, so that a statement reads as the list
//! of its rules instead of a page of `CASE` expressions.
//!
//! Events reach the projection in any order and any number of times (Chat2Desk retries,
//! redeliveries, a replay). Most rules are therefore commutative: two events applied in either
//! order leave the same row. Where one is not, its doc says when: [`Rule::UntilCard`] keeps the
//! first message's value, and on a tie of their clocks [`Rule::OfEarliestOrigin`] keeps the
//! stored value and [`Rule::Newest`] without a sequence takes the later arrival's.
//!
//! The SQL is the subset PostgreSQL and SQLite share: in `ON CONFLICT ... DO UPDATE`, `excluded`
//! is the row the event proposed and the table's name is the stored row, as it was before the
//! update in every expression of the `SET` list.

/// How one column takes what an event says.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// The smallest value known: first contact, opening, the origin itself.
    Earliest,
    /// The largest value known: last contact, last message.
    Latest,
    /// The value of the event with the earliest `origin_at`: what the request or dialog was
    /// when it began. A value one side lacks is taken from the other; on equal origins the
    /// stored value stays.
    OfEarliestOrigin,
    /// Filled from a message only while no client card has been seen (`profile_at` is empty)
    /// and the field `given_by` is still empty: a message's embedded card fills gaps, it never
    /// overwrites. Not commutative: the first message with a value keeps it.
    UntilCard { given_by: &'static str },
    /// The value of the newest event that carries one, by the time column `at`, ties broken by
    /// the stream sequence column `seq`; without `seq` a tie goes to the event applied last.
    Newest {
        at: &'static str,
        seq: Option<&'static str>,
    },
}

impl Rule {
    /// `column = <expression>` for an upsert into `table`.
    fn assignment(self, table: &str, column: &str) -> String {
        let (t, c) = (table, column);
        let keep_or_take = |take_when: String| {
            format!("{c} = CASE WHEN {take_when} THEN excluded.{c} ELSE {t}.{c} END")
        };
        match self {
            Rule::Earliest => keep_or_take(format!(
                "excluded.{c} IS NOT NULL AND ({t}.{c} IS NULL OR excluded.{c} < {t}.{c})"
            )),
            Rule::Latest => keep_or_take(format!(
                "excluded.{c} IS NOT NULL AND ({t}.{c} IS NULL OR excluded.{c} > {t}.{c})"
            )),
            Rule::OfEarliestOrigin => format!(
                "{c} = CASE WHEN {t}.origin_at IS NULL OR excluded.origin_at < {t}.origin_at \
                 THEN COALESCE(excluded.{c}, {t}.{c}) ELSE COALESCE({t}.{c}, excluded.{c}) END"
            ),
            Rule::UntilCard { given_by } => {
                keep_or_take(format!("{t}.profile_at IS NULL AND {t}.{given_by} IS NULL"))
            }
            Rule::Newest { at, seq: Some(seq) } => keep_or_take(format!(
                "excluded.{at} IS NOT NULL AND ({t}.{at} IS NULL OR excluded.{at} > {t}.{at} \
                 OR (excluded.{at} = {t}.{at} AND excluded.{seq} > {t}.{seq}))"
            )),
            Rule::Newest { at, seq: None } => keep_or_take(format!(
                "excluded.{at} IS NOT NULL AND ({t}.{at} IS NULL OR excluded.{at} >= {t}.{at})"
            )),
        }
    }
}

/// The `SET` list of an upsert into `table`: each column by its rule.
pub fn set(table: &str, columns: &[(&str, Rule)]) -> String {
    columns
        .iter()
        .map(|(column, rule)| rule.assignment(table, column))
        .collect::<Vec<_>>()
        .join(",\n    ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{AnyPool, Row as _};

    /// A table with one column per rule, in an in-memory SQLite through the `Any` driver the
    /// projection uses.
    async fn table() -> AnyPool {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE t (k BIGINT PRIMARY KEY, first BIGINT, last BIGINT, origin_at BIGINT,
             kind BIGINT, owner BIGINT, owner_at BIGINT, owner_seq BIGINT)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool
    }

    /// A row an event proposes: (first, last, origin_at, kind, owner, owner_at, owner_seq).
    type Proposal = [Option<i64>; 7];

    async fn apply(pool: &AnyPool, row: Proposal) {
        let set = set(
            "t",
            &[
                ("first", Rule::Earliest),
                ("last", Rule::Latest),
                ("kind", Rule::OfEarliestOrigin),
                ("origin_at", Rule::Earliest),
                (
                    "owner",
                    Rule::Newest {
                        at: "owner_at",
                        seq: Some("owner_seq"),
                    },
                ),
                (
                    "owner_seq",
                    Rule::Newest {
                        at: "owner_at",
                        seq: Some("owner_seq"),
                    },
                ),
                (
                    "owner_at",
                    Rule::Newest {
                        at: "owner_at",
                        seq: Some("owner_seq"),
                    },
                ),
            ],
        );
        let sql = format!(
            "INSERT INTO t (k, first, last, origin_at, kind, owner, owner_at, owner_seq)
             VALUES (1, $1, $2, $3, $4, $5, $6, $7) ON CONFLICT (k) DO UPDATE SET {set}"
        );
        row.iter()
            .fold(sqlx::query(&sql), |query, value| query.bind(*value))
            .execute(pool)
            .await
            .unwrap();
    }

    async fn stored(pool: &AnyPool) -> Vec<Option<i64>> {
        let row = sqlx::query(
            "SELECT first, last, origin_at, kind, owner, owner_at, owner_seq FROM t WHERE k = 1",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (0..7).map(|i| row.try_get(i).unwrap()).collect()
    }

    #[tokio::test]
    async fn commutative_rules_give_the_same_row_in_either_order() {
        // Events as the projection proposes them: an origin always (the event's time at the
        // latest), the rest present or not; owner_at is set exactly when owner is.
        let mut proposals: Vec<Proposal> = Vec::new();
        for origin in [10, 20] {
            for (kind, time) in [(None, None), (Some(7), Some(15)), (Some(8), Some(20))] {
                for (owner, seq) in [(None, 1), (Some(100), 1), (Some(200), 2)] {
                    let owner_at = owner.map(|_| 5);
                    proposals.push([
                        time,
                        time,
                        Some(origin),
                        kind,
                        owner,
                        owner_at,
                        owner_at.map(|_| seq),
                    ]);
                }
            }
        }
        for a in &proposals {
            // Equal origins are the documented tie of OfEarliestOrigin.
            for b in proposals.iter().filter(|b| b[2] != a[2] || b[3] == a[3]) {
                let (one, other) = (table().await, table().await);
                apply(&one, *a).await;
                apply(&one, *b).await;
                apply(&other, *b).await;
                apply(&other, *a).await;
                assert_eq!(stored(&one).await, stored(&other).await, "{a:?} then {b:?}");
            }
        }
        // And the values are the ones the rules promise.
        let pool = table().await;
        apply(
            &pool,
            [
                Some(15),
                Some(15),
                Some(20),
                None,
                Some(100),
                Some(5),
                Some(1),
            ],
        )
        .await;
        apply(
            &pool,
            [
                Some(20),
                Some(20),
                Some(10),
                Some(8),
                Some(200),
                Some(5),
                Some(2),
            ],
        )
        .await;
        apply(&pool, [None, None, Some(30), Some(9), None, None, None]).await;
        assert_eq!(
            stored(&pool).await,
            [
                Some(15),
                Some(20),
                Some(10),
                Some(8),
                Some(200),
                Some(5),
                Some(2)
            ]
        );
    }

    #[tokio::test]
    async fn until_card_fills_only_an_empty_field_of_a_client_without_a_card() {
        let pool = table().await;
        sqlx::query("CREATE TABLE c (k BIGINT PRIMARY KEY, name TEXT, profile_at BIGINT)")
            .execute(&pool)
            .await
            .unwrap();
        async fn message(pool: &AnyPool, name: &str) {
            let sql = format!(
                "INSERT INTO c (k, name) VALUES (1, $1) ON CONFLICT (k) DO UPDATE SET {}",
                set("c", &[("name", Rule::UntilCard { given_by: "name" })])
            );
            sqlx::query(&sql).bind(name).execute(pool).await.unwrap();
        }
        async fn name(pool: &AnyPool) -> Option<String> {
            sqlx::query_scalar("SELECT name FROM c WHERE k = 1")
                .fetch_one(pool)
                .await
                .unwrap()
        }
        message(&pool, "Ana").await;
        message(&pool, "Ana Souza").await;
        assert_eq!(
            name(&pool).await.as_deref(),
            Some("Ana"),
            "the first message keeps it"
        );
        sqlx::query("UPDATE c SET name = NULL, profile_at = 1")
            .execute(&pool)
            .await
            .unwrap();
        message(&pool, "Ana").await;
        assert_eq!(name(&pool).await, None, "a card's empty field stays empty");
    }
}
