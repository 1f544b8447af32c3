//! Time as the stores keep it: milliseconds since the epoch, shown as
//! RFC 3339 in UTC with milliseconds.

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `ms` (milliseconds since the epoch) as RFC 3339 in UTC, with
/// milliseconds: `2026-12-07T20:00:00.123Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
