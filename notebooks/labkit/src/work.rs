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

/// Hashes `data` `rounds` times over (FNV-1a, each round fed the last):
/// CPU-bound work whose cost grows with `rounds`.
pub fn hash_rounds(data: &[u8], rounds: u32) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for _ in 0..rounds.max(1) {
        for &byte in data.iter().chain(hash.to_le_bytes().iter()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// A simulated download: waits `latency`, then returns a page for `url`
/// whose length and contents depend only on the url. Under a seed (the
/// checker's perturbed runs), the wait varies from half to one and a half
/// times `latency`, as a network's does, so downloads finish out of order.
pub fn fetch(url: &str, latency: Duration) -> String {
    io(crate::perturb::io_latency(latency));
    let words = 20 + (hash_rounds(url.as_bytes(), 1) % 80) as usize;
    let mut page = format!("<h1>{url}</h1>");
    for i in 0..words {
        page.push_str(if (hash_rounds(url.as_bytes(), i as u32 + 2) & 1) == 0 {
            " lorem"
        } else {
            " ipsum"
        });
    }
    page
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

    #[test]
    fn hashing_is_deterministic_and_depends_on_rounds() {
        assert_eq!(hash_rounds(b"abc", 3), hash_rounds(b"abc", 3));
        assert_ne!(hash_rounds(b"abc", 3), hash_rounds(b"abc", 4));
    }

    #[test]
    fn a_page_depends_only_on_its_url() {
        let zero = Duration::ZERO;
        assert_eq!(fetch("a", zero), fetch("a", zero));
        assert_ne!(fetch("a", zero), fetch("b", zero));
    }
}
