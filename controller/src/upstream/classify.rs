//! Which releases are security releases: a `Security` heading or GHSA/CVE advisory ids in the
//! release notes ([`is_security`]), or the update-check API calling the version urgent
//! ([`mark_security`]). Pure text handling; nothing here fetches anything.

use std::collections::BTreeSet;

use vmctl_protocol::release::UpstreamRelease;

use super::version::parse_tag;

/// True when release notes announce security fixes: a markdown heading whose first word is
/// "Security" (any level, any case, e.g. `### Security`), or a GitHub advisory id
/// (`GHSA-xxxx-xxxx-xxxx`) or a CVE id (`CVE-YYYY-NNNN`) anywhere in the text.
///
/// ```
/// use vmctl_controller::upstream::is_security;
/// assert!(is_security("## Changelog\n\n### Security\n\n- Fix auth bypass"));
/// assert!(is_security("Fixes GHSA-7w57-2h9p-qq2m."));
/// assert!(!is_security("### Fixed\n\n- Security settings page layout"));
/// ```
#[must_use]
pub fn is_security(body: &str) -> bool {
    body.lines().any(is_security_heading) || has_advisory_id(body)
}

/// Sets `security` on each release whose notes say so or whose version `urgent` lists (from
/// Mastodon's update-check API). A flag already set is kept.
pub fn mark_security(releases: &mut [UpstreamRelease], urgent: &BTreeSet<semver::Version>) {
    for release in releases {
        let urgent_here = parse_tag(&release.tag).is_some_and(|v| urgent.contains(&v));
        release.security = release.security || urgent_here || is_security(&release.body);
    }
}

fn is_security_heading(line: &str) -> bool {
    let line = line.trim();
    let text = line.trim_start_matches('#');
    let level = line.len() - text.len();
    if level == 0 || level > 6 || !text.starts_with(char::is_whitespace) {
        return false;
    }
    let first_word = text
        .trim()
        .trim_end_matches('#')
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty());
    first_word.is_some_and(|w| w.eq_ignore_ascii_case("security"))
}

fn has_advisory_id(body: &str) -> bool {
    let upper = body.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let ghsa = upper.match_indices("GHSA-").any(|(i, _)| {
        // Three groups of four alphanumerics separated by dashes.
        let rest = &bytes[i + 5..];
        rest.len() >= 14
            && [0usize, 5, 10]
                .iter()
                .all(|&g| rest[g..g + 4].iter().all(u8::is_ascii_alphanumeric))
            && rest[4] == b'-'
            && rest[9] == b'-'
    });
    let cve = upper.match_indices("CVE-").any(|(i, _)| {
        // A four-digit year, a dash, then at least four digits.
        let rest = &bytes[i + 4..];
        rest.len() >= 9
            && rest[..4].iter().all(u8::is_ascii_digit)
            && rest[4] == b'-'
            && rest[5..9].iter().all(u8::is_ascii_digit)
    });
    ghsa || cve
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn security_headings_and_advisory_ids_mark_a_release() {
        let cases = [
            ("### Security\n\n- Fix XSS", true),
            ("### security", true),
            ("## Security fixes", true),
            ("#### SECURITY ####", true),
            ("See CVE-2024-23832 for details", true),
            ("cve-2024-1234", true),
            ("Advisory: GHSA-3fjr-858r-92rw", true),
            ("ghsa-3fjr-858r-92rw", true),
            ("", false),
            ("### Fixed\n\n- Security settings page layout", false),
            ("Security: nothing to see", false),
            ("#Security", false),
            ("CVE-2024", false),
            ("CVE-24-1234", false),
            ("GHSA-3fjr-858r", false),
            ("GHSA-3fjr_858r_92rw", false),
        ];
        for (body, want) in cases {
            assert_eq!(is_security(body), want, "{body:?}");
        }
    }

    #[test]
    fn urgent_versions_from_update_check_mark_a_release() {
        let release = |tag: &str, body: &str| UpstreamRelease {
            tag: tag.into(),
            name: tag.into(),
            body: body.into(),
            draft: false,
            prerelease: false,
            published_at: DateTime::from_timestamp(0, 0).unwrap(),
            security: false,
        };
        let mut releases = vec![
            release("v4.3.1", ""),
            release("v4.3.2", "### Security"),
            release("v4.3.3", ""),
            release("not-a-version", ""),
        ];
        let urgent = BTreeSet::from([semver::Version::new(4, 3, 1)]);
        mark_security(&mut releases, &urgent);
        let flags: Vec<bool> = releases.iter().map(|r| r.security).collect();
        assert_eq!(flags, vec![true, true, false, false]);
    }
}
