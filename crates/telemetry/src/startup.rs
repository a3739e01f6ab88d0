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

/// The command line's flags, each one of `known`. `None` when `-h` or `--help` asked for
/// `usage`, which is then printed: the binary has nothing more to do.
pub fn flags(
    usage: &str,
    known: &[&'static str],
) -> Result<Option<Vec<&'static str>>, StartupError> {
    parse(std::env::args().skip(1), usage, known)
}

fn parse(
    arguments: impl Iterator<Item = String>,
    usage: &str,
    known: &[&'static str],
) -> Result<Option<Vec<&'static str>>, StartupError> {
    let mut flags = Vec::new();
    for argument in arguments {
        if argument == "-h" || argument == "--help" {
            println!("{usage}");
            return Ok(None);
        }
        match known.iter().find(|flag| **flag == argument) {
            Some(flag) => flags.push(*flag),
            None => {
                return Err(StartupError::UnknownArgument {
                    argument,
                    usage: usage.to_owned(),
                });
            }
        }
    }
    Ok(Some(flags))
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
        let known = ["--rebuild"];
        assert_eq!(parse(args(&[]), "usage", &known).unwrap(), Some(vec![]));
        assert_eq!(
            parse(args(&["--rebuild"]), "usage", &known).unwrap(),
            Some(vec!["--rebuild"])
        );
        assert_eq!(parse(args(&["--help"]), "usage", &known).unwrap(), None);
        let error = parse(args(&["--rebiuld"]), "usage: x", &known).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown argument \"--rebiuld\"\n\nusage: x"
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
