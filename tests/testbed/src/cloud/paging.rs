//! Pagination as the API does it: `page` and `per_page` (default 20, at most 200) select a
//! slice; `links.pages` carries full URLs to `first`/`prev` and `next`/`last` pages, and
//! `meta.total` the count. Pure functions.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// Default page size.
pub const DEFAULT_PER_PAGE: usize = 20;
/// Largest page size the API allows.
pub const MAX_PER_PAGE: usize = 200;

/// One page's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: usize,
    /// Items per page.
    pub per_page: usize,
}

/// Reads `page` and `per_page` from a query; `per_page` above the maximum is clamped.
///
/// # Errors
/// A value that is not a positive integer, naming the parameter.
pub fn parse(query: &BTreeMap<String, String>) -> Result<Page, String> {
    let read = |key: &str, default: usize| -> Result<usize, String> {
        match query.get(key) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(format!("{key} must be a positive integer, not {text:?}")),
            },
        }
    };
    Ok(Page {
        page: read("page", 1)?,
        per_page: read("per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE),
    })
}

/// The items on `page`.
pub fn slice<T: Clone>(items: &[T], page: Page) -> Vec<T> {
    items
        .iter()
        .skip((page.page - 1).saturating_mul(page.per_page))
        .take(page.per_page)
        .cloned()
        .collect()
}

/// The `links` object for `page` of `total` items at `base_url` + `path`, keeping the
/// query's other parameters.
pub fn links(
    base_url: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    page: Page,
    total: usize,
) -> Value {
    let last = total.div_ceil(page.per_page).max(1);
    let url = |number: usize| {
        let mut params = query.clone();
        params.insert("page".into(), number.to_string());
        params.insert("per_page".into(), page.per_page.to_string());
        let encoded: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!("{base_url}{path}?{}", encoded.join("&"))
    };
    let mut pages = Map::new();
    if page.page > 1 {
        pages.insert("first".into(), json!(url(1)));
        pages.insert("prev".into(), json!(url((page.page - 1).min(last))));
    }
    if page.page < last {
        pages.insert("next".into(), json!(url(page.page + 1)));
        pages.insert("last".into(), json!(url(last)));
    }
    json!({ "pages": pages })
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parse_defaults_clamps_and_refuses_garbage() {
        assert_eq!(
            parse(&query(&[])).unwrap(),
            Page {
                page: 1,
                per_page: 20
            }
        );
        assert_eq!(parse(&query(&[("per_page", "500")])).unwrap().per_page, 200);
        assert!(parse(&query(&[("page", "0")])).is_err());
        assert!(parse(&query(&[("per_page", "x")])).is_err());
    }

    #[test]
    fn middle_page_links_every_way_and_keeps_filters() {
        let q = query(&[("tag_name", "pool:web"), ("per_page", "2"), ("page", "2")]);
        let page = parse(&q).unwrap();
        let links = links("http://h", "/v2/droplets", &q, page, 5);
        let pages = &links["pages"];
        assert_eq!(
            pages["next"],
            "http://h/v2/droplets?page=3&per_page=2&tag_name=pool%3Aweb"
        );
        assert_eq!(
            pages["last"],
            "http://h/v2/droplets?page=3&per_page=2&tag_name=pool%3Aweb"
        );
        assert_eq!(
            pages["prev"],
            "http://h/v2/droplets?page=1&per_page=2&tag_name=pool%3Aweb"
        );
        assert!(pages.get("first").is_some());
    }

    #[test]
    fn single_page_has_no_links_and_slice_is_bounded() {
        let page = Page {
            page: 1,
            per_page: 20,
        };
        assert_eq!(
            links("http://h", "/v2/x", &BTreeMap::new(), page, 3),
            json!({"pages": {}})
        );
        assert_eq!(
            slice(
                &[1, 2, 3, 4, 5],
                Page {
                    page: 3,
                    per_page: 2
                }
            ),
            vec![5]
        );
        assert!(slice(
            &[1],
            Page {
                page: 9,
                per_page: 2
            }
        )
        .is_empty());
    }
}
