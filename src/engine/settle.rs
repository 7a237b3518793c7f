//! Debouncing: hold a key until nothing has happened to it for a while. Pure: time is passed in,
//! so tests use made-up instants and only the daemon reads the clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// Keys waiting for their quiet period to end, each with a value to hand back.
#[derive(Debug)]
pub struct Debouncer<K, V> {
    pending: HashMap<K, (Instant, V)>,
}

impl<K: Hash + Eq + Clone, V> Default for Debouncer<K, V> {
    fn default() -> Self {
        Debouncer {
            pending: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V> Debouncer<K, V> {
    /// (Re)starts `key`'s quiet period: it becomes ready at `deadline`, carrying `value`.
    pub fn push(&mut self, key: K, deadline: Instant, value: V) {
        self.pending.insert(key, (deadline, value));
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.pending.remove(key).map(|(_, v)| v)
    }

    /// The earliest deadline, to sleep until.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|(d, _)| *d).min()
    }

    /// Removes and returns every entry whose deadline is at or before `now`.
    pub fn drain_ready(&mut self, now: Instant) -> Vec<(K, V)> {
        let ready: Vec<K> = self
            .pending
            .iter()
            .filter(|(_, (d, _))| *d <= now)
            .map(|(k, _)| k.clone())
            .collect();
        ready
            .into_iter()
            .filter_map(|k| self.pending.remove(&k).map(|(_, v)| (k, v)))
            .collect()
    }

    /// How many keys are waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no key is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_key_pushed_again_waits_again() {
        let t0 = Instant::now();
        let s = Duration::from_secs(2);
        let mut d = Debouncer::default();
        d.push("a.tif", t0 + s, 1);
        d.push("a.tif", t0 + Duration::from_secs(1) + s, 2);
        assert!(
            d.drain_ready(t0 + s).is_empty(),
            "the second write restarted the wait"
        );
        assert_eq!(d.next_deadline(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(
            d.drain_ready(t0 + Duration::from_secs(3)),
            vec![("a.tif", 2)]
        );
        assert!(d.is_empty());
    }

    #[test]
    fn keys_are_independent() {
        let t0 = Instant::now();
        let mut d = Debouncer::default();
        d.push(1, t0 + Duration::from_millis(10), ());
        d.push(2, t0 + Duration::from_millis(30), ());
        assert_eq!(d.drain_ready(t0 + Duration::from_millis(20)).len(), 1);
        assert_eq!(d.len(), 1);
    }
}
