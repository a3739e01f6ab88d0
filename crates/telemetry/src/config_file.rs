//! TOML configuration files (alerting's rules, crm-sync's connectors), read the one way: a
//! file that cannot be read or parsed is an error that names the file, and for a parse error
//! the line and column, so that whoever deploys it knows where to look without guessing
//! which of several mounted files was meant.
//!
//! `${NAME}` is not expanded here, over the whole text, but by each service in the string
//! fields that may hold a secret ([`crate::env::expand`]): a secret with a quote or a newline
//! in it cannot then break the file's syntax, and an unset variable is reported with the
//! field that needs it.

use serde::de::DeserializeOwned;

/// A configuration file that cannot be used as it is, with which file and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file is missing or unreadable: usually the path setting or the volume mount.
    #[error("cannot read the {what} file {path}: {source}")]
    Read {
        /// Which of a service's files ("rules", "connectors"), in the words of its docs.
        what: &'static str,
        /// As configured, so that it can be compared with the setting and the mount.
        path: String,
        source: std::io::Error,
    },
    /// The file is not TOML, or not of the expected shape (a typo in a key, a wrong type).
    #[error("the {what} file {path} is not valid{}: {message}", at(*.line, *.column))]
    Parse {
        /// Which of a service's files, as in `Read`.
        what: &'static str,
        /// As configured.
        path: String,
        /// 1-based; 0 when the parser could not tell where (then `column` is 0 too).
        line: usize,
        /// 1-based, in characters.
        column: usize,
        /// The parser's reason, without its excerpt of the file (the place says where).
        message: String,
    },
}

/// " at line L, column C", or nothing when the place is unknown.
fn at(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" at line {line}, column {column}")
    }
}

/// Reads the `what` file (`"rules"`, `"connectors"`: it names the file in errors) at `path`
/// as a `T`.
pub fn read<T: DeserializeOwned>(what: &'static str, path: &str) -> Result<T, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    parse(what, path, &text)
}

/// Parses `text` as a `T`; `path` only names the file in errors, so that tests and callers
/// holding the text already get the same messages as [`read`].
pub fn parse<T: DeserializeOwned>(
    what: &'static str,
    path: &str,
    text: &str,
) -> Result<T, ConfigFileError> {
    toml::from_str(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map_or((0, 0), |span| line_and_column(text, span.start));
        ConfigFileError::Parse {
            what,
            path: path.to_owned(),
            line,
            column,
            message: error.message().trim_end().to_owned(),
        }
    })
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        thing: Vec<Thing>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Thing {
        name: String,
        count: Option<u32>,
    }

    #[test]
    fn a_valid_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("things.toml");
        std::fs::write(&path, "[[thing]]\nname = \"a\"\ncount = 2\n").unwrap();
        let file: File = read("things", path.to_str().unwrap()).unwrap();
        assert_eq!(
            file.thing,
            [Thing {
                name: "a".into(),
                count: Some(2)
            }]
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = read::<File>("things", "/nonexistent/things.toml").unwrap_err();
        assert!(matches!(error, ConfigFileError::Read { .. }), "{error:?}");
        let shown = error.to_string();
        assert!(
            shown.starts_with("cannot read the things file /nonexistent/things.toml: "),
            "{shown}"
        );
    }

    #[test]
    fn a_typo_is_shown_with_its_file_line_and_column() {
        let text = "[[thing]]\nname = \"a\"\n\n[[thing]]\nname = \"b\"\n  cuont = 3\n";
        let error = parse::<File>("things", "t.toml", text).unwrap_err();
        let ConfigFileError::Parse { line, column, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!((*line, *column), (6, 3));
        let shown = error.to_string();
        assert!(
            shown.starts_with("the things file t.toml is not valid at line 6, column 3: ")
                && shown.contains("cuont"),
            "{shown}"
        );
    }

    #[test]
    fn a_wrong_type_and_broken_syntax_are_placed_too() {
        let wrong = parse::<File>("things", "t.toml", "[[thing]]\nname = 5\n").unwrap_err();
        assert!(wrong.to_string().contains("at line 2, column 8"), "{wrong}");
        let broken = parse::<File>("things", "t.toml", "[[thing]\nname = \"a\"\n").unwrap_err();
        assert!(broken.to_string().contains("at line 1, column"), "{broken}");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(line_and_column("ação = 1\nx", 9), (1, 8));
        assert_eq!(line_and_column("a\nbc", 3), (2, 2));
        assert_eq!(line_and_column("ab", 99), (1, 3));
        // Inside a character: counted from its start.
        assert_eq!(line_and_column("ção", 1), (1, 1));
    }
}
