//! Following DigitalOcean's `links.pages.next` across pages of a list.
//!
//! Pure URL handling: a `next` link is re-based onto the configured base URL, so the token is
//! only ever sent to the host vmctld was configured with (a simulator's links may name the
//! real API, and a hostile answer could name any host), and a loop of links ends.

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::CloudError;

/// Items per page: the spec's maximum for `per_page`, to spend the fewest requests.
pub const PER_PAGE: u32 = 200;

/// A list is abandoned after this many pages (200 × 500 = 100,000 items, far beyond a fleet);
/// it guards against a server whose links never end.
pub const MAX_PAGES: usize = 500;

/// One page of a list: its items and the `next` link, if any.
#[derive(Debug)]
pub struct Page<T> {
    /// The items under the list's key (`droplets`, `snapshots`).
    pub items: Vec<T>,
    /// `links.pages.next`.
    pub next: Option<String>,
}

#[derive(Default, Deserialize)]
struct LinksWire {
    #[serde(default)]
    pages: Option<PagesWire>,
}

#[derive(Default, Deserialize)]
struct PagesWire {
    #[serde(default)]
    next: Option<String>,
}

/// Parses a page whose items live under `key`. A missing key is an empty page.
///
/// # Errors
/// [`CloudError::Decode`] when the body or an item does not have the expected shape.
pub fn parse_page<T: DeserializeOwned>(
    body: &[u8],
    key: &str,
    what: &str,
) -> Result<Page<T>, CloudError> {
    let decode = |source| CloudError::Decode {
        what: what.to_owned(),
        source,
    };
    let mut root: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(decode)?;
    let items = match root.remove(key) {
        Some(v) if !v.is_null() => serde_json::from_value(v).map_err(decode)?,
        _ => Vec::new(),
    };
    let links: LinksWire = match root.remove("links") {
        Some(v) if !v.is_null() => serde_json::from_value(v).map_err(decode)?,
        _ => LinksWire::default(),
    };
    let next = links.pages.and_then(|p| p.next).filter(|n| !n.is_empty());
    Ok(Page { items, next })
}

/// The URL to fetch for a `next` link: its path and query on the configured base.
///
/// # Errors
/// [`CloudError::Url`] if the link cannot be parsed or leaves the `/v2/` API.
pub fn next_url(base: &Url, next: &str) -> Result<Url, CloudError> {
    let bad = |reason: &str| CloudError::Url {
        url: next.to_owned(),
        reason: reason.to_owned(),
    };
    let link = base.join(next).map_err(|e| bad(&e.to_string()))?;
    if !link.path().starts_with("/v2/") {
        return Err(bad("a pagination link must stay under /v2/"));
    }
    let mut url = base.clone();
    url.set_path(link.path());
    url.set_query(link.query());
    Ok(url)
}

/// Tracks the pages fetched for one list, refusing a repeated link or too many pages.
#[derive(Debug, Default)]
pub struct PageCursor {
    seen: Vec<Url>,
}

impl PageCursor {
    /// Records `url` as fetched.
    ///
    /// # Errors
    /// [`CloudError::Url`] if it was fetched before (a loop) or the list is too long.
    pub fn visit(&mut self, url: &Url) -> Result<(), CloudError> {
        let bad = |reason: String| CloudError::Url {
            url: url.to_string(),
            reason,
        };
        if self.seen.contains(url) {
            return Err(bad(
                "pagination links loop back to a page already read".into()
            ));
        }
        if self.seen.len() >= MAX_PAGES {
            return Err(bad(format!("more than {MAX_PAGES} pages")));
        }
        self.seen.push(url.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:8080/").unwrap()
    }

    #[test]
    fn next_links_are_rebased_onto_the_configured_host() {
        let u = next_url(
            &base(),
            "https://api.digitalocean.com/v2/droplets?page=2&per_page=200&tag_name=web",
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8080/v2/droplets?page=2&per_page=200&tag_name=web"
        );
        let u = next_url(&base(), "/v2/snapshots?page=3").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/v2/snapshots?page=3");
        assert!(next_url(&base(), "https://evil.example/steal").is_err());
    }

    #[test]
    fn pages_are_parsed_with_or_without_links() {
        let p: Page<u64> = parse_page(br#"{"ids":[1,2],"links":{"pages":{"next":"/v2/x?page=2","last":"/v2/x?page=3"}},"meta":{"total":5}}"#, "ids", "list").unwrap();
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next.as_deref(), Some("/v2/x?page=2"));
        let p: Page<u64> = parse_page(
            br#"{"ids":[3],"links":{},"meta":{"total":5}}"#,
            "ids",
            "list",
        )
        .unwrap();
        assert_eq!(p.next, None);
        let p: Page<u64> = parse_page(
            br#"{"links":{"pages":{"prev":"/v2/x?page=1"}}}"#,
            "ids",
            "list",
        )
        .unwrap();
        assert!(p.items.is_empty() && p.next.is_none());
        assert!(parse_page::<u64>(br#"{"ids":["a"]}"#, "ids", "list").is_err());
    }

    #[test]
    fn a_cursor_stops_a_loop_of_links() {
        let mut c = PageCursor::default();
        let a = next_url(&base(), "/v2/x?page=1").unwrap();
        let b = next_url(&base(), "/v2/x?page=2").unwrap();
        c.visit(&a).unwrap();
        c.visit(&b).unwrap();
        assert!(c.visit(&a).is_err());
    }
}
