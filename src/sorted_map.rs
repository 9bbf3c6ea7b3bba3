//! The crate's maps and sets: a vector kept sorted by key, with the part of the `HashMap` /
//! `BTreeMap` API the crate uses. The maps here are small (a model's tensors, a graph's values,
//! the GPU's pipelines and buffer classes: tens to a few thousand entries, filled once and then
//! read), where a binary search is as fast as hashing, and in the browser build it is much
//! smaller: hashbrown's table code, SipHash and `BTreeMap`'s nodes were ~40 KB of the wasm
//! before (`BENCHMARKS.md`, bundle size).

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

    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// Inserts or replaces; returns the value replaced, as `HashMap::insert` does.
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

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// The value at `key`, inserted by `make` first if absent.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (key, make()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// The value at `key`, inserted as `V::default()` first if absent.
    pub fn value_mut(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        self.get_or_insert_with(key, V::default)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
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

/// Later entries replace earlier ones with the same key, as collecting into a `HashMap` does.
impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Self::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for SortedMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// A set as a sorted vector (see [`SortedMap`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SortedSet<K>(SortedMap<K, ()>);

impl<K> Default for SortedSet<K> {
    fn default() -> Self {
        Self(SortedMap::default())
    }
}

impl<K: Ord> SortedSet<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self(SortedMap::with_capacity(n))
    }

    /// True when `key` was not in the set yet, as `HashSet::insert`.
    pub fn insert(&mut self, key: K) -> bool {
        self.0.insert(key, ()).is_none()
    }

    pub fn contains<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.0.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Ord> Extend<K> for SortedSet<K> {
    fn extend<I: IntoIterator<Item = K>>(&mut self, iter: I) {
        for k in iter {
            self.insert(k);
        }
    }
}

impl<K: Ord> FromIterator<K> for SortedSet<K> {
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> Self {
        Self(iter.into_iter().map(|k| (k, ())).collect())
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
        assert_eq!(m.remove("b"), Some(2));
        assert_eq!(m.remove("b"), None);
        assert!(m.contains_key("aa") && !m.contains_key("b"));
        *m.get_mut("c").unwrap() = 30;
        assert_eq!(m.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "aa", "c"]);
        assert_eq!(m.len(), 3);
        // Collecting keeps the last value of a repeated key, as a HashMap does.
        let c: SortedMap<u32, u32> = [(2, 1), (1, 1), (2, 9)].into_iter().collect();
        assert_eq!(c.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(), [(1, 1), (2, 9)]);
    }

    #[test]
    fn a_set_reports_new_members() {
        let mut s: SortedSet<&str> = ["x", "y"].into_iter().collect();
        assert!(s.insert("a"));
        assert!(!s.insert("x"));
        assert!(s.contains("y") && !s.contains("b"));
        assert_eq!(s.len(), 3);
    }
}
