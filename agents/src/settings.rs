//! The agent's tunables, validated once. `main` reads the environment and hands the raw values
//! to [`Settings::from_env_values`]; nothing below `main` reads the environment.

use std::ffi::OsString;
use std::time::Duration;

/// Default deadline for one release step. A cold `bundle install` plus an assets precompile on a
/// small droplet takes 10–20 minutes; 30 leaves room without letting a hung step block a rollout
/// for hours.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Where probes connect by default: the services listen on the droplet itself.
pub const DEFAULT_PROBE_HOST: &str = "127.0.0.1";

/// Settings every op reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Deadline for each release step (fetch, bundle install, migrate, ...).
    pub step_timeout: Duration,
    /// Host the web and streaming probes connect to.
    pub probe_host: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            step_timeout: DEFAULT_STEP_TIMEOUT,
            probe_host: DEFAULT_PROBE_HOST.into(),
        }
    }
}

/// A setting with a value the agent cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `VMCTL_STEP_TIMEOUT_S` is not a positive whole number of seconds.
    #[error("VMCTL_STEP_TIMEOUT_S={0:?}: want a positive whole number of seconds")]
    StepTimeout(String),
    /// `VMCTL_PROBE_HOST` is not a plain host name or address.
    #[error("VMCTL_PROBE_HOST={0:?}: want a host name or IP address")]
    ProbeHost(String),
}

impl Settings {
    /// Settings from the raw `VMCTL_STEP_TIMEOUT_S` and `VMCTL_PROBE_HOST` values; unset or empty
    /// means the default. Pure: the caller reads the environment.
    ///
    /// # Errors
    /// Every unusable value, all at once (joined), so one restart fixes them all.
    pub fn from_env_values(
        step_timeout_s: Option<OsString>,
        probe_host: Option<OsString>,
    ) -> Result<Settings, Vec<SettingsError>> {
        let mut errors = Vec::new();
        let mut s = Settings::default();
        if let Some(raw) = step_timeout_s.filter(|v| !v.is_empty()) {
            let text = raw.to_string_lossy().into_owned();
            match text.trim().parse::<u64>() {
                Ok(n) if n > 0 => s.step_timeout = Duration::from_secs(n),
                _ => errors.push(SettingsError::StepTimeout(text)),
            }
        }
        if let Some(raw) = probe_host.filter(|v| !v.is_empty()) {
            let text = raw.to_string_lossy().into_owned();
            if is_plain_host(&text) {
                s.probe_host = text;
            } else {
                errors.push(SettingsError::ProbeHost(text));
            }
        }
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(errors)
        }
    }
}

/// A host name or IPv4/IPv6 address with nothing that could change the request it goes into.
fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: Option<&str>, h: Option<&str>) -> Result<Settings, Vec<SettingsError>> {
        Settings::from_env_values(t.map(OsString::from), h.map(OsString::from))
    }

    #[test]
    fn unset_and_empty_mean_defaults() {
        assert_eq!(s(None, None), Ok(Settings::default()));
        assert_eq!(s(Some(""), Some("")), Ok(Settings::default()));
    }

    #[test]
    fn values_override_defaults() {
        let got = s(Some("90"), Some("127.0.3.4")).unwrap();
        assert_eq!(got.step_timeout, Duration::from_secs(90));
        assert_eq!(got.probe_host, "127.0.3.4");
    }

    #[test]
    fn every_bad_value_is_reported() {
        let errs = s(Some("0"), Some("a b\r\n")).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(s(Some("-5"), None).is_err());
        assert!(s(Some("1.5"), None).is_err());
    }
}
