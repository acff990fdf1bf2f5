//! One lock per key (a blob digest, a repository's manifest), holding what
//! the run knows about it: the thread that sends something holds its lock,
//! and a thread needing the same thing waits, then finds it done.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

pub struct Claims<K, V> {
    map: Mutex<HashMap<K, Arc<Mutex<V>>>>,
}

impl<K, V> Default for Claims<K, V> {
    fn default() -> Self {
        Claims {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Default> Claims<K, V> {
    /// The lock of `key` (created empty on first use). Never hold two at
    /// once.
    pub fn of(&self, key: &K) -> Arc<Mutex<V>> {
        let mut map = self.map.lock().expect("not poisoned");
        match map.get(key) {
            Some(v) => v.clone(),
            None => {
                let v = Arc::new(Mutex::new(V::default()));
                map.insert(key.clone(), v.clone());
                v
            }
        }
    }
}
