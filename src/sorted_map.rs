//! A small map kept as a vector sorted by key: what the crate needs of `BTreeMap` (ordered
//! iteration, duplicate detection) for the handful of entries it holds (a model's metrics, a
//! profile's kernel families). `BTreeMap`'s node code was ~16 KB of the browser build; this is
//! a binary search and a `Vec::insert`.

use std::borrow::Borrow;

#[derive(Debug, Clone, PartialEq)]
pub struct SortedMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// Inserts or replaces; returns the value replaced, as `BTreeMap::insert` does.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// The value at `key`, inserted as `V::default()` first if absent.
    pub fn value_mut(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (key, V::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Ord + Borrow<Q>, Q: Ord + ?Sized, V> std::ops::Index<&Q> for SortedMap<K, V> {
    type Output = V;

    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry for the key")
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_keys_sorted_and_reports_replacements() {
        let mut m = SortedMap::new();
        for (k, v) in [("b", 2), ("a", 1), ("c", 3)] {
            assert_eq!(m.insert(k.to_string(), v), None);
        }
        assert_eq!(m.insert("a".into(), 10), Some(1));
        assert_eq!(m.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), [("a", 10), ("b", 2), ("c", 3)]);
        assert_eq!(m.get("b"), Some(&2));
        assert_eq!(m.get("z"), None);
        assert_eq!(m["c"], 3);
        *m.value_mut("aa".into()) += 5;
        *m.value_mut("aa".into()) += 5;
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [10, 10, 2, 3]);
        assert_eq!(m.len(), 4);
    }
}
