//! Pure parsers for the text files `facts` reads: `/proc/meminfo`, `/proc/loadavg`,
//! `/proc/uptime` and `os-release`. No I/O here, so each is tested on strings.

use vmctl_protocol::agent::Capacity;

/// `MemTotal` and `MemAvailable` from `/proc/meminfo`, in bytes (the file says kB, which the
/// kernel means as KiB).
pub fn parse_meminfo(text: &str) -> Option<Capacity> {
    let mut total = None;
    let mut available = None;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            _ => continue,
        };
        *slot = Some(parse_kib(rest)?);
    }
    Some(Capacity {
        total_bytes: total?,
        available_bytes: available?,
    })
}

/// `"  16318412 kB"` as bytes.
fn parse_kib(value: &str) -> Option<u64> {
    let mut words = value.split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => n.checked_mul(1024),
        Some(_) => None,
    }
}

/// The 1, 5 and 15-minute load averages from `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<f64>().ok().filter(|v| v.is_finite()));
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// Whole seconds since boot from `/proc/uptime` (`"12345.67 54321.00"`).
pub fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    // `as` saturates; the checks keep NaN and negatives out.
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

/// `PRETTY_NAME` from an os-release file, unquoted. `None` when the key is absent or empty.
///
/// The format is shell-like `KEY=value` lines, values optionally in single or double quotes with
/// backslash escapes inside double quotes (os-release(5)).
pub fn parse_os_release_pretty_name(text: &str) -> Option<String> {
    let value = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("PRETTY_NAME="))?;
    let v = unquote(value.trim());
    (!v.is_empty()).then_some(v)
}

fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return inner.to_string();
    }
    let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16318412 kB\nMemFree:         1234567 kB\n\
                           MemAvailable:    8000000 kB\nBuffers:          100000 kB\n";

    #[test]
    fn meminfo_reports_total_and_available_in_bytes() {
        assert_eq!(
            parse_meminfo(MEMINFO),
            Some(Capacity {
                total_bytes: 16_318_412 * 1024,
                available_bytes: 8_000_000 * 1024
            })
        );
    }

    #[test]
    fn meminfo_without_mem_available_or_with_junk_is_refused() {
        assert_eq!(parse_meminfo("MemTotal: 10 kB\n"), None);
        assert_eq!(
            parse_meminfo("MemTotal: ten kB\nMemAvailable: 1 kB\n"),
            None
        );
        assert_eq!(parse_meminfo("MemTotal: 10 MB\nMemAvailable: 1 kB\n"), None);
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn loadavg_reads_the_three_averages() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/977 12345\n"),
            Some([0.52, 0.58, 0.59])
        );
        assert_eq!(parse_loadavg("0.52 0.58\n"), None);
        assert_eq!(parse_loadavg("a b c"), None);
        assert_eq!(parse_loadavg("NaN 1 1"), None);
    }

    #[test]
    fn uptime_reads_whole_seconds() {
        assert_eq!(parse_uptime("12345.67 54321.00\n"), Some(12345));
        assert_eq!(parse_uptime("-1 0"), None);
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn os_release_pretty_name_is_unquoted() {
        let text = "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nID=ubuntu\n";
        assert_eq!(
            parse_os_release_pretty_name(text).as_deref(),
            Some("Ubuntu 24.04.1 LTS")
        );
        assert_eq!(
            parse_os_release_pretty_name("PRETTY_NAME='Debian 12'").as_deref(),
            Some("Debian 12")
        );
        assert_eq!(
            parse_os_release_pretty_name("PRETTY_NAME=Arch").as_deref(),
            Some("Arch")
        );
        assert_eq!(
            parse_os_release_pretty_name(r#"PRETTY_NAME="say \"hi\"""#).as_deref(),
            Some(r#"say "hi""#)
        );
    }

    #[test]
    fn os_release_without_pretty_name_is_none() {
        assert_eq!(parse_os_release_pretty_name("NAME=x\nID=y\n"), None);
        assert_eq!(parse_os_release_pretty_name("PRETTY_NAME=\"\"\n"), None);
        assert_eq!(parse_os_release_pretty_name("# PRETTY_NAME=x\n"), None);
    }
}
