//! Bodies built from configuration: a JSON template whose strings `"$.path"` are replaced by
//! the value at that path in the client change (`"$"` is the whole change), and whose other
//! values are sent as written.
//!
//! ```toml
//! [connector.body]
//! source = "chat2desk"              # a literal
//! contact = { id = "$.client_id", name = "$.name", phone = "$.client_phone" }
//! messenger = "$.channels[0].transport"
//! ```

use serde_json::Value as Json;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
}

/// A path into the change, parsed once when the configuration is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Path(Vec<Step>);

/// A malformed `$.path`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path:?} is not a path into the change: write $ (the whole change), $.field, $.field.inner or $.list[0]"
)]
pub struct PathError {
    path: String,
}

impl Path {
    /// Parses `$`, `$.a`, `$.a.b`, `$.a[0].b`.
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let error = || PathError { path: text.into() };
        let rest = text.strip_prefix('$').ok_or_else(error)?;
        let mut steps = Vec::new();
        let mut rest = rest;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let field = &after[..end];
                if field.is_empty() {
                    return Err(error());
                }
                steps.push(Step::Field(field.to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(error)?;
                let index = after[..end].trim().parse().map_err(|_| error())?;
                steps.push(Step::Index(index));
                rest = &after[end + 1..];
            } else {
                return Err(error());
            }
        }
        Ok(Path(steps))
    }

    /// The value at this path, `null` where there is none.
    pub fn get<'a>(&self, change: &'a Json) -> &'a Json {
        let mut value = change;
        for step in &self.0 {
            value = match step {
                Step::Field(name) => value.get(name),
                Step::Index(index) => value.get(index),
            }
            .unwrap_or(&Json::Null);
        }
        value
    }
}

/// A template: literals and paths in the shape of the body to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Path(Path),
    Literal(Json),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
}

impl Template {
    /// Reads a template from configuration, checking every path in it.
    pub fn parse(value: &Json) -> Result<Template, PathError> {
        Ok(match value {
            Json::String(text)
                if text == "$" || text.starts_with("$.") || text.starts_with("$[") =>
            {
                Template::Path(Path::parse(text)?)
            }
            Json::Object(map) => Template::Object(
                map.iter()
                    .map(|(key, value)| Ok((key.clone(), Template::parse(value)?)))
                    .collect::<Result<_, PathError>>()?,
            ),
            Json::Array(items) => Template::Array(
                items
                    .iter()
                    .map(Template::parse)
                    .collect::<Result<_, _>>()?,
            ),
            other => Template::Literal(other.clone()),
        })
    }

    /// The body for one change.
    pub fn render(&self, change: &Json) -> Json {
        match self {
            Template::Path(path) => path.get(change).clone(),
            Template::Literal(value) => value.clone(),
            Template::Object(fields) => Json::Object(
                fields
                    .iter()
                    .map(|(key, template)| (key.clone(), template.render(change)))
                    .collect(),
            ),
            Template::Array(items) => {
                Json::Array(items.iter().map(|item| item.render(change)).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_pick_values_and_literals_stay() {
        let change = json!({"client_id": 7, "name": "Ana", "channels": [{"transport": "whatsapp"}], "tags": ["vip"]});
        let template = Template::parse(&json!({
            "id": "$.client_id", "who": {"name": "$.name", "missing": "$.nope.deeper"},
            "messenger": "$.channels[0].transport", "tags": "$.tags", "source": "chat2desk",
            "all": "$", "list": ["$.name", 1]
        }))
        .unwrap();
        assert_eq!(
            template.render(&change),
            json!({"id": 7, "who": {"name": "Ana", "missing": null}, "messenger": "whatsapp",
                   "tags": ["vip"], "source": "chat2desk", "all": change, "list": ["Ana", 1]})
        );
    }

    #[test]
    fn bad_paths_are_refused_with_the_syntax() {
        for bad in ["$.", "$.a..b", "$.a[x]", "$.a[0"] {
            let error = Template::parse(&json!({ "f": bad }))
                .unwrap_err()
                .to_string();
            assert!(error.contains("$.field"), "{bad}: {error}");
        }
    }
}
