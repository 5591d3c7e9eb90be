//! The node's only wall clock. Everything that needs "now" outside apply asks here, so the
//! simulator (which intercepts the system clock) and the determinism lint see one place.

/// Milliseconds since the Unix epoch.
#[allow(clippy::disallowed_methods)]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch.
#[allow(clippy::disallowed_methods)]
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
