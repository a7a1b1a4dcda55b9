//! The one exponential backoff: a base delay doubled per attempt, capped. Used by the HTTP
//! retries (with full jitter on top) and by the daemon's retries of failed cycles.
//!
//! Pure arithmetic (the jitter aside): no sleeping and no clock here; callers decide when.

use std::time::Duration;

use rand::Rng;

/// `base` doubled `doublings` times, at most `cap` (no overflow, whatever `doublings` is).
pub fn exponential(base: Duration, cap: Duration, doublings: u32) -> Duration {
    base.saturating_mul(1u32 << doublings.min(20)).min(cap)
}

/// Full jitter (AWS's name): a uniformly random delay between zero and `ceiling`, so that
/// clients retrying the same failure do not retry in step.
pub fn full_jitter(ceiling: Duration) -> Duration {
    let ms = ceiling.as_millis() as u64;
    Duration::from_millis(rand::thread_rng().gen_range(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_is_capped() {
        let (base, cap) = (Duration::from_secs(5), Duration::from_secs(300));
        let secs: Vec<u64> = [0, 1, 3, 5, 6, 20, u32::MAX]
            .into_iter()
            .map(|n| exponential(base, cap, n).as_secs())
            .collect();
        assert_eq!(secs, [5, 10, 40, 160, 300, 300, 300]);
        for _ in 0..100 {
            assert!(full_jitter(Duration::from_millis(50)) <= Duration::from_millis(50));
        }
    }
}
