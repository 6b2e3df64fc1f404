//! Simulated work whose results can be checked.

use std::time::Duration;

/// Waits like an I/O call (a download, a query) that takes `latency`.
pub fn io(latency: Duration) {
    std::thread::sleep(latency);
}

/// Counts the primes below `limit`: CPU-bound work with a known answer.
pub fn count_primes(limit: u64) -> u64 {
    (2..limit).filter(|&n| is_prime(n)).count() as u64
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_primes() {
        assert_eq!(count_primes(10), 4);
        assert_eq!(count_primes(100), 25);
        assert_eq!(count_primes(2), 0);
    }
}
