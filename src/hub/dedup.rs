//! De-duplication on (`site`, `gw`, `seq`): at-least-once delivery means a hub may see a message
//! twice. Remembers the most recent `capacity` numbers per gateway; two sites may both have a
//! `gw-01`, so the site is part of the key.

use std::collections::{HashMap, HashSet, VecDeque};

#[derive(Debug)]
pub struct Deduplicator {
    capacity: usize,
    seen: HashMap<(String, String), (HashSet<u64>, VecDeque<u64>)>,
}

impl Deduplicator {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), seen: HashMap::new() }
    }

    /// True the first time (`site`, `gw`, `seq`) is seen.
    pub fn first_time(&mut self, site: &str, gw: &str, seq: u64) -> bool {
        let (set, order) = self.seen.entry((site.to_string(), gw.to_string())).or_default();
        if !set.insert(seq) {
            return false;
        }
        order.push_back(seq);
        if order.len() > self.capacity {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_caught_per_site_and_gateway() {
        let mut d = Deduplicator::new(10);
        assert!(d.first_time("s1", "gw-1", 5));
        assert!(!d.first_time("s1", "gw-1", 5));
        assert!(d.first_time("s1", "gw-2", 5));
        assert!(d.first_time("s2", "gw-1", 5), "another site's gw-1 is another gateway");
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = Deduplicator::new(3);
        for s in 0..10 {
            assert!(d.first_time("s", "g", s));
        }
        assert_eq!(d.seen[&("s".to_string(), "g".to_string())].0.len(), 3);
    }
}
