//! Output shared by every command: the `-o` format, borderless tables, JSON printing and the
//! human forms of times and conditions. Pure helpers; commands decide what to print.

use std::io::Write;

use chrono::SecondsFormat;
use comfy_table::{presets, Table};
use serde::Serialize;
use vmctl_protocol::{node::COND_HOST_KEY_MISMATCH, Condition, ConditionStatus, Timestamp};

use super::CliError;

/// `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// Condition types whose `True` is the problem (the rest are healthy when `True`).
const NEGATIVE_CONDITIONS: [&str; 1] = [COND_HOST_KEY_MISMATCH];

/// A borderless table in the style of `kubectl get`: two spaces between columns.
pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.to_vec());
    t
}

/// Renders a table without the padding comfy-table puts at line edges.
pub(crate) fn render(table: &mut Table) -> String {
    for col in table.column_iter_mut() {
        col.set_padding((0, 2));
    }
    let text = table.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n")
}

/// Writes `value` as indented JSON and a newline.
pub(crate) fn print_json<T: Serialize>(out: &mut impl Write, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(CliError::Encode)?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// Writes `value` as one line of JSON (for streams: `--follow`, `--watch`).
pub(crate) fn print_json_line<T: Serialize>(
    out: &mut impl Write,
    value: &T,
) -> Result<(), CliError> {
    let text = serde_json::to_string(value).map_err(CliError::Encode)?;
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// "3s ago", "5m ago", "2h ago", "3d ago"; "never" for no time. A time in the future (clock
/// skew between vmctl and vmctld) reads as "0s ago" rather than a negative age.
pub(crate) fn ago(now: Timestamp, then: Option<Timestamp>) -> String {
    let Some(then) = then else {
        return "never".to_owned();
    };
    let secs = (now - then).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 2 * 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

/// An object's age as `kubectl get` prints it: "45s", "5m", "2h", "3d".
pub(crate) fn age(now: Timestamp, since: Timestamp) -> String {
    ago(now, Some(since)).trim_end_matches(" ago").to_owned()
}

/// Comma-joined items, or `-` for none.
pub(crate) fn list_or_dash<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        return "-".to_owned();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Load balancer membership: `in`, `out`, or `-` when the pool has no balancer.
pub(crate) fn lb_membership(in_load_balancer: Option<bool>) -> &'static str {
    match in_load_balancer {
        Some(true) => "in",
        Some(false) => "out",
        None => "-",
    }
}

/// An absolute time, second precision, UTC.
pub(crate) fn time(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `-` for nothing, so columns never look shifted.
pub(crate) fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The conditions worth a person's attention, e.g. `HostKeyMismatch,
/// Reachable=False(ConnectRefused)`, or `-` when all is well.
pub(crate) fn problem_conditions(conditions: &[Condition]) -> String {
    let problems: Vec<String> = conditions
        .iter()
        .filter_map(|c| {
            let negative = NEGATIVE_CONDITIONS.contains(&c.type_.as_str());
            match (negative, c.status) {
                (true, ConditionStatus::True) => Some(c.type_.clone()),
                (true, _) | (false, ConditionStatus::True) => None,
                (false, status) => Some(format!("{}={status:?}({})", c.type_, c.reason)),
            }
        })
        .collect();
    if problems.is_empty() {
        "-".to_owned()
    } else {
        problems.join(", ")
    }
}

/// `host:port`, bracketing IPv6 literals.
pub(crate) fn host_port(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration};

    fn at(secs: i64) -> Timestamp {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn cond(type_: &str, status: ConditionStatus, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: String::new(),
            last_transition: at(0),
        }
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = at(0);
        let cases = [
            (Some(now), "0s ago"),
            (Some(now - Duration::seconds(3)), "3s ago"),
            (Some(now - Duration::seconds(125)), "2m ago"),
            (Some(now - Duration::hours(5)), "5h ago"),
            (Some(now - Duration::days(3)), "3d ago"),
            (Some(now + Duration::seconds(4)), "0s ago"),
            (None, "never"),
        ];
        for (then, want) in cases {
            assert_eq!(ago(now, then), want);
        }
    }

    #[test]
    fn ages_lists_and_balancer_membership_are_short() {
        assert_eq!(age(at(125), at(0)), "2m");
        assert_eq!(list_or_dash::<u64>(&[]), "-");
        assert_eq!(list_or_dash(&[11_u64, 12]), "11,12");
        assert_eq!(
            [Some(true), Some(false), None].map(lb_membership),
            ["in", "out", "-"]
        );
    }

    #[test]
    fn only_unhealthy_conditions_are_listed() {
        use ConditionStatus::{False, True, Unknown};
        let cases = [
            (
                vec![
                    cond("Reachable", True, "Ok"),
                    cond("HostKeyMismatch", False, "Ok"),
                ],
                "-",
            ),
            (
                vec![cond("HostKeyMismatch", True, "Changed")],
                "HostKeyMismatch",
            ),
            (
                vec![
                    cond("Reachable", False, "ConnectRefused"),
                    cond("AgentReady", Unknown, "NeverProbed"),
                ],
                "Reachable=False(ConnectRefused), AgentReady=Unknown(NeverProbed)",
            ),
            (vec![], "-"),
        ];
        for (conds, want) in cases {
            assert_eq!(problem_conditions(&conds), want);
        }
    }

    #[test]
    fn tables_have_no_borders_or_edge_padding() {
        let mut t = table(&["NAME", "POOL"]);
        t.add_row(vec!["web-1", "web"]);
        assert_eq!(render(&mut t), "NAME   POOL\nweb-1  web");
    }

    #[test]
    fn addresses_bracket_ipv6() {
        assert_eq!(host_port("10.0.0.5", 22), "10.0.0.5:22");
        assert_eq!(host_port("::1", 2222), "[::1]:2222");
        assert_eq!(time(at(0)), "2023-11-14T22:13:20Z");
    }
}
