//! `vmctl events [--limit N] [--follow]`: the event log, oldest to newest, and then (with
//! `--follow`) new events as the controller records them, by long-polling.

use std::io::Write;
use std::time::Duration;

use vmctl_protocol::{api::EventList, event::Event};

use super::output::{self, OutputFormat};
use super::CliError;
use crate::client::ApiClient;
use crate::retry::{Attempts, Backoff};

/// How long the server may hold a long poll open. Under common proxy idle timeouts (30 s+).
const WAIT_SECS: u64 = 25;
/// Client deadline beyond `wait`: the server answers at `wait` at the latest, plus transit.
const WAIT_MARGIN: Duration = Duration::from_secs(10);
/// Between failed polls while following: quick retries after a blip, at most 30 s apart
/// during a long controller outage.
const FOLLOW_BACKOFF: Backoff =
    Backoff::new_unchecked(Duration::from_secs(1), Duration::from_secs(30), 0.2);

/// Runs `events`.
pub(crate) async fn run(
    client: &ApiClient,
    format: OutputFormat,
    limit: u32,
    follow: bool,
) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let list: EventList = client
        .get_json(&format!("/v1/events?limit={limit}"))
        .await?;
    if !follow {
        return match format {
            OutputFormat::Json => output::print_json(&mut out, &list),
            OutputFormat::Table => print_rows(&mut out, list.events.iter().rev(), true),
        };
    }

    let mut after = list.events.iter().map(|e| e.seq).max().unwrap_or(0);
    // The server sends newest first; a stream reads oldest first.
    let mut batch: Vec<Event> = list.events.into_iter().rev().collect();
    let mut header = true;
    let mut failures = Attempts::new();
    // One listener for the whole follow, so a Ctrl-C between polls is not missed.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        print_batch(&mut out, format, &batch, &mut header)?;
        let path = format!("/v1/events?after={after}&wait={WAIT_SECS}");
        let poll = client
            .get_json_within::<EventList>(&path, Duration::from_secs(WAIT_SECS) + WAIT_MARGIN);
        tokio::select! {
            reply = poll => match reply {
                Ok(next) => {
                    failures.reset();
                    after = next.events.iter().map(|e| e.seq).max().unwrap_or(after).max(after);
                    batch = next.events;
                }
                Err(e) => {
                    batch = Vec::new();
                    let delay = FOLLOW_BACKOFF.delay(failures.next(), rand::random());
                    eprintln!("error: {e} (retrying in {}s)", delay.as_secs().max(1));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = &mut ctrl_c => return Ok(()),
                    }
                }
            },
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}

fn print_batch(
    out: &mut impl Write,
    format: OutputFormat,
    batch: &[Event],
    header: &mut bool,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => {
            for e in batch {
                output::print_json_line(out, e)?;
            }
        }
        OutputFormat::Table => {
            // The header is printed once, before the first batch, even an empty one, so a
            // quiet log still shows the follow has started.
            print_rows(out, batch.iter(), *header)?;
            *header = false;
        }
    }
    out.flush()?;
    Ok(())
}

fn print_rows<'e>(
    out: &mut impl Write,
    events: impl Iterator<Item = &'e Event>,
    header: bool,
) -> Result<(), CliError> {
    if header {
        writeln!(out, "{}", header_line())?;
    }
    for e in events {
        writeln!(out, "{}", line(e))?;
    }
    Ok(())
}

/// Fixed widths rather than a table, so rows printed later while following line up with the
/// first batch.
fn columns(time: &str, type_: &str, object: &str, reason: &str, message: &str) -> String {
    format!("{time:<20}  {type_:<7}  {object:<24}  {reason:<22}  {message}")
        .trim_end()
        .to_owned()
}

fn header_line() -> String {
    columns("TIME", "TYPE", "OBJECT", "REASON", "MESSAGE")
}

/// One event as a row.
pub(crate) fn line(e: &Event) -> String {
    columns(
        &output::time(e.time),
        &format!("{:?}", e.type_),
        &format!("{}/{}", e.kind, e.name),
        &e.reason,
        &e.message,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use vmctl_protocol::event::EventType;

    #[test]
    fn rows_line_up_under_the_header() {
        let e = Event {
            seq: 7,
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            type_: EventType::Warning,
            kind: "node".into(),
            name: "web-1".into(),
            reason: "HostKeyMismatch".into(),
            message: "host key changed".into(),
        };
        let row = line(&e);
        assert_eq!(
            row,
            "2023-11-14T22:13:20Z  Warning  node/web-1                HostKeyMismatch         host key changed"
        );
        assert_eq!(header_line().find("MESSAGE"), row.find("host key"));
    }
}
