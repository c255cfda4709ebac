//! Backoff arithmetic and durations written for people.

use std::time::Duration;

/// `12m 30s`-style text for logs and status.
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => format!("{} ms", duration.as_millis()),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `base * 2^(n-1)`, at most `max`.
pub fn doubled(base: Duration, n: u32, max: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(n.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max.max(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let s = Duration::from_secs;
        assert_eq!(doubled(s(60), 1, s(3600)), s(60));
        assert_eq!(doubled(s(60), 2, s(3600)), s(120));
        assert_eq!(doubled(s(60), 4, s(3600)), s(480));
        assert_eq!(doubled(s(60), 40, s(3600)), s(3600));
        assert_eq!(doubled(s(600), 1, s(60)), s(600), "never below the base");
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_secs(42)), "42s");
        assert_eq!(human_duration(Duration::from_secs(750)), "12m 30s");
        assert_eq!(human_duration(Duration::from_secs(83_400)), "23h 10m");
    }
}
