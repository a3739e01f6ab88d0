//! `${NAME}` in configuration files: connectors' tokens and receivers' URLs are read from the
//! environment (a Kubernetes Secret, say) rather than written into the file.

/// Replaces every `${NAME}` in `value` by `lookup(NAME)`; the first name that has no value is
/// the error. A `${` without its `}` is kept as written.
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| name.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A comma-separated setting as its items, trimmed, empty ones dropped: `NATS_URL` names
/// several servers of a cluster this way (`nats://a:4222,nats://b:4222`), and the NATS client
/// takes the list.
pub fn list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// A duration as people write it in configuration and on the command line: `500ms`, `30s`,
/// `10m`, `2h`, `7d`.
pub fn duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write 500ms, 30s, 10m, 2h or 7d"))?;
    let unit = match unit {
        "ms" => std::time::Duration::from_millis(1),
        "s" => std::time::Duration::from_secs(1),
        "m" => std::time::Duration::from_secs(60),
        "h" => std::time::Duration::from_secs(3600),
        "d" => std::time::Duration::from_secs(86_400),
        _ => {
            return Err(format!(
                "{text:?} is not a duration: write 500ms, 30s, 10m, 2h or 7d"
            ));
        }
    };
    if number == 0 {
        return Err(format!("{text:?}: a duration must be more than zero"));
    }
    u32::try_from(number)
        .ok()
        .and_then(|number| unit.checked_mul(number))
        .ok_or_else(|| format!("{text:?} is too long a duration: write it in a larger unit"))
}

/// A duration as people write it.
pub fn human(duration: std::time::Duration) -> String {
    let ms = duration.as_millis();
    match ms {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// A variable whose value cannot be used, with what it should look like.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is not valid: {expected}")]
pub struct InvalidVariable {
    pub name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// The environment as a service's configuration reads it: through a lookup (tests pass their
/// own), with unset and blank meaning the same, the default.
pub struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Env { lookup }
    }

    /// The trimmed value, None when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// The raw lookup, for `${NAME}` in files.
    pub fn lookup(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The value parsed, or `default` when unset; `expected` tells a user what to write.
    pub fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, InvalidVariable> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| InvalidVariable {
                name,
                value,
                expected,
            }),
        }
    }

    /// An address to listen on, `default` when unset, `None` when set to `off` (an endpoint
    /// the operator does not want).
    pub fn address_or_off(
        &self,
        name: &'static str,
        default: std::net::SocketAddr,
        expected: &'static str,
    ) -> Result<Option<std::net::SocketAddr>, InvalidVariable> {
        match self.get(name).as_deref() {
            Some("off") => Ok(None),
            _ => self.parse(name, default, expected).map(Some),
        }
    }

    /// A number above zero, or `default` when unset.
    pub fn positive(
        &self,
        name: &'static str,
        default: u64,
        expected: &'static str,
    ) -> Result<u64, InvalidVariable> {
        let value = self.parse(name, default, expected)?;
        if value == 0 {
            return Err(InvalidVariable {
                name,
                value: "0".into(),
                expected,
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(
            list("nats://a:4222, nats://b:4222,"),
            ["nats://a:4222", "nats://b:4222"]
        );
        assert!(list(" ").is_empty());
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(duration("0s").is_err());
        // 2^32 + 1 seconds was read as 1 s.
        assert!(duration("4294967297s").unwrap_err().contains("too long"));
        assert!(duration("10 minutes").is_err());
        assert_eq!(human(Duration::from_secs(600)), "10m");
    }

    #[test]
    fn names_are_replaced_and_unset_ones_named() {
        let lookup = |name: &str| (name == "TOKEN").then(|| "s3cret".to_owned());
        assert_eq!(
            expand("Bearer ${TOKEN}!", &lookup),
            Ok("Bearer s3cret!".into())
        );
        assert_eq!(expand("no ${ end", &lookup), Ok("no ${ end".into()));
        assert_eq!(
            expand("${TOKEN}-${MISSING}", &lookup),
            Err("MISSING".into())
        );
    }
}
