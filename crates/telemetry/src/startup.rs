//! What every service binary does before it serves: read its few arguments and bind its port,
//! with errors that say what to change.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("unknown argument {argument:?}\n\n{usage}")]
    UnknownArgument { argument: String, usage: String },
    #[error("cannot listen on {variable}={addr}: {source}; is another process using it?")]
    Bind {
        variable: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The flags a binary was given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flags(Vec<(&'static str, Option<String>)>);

impl Flags {
    /// Whether `name` was given, with a value or without.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(given, _)| *given == name)
    }

    /// What followed `name=`, when `name` was given so.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(given, _)| *given == name)
            .and_then(|(_, value)| value.as_deref())
    }
}

/// The command line's flags, each one of `known`; a known name that ends in `=` may be given
/// bare or with a value (`--rebuild` or `--rebuild=1765000000`), and is then named without the
/// `=`. `None` when `-h` or `--help` asked for `usage`, which is then printed: the binary has
/// nothing more to do.
pub fn flags(usage: &str, known: &[&'static str]) -> Result<Option<Flags>, StartupError> {
    parse(std::env::args().skip(1), usage, known)
}

fn parse(
    arguments: impl Iterator<Item = String>,
    usage: &str,
    known: &[&'static str],
) -> Result<Option<Flags>, StartupError> {
    let mut flags = Vec::new();
    for argument in arguments {
        if argument == "-h" || argument == "--help" {
            println!("{usage}");
            return Ok(None);
        }
        let (name, value) = match argument.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (argument.as_str(), None),
        };
        let flag = known.iter().find_map(|flag| {
            let (flag, takes_value) = match flag.strip_suffix('=') {
                Some(flag) => (flag, true),
                None => (*flag, false),
            };
            (flag == name && (takes_value || value.is_none())).then_some(flag)
        });
        match flag {
            Some(flag) => flags.push((flag, value.map(str::to_owned))),
            None => {
                return Err(StartupError::UnknownArgument {
                    argument,
                    usage: usage.to_owned(),
                });
            }
        }
    }
    Ok(Some(Flags(flags)))
}

/// Binds `addr`, which came from the environment variable `variable`.
pub async fn bind(addr: SocketAddr, variable: &'static str) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind {
            variable,
            addr,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|a| (*a).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn known_flags_pass_help_stops_anything_else_is_refused() {
        let known = ["--rebuild=", "--forward"];
        assert_eq!(
            parse(args(&[]), "usage", &known).unwrap(),
            Some(Flags::default())
        );
        let given = parse(args(&["--rebuild"]), "usage", &known)
            .unwrap()
            .unwrap();
        assert!(given.has("--rebuild") && !given.has("--forward"));
        assert_eq!(given.value("--rebuild"), None);
        let given = parse(args(&["--forward", "--rebuild=17"]), "usage", &known)
            .unwrap()
            .unwrap();
        assert!(given.has("--forward"));
        assert_eq!(given.value("--rebuild"), Some("17"));
        assert_eq!(parse(args(&["--help"]), "usage", &known).unwrap(), None);
        let error = parse(args(&["--rebiuld"]), "usage: x", &known).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown argument \"--rebiuld\"\n\nusage: x"
        );
        let error = parse(args(&["--forward=yes"]), "usage: x", &known).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("unknown argument \"--forward=yes\"")
        );
    }

    #[tokio::test]
    async fn a_taken_port_names_its_variable() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error = bind(addr, "SOME_ADDR").await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot listen on SOME_ADDR={addr}: ")),
            "{error}"
        );
    }
}
