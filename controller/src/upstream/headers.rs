//! Pure readers for the response headers the upstream clients obey: GitHub's `Link` pagination
//! and its `x-ratelimit-remaining` / `x-ratelimit-reset` / `retry-after` rate-limit headers.
//! Times are Unix seconds passed in by the caller.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Url;

use super::error::UpstreamError;

/// The `rel="next"` target of a `Link` header, e.g.
/// `<https://api.github.com/repositories/1/releases?page=2>; rel="next", <…>; rel="last"`.
#[must_use]
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            p.trim()
                .strip_prefix("rel=")
                .is_some_and(|rel| rel.trim_matches('"').split(' ').any(|r| r == "next"))
        });
        is_next.then(|| target.to_owned())
    })
}

/// The URL to fetch for a `next` link: the link itself when it is on the configured origin,
/// else its path and query on that origin, so a token is only ever sent where it was meant to
/// go (a hostile or misconfigured answer could name any host).
///
/// # Errors
/// [`UpstreamError::Url`] when the link cannot be parsed.
pub fn rebase(base: &Url, link: &str) -> Result<Url, UpstreamError> {
    let url = base.join(link).map_err(|e| UpstreamError::Url {
        url: link.to_owned(),
        reason: e.to_string(),
    })?;
    if url.origin() == base.origin() {
        return Ok(url);
    }
    let mut rebased = base.clone();
    rebased.set_path(url.path());
    rebased.set_query(url.query());
    Ok(rebased)
}

/// GitHub's view of the rate limit after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests left in the window.
    pub remaining: u64,
    /// When the window resets, Unix seconds.
    pub reset: u64,
}

impl RateLimit {
    /// Reads `x-ratelimit-remaining` and `x-ratelimit-reset`; `None` unless both are present
    /// and numeric.
    #[must_use]
    pub fn parse(headers: &HeaderMap) -> Option<Self> {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Some(Self {
            remaining: num("x-ratelimit-remaining")?,
            reset: num("x-ratelimit-reset")?,
        })
    }

    /// How long to wait before the next request: until the reset when nothing is left, else
    /// zero. A second is added because GitHub's reset is rounded down to the second.
    #[must_use]
    pub fn wait(&self, now_unix: u64) -> Duration {
        if self.remaining > 0 || self.reset < now_unix {
            return Duration::ZERO;
        }
        Duration::from_secs(self.reset - now_unix + 1)
    }
}

/// How long a refused request (403 or 429) asks us to wait: its `retry-after` in seconds, or
/// the rate-limit reset when the limit is used up. `None` when the refusal is not about rate
/// limits (a plain 403).
#[must_use]
pub fn rate_limited_wait(headers: &HeaderMap, now_unix: u64) -> Option<Duration> {
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    retry_after.or_else(|| {
        RateLimit::parse(headers)
            .filter(|l| l.remaining == 0)
            .map(|l| l.wait(now_unix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_next_link_is_found_among_others() {
        let link = r#"<https://api.github.com/repositories/1/releases?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/releases?per_page=100&page=3>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/releases?per_page=100&page=2")
        );
        let last_page =
            r#"<https://x/releases?page=1>; rel="prev", <https://x/releases?page=1>; rel="first""#;
        assert_eq!(next_link(last_page), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn links_to_another_host_are_rebased_onto_the_configured_one() {
        let base = Url::parse("http://127.0.0.1:9000/").unwrap();
        let same = rebase(&base, "http://127.0.0.1:9000/r?page=2").unwrap();
        assert_eq!(same.as_str(), "http://127.0.0.1:9000/r?page=2");
        let other = rebase(&base, "https://evil.example/steal?page=2").unwrap();
        assert_eq!(other.as_str(), "http://127.0.0.1:9000/steal?page=2");
        let relative = rebase(&base, "/repos/a/b/releases?page=3").unwrap();
        assert_eq!(
            relative.as_str(),
            "http://127.0.0.1:9000/repos/a/b/releases?page=3"
        );
    }

    #[test]
    fn rate_limit_headers_say_how_long_to_wait() {
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "110")]);
        let limit = RateLimit::parse(&h).unwrap();
        assert_eq!(limit.wait(100), Duration::from_secs(11));
        assert_eq!(limit.wait(200), Duration::ZERO);
        let some_left = RateLimit {
            remaining: 3,
            reset: 110,
        };
        assert_eq!(some_left.wait(100), Duration::ZERO);
        assert_eq!(
            RateLimit::parse(&headers(&[("x-ratelimit-remaining", "x")])),
            None
        );
        assert_eq!(rate_limited_wait(&h, 100), Some(Duration::from_secs(11)));
        let secondary = headers(&[("retry-after", "60"), ("x-ratelimit-remaining", "10")]);
        assert_eq!(
            rate_limited_wait(&secondary, 100),
            Some(Duration::from_secs(60))
        );
        let plain = headers(&[
            ("x-ratelimit-remaining", "10"),
            ("x-ratelimit-reset", "110"),
        ]);
        assert_eq!(rate_limited_wait(&plain, 100), None);
    }
}
