//! Every command answers with rows: an aligned table for people by default, or with `--json`
//! an array of objects (one per row, keyed by column) for scripts. Commands build the rows once
//! and never print on their own, so the two forms always say the same.

use serde_json::{Map, Value as Json};

/// A table: column names and rows of values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Json>>,
}

impl Rows {
    pub fn new(columns: &[&'static str]) -> Rows {
        Rows {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; values in the order of the columns.
    pub fn push(&mut self, row: Vec<Json>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The rows as JSON objects.
    pub fn to_json(&self) -> Json {
        Json::Array(
            self.rows
                .iter()
                .map(|row| {
                    let object: Map<String, Json> = self
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(column, value)| ((*column).to_owned(), value.clone()))
                        .collect();
                    Json::Object(object)
                })
                .collect(),
        )
    }

    /// The rows as an aligned text table, a header first.
    pub fn to_table(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(cell).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &cells {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |values: Vec<&str>| {
            let mut text = String::new();
            for (i, (value, width)) in values.iter().zip(&widths).enumerate() {
                if i + 1 == values.len() {
                    text.push_str(value);
                } else {
                    text.push_str(&format!("{value:<width$}  "));
                }
            }
            text.trim_end().to_owned()
        };
        let mut out = line(
            self.columns
                .iter()
                .map(|c| c.to_uppercase())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        );
        out.push('\n');
        for row in &cells {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
            out.push('\n');
        }
        out
    }

    /// Prints the rows in the chosen form.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
        } else {
            print!("{}", self.to_table());
        }
    }
}

/// A value as a table cell: strings bare, null as "-", lists comma-separated.
fn cell(value: &Json) -> String {
    match value {
        Json::Null => "-".into(),
        Json::String(text) => text.clone(),
        Json::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Json::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.2}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A protobuf time as RFC 3339 (UTC, seconds), or null.
pub fn time(at: Option<&prost_types::Timestamp>) -> Json {
    at.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Json::Null, Json::String)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_and_json_keys_by_column() {
        let mut rows = Rows::new(&["id", "name", "events"]);
        rows.push(vec![
            json!(1),
            json!("c2d-gateway"),
            json!(["inbox", "outbox"]),
        ]);
        rows.push(vec![json!(12), Json::Null, json!([])]);
        assert_eq!(
            rows.to_table(),
            "ID  NAME         EVENTS\n1   c2d-gateway  inbox,outbox\n12  -\n"
        );
        assert_eq!(
            rows.to_json(),
            json!([{"id": 1, "name": "c2d-gateway", "events": ["inbox", "outbox"]},
                   {"id": 12, "name": null, "events": []}])
        );
    }
}
