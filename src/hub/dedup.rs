//! De-duplication on (`gw`, `seq`): at-least-once delivery means a hub may see a message twice.
//! Remembers the most recent `capacity` numbers per gateway.

use std::collections::{HashMap, HashSet, VecDeque};

#[derive(Debug)]
pub struct Deduplicator {
    capacity: usize,
    seen: HashMap<String, (HashSet<u64>, VecDeque<u64>)>,
}

impl Deduplicator {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), seen: HashMap::new() }
    }

    /// True the first time (`gw`, `seq`) is seen.
    pub fn first_time(&mut self, gw: &str, seq: u64) -> bool {
        let (set, order) = self.seen.entry(gw.to_string()).or_default();
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
    fn a_repeat_is_caught_per_gateway() {
        let mut d = Deduplicator::new(10);
        assert!(d.first_time("gw-1", 5));
        assert!(!d.first_time("gw-1", 5));
        assert!(d.first_time("gw-2", 5));
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = Deduplicator::new(3);
        for s in 0..10 {
            assert!(d.first_time("g", s));
        }
        assert_eq!(d.seen["g"].0.len(), 3);
    }
}
