//! The hash map of the per-request path.
//!
//! Every request looks up its token in the JWT cache, its user, its route series and its auth
//! result; with std's SipHash-1-3 the hashing alone (a JWT is about 200 bytes) was a fifth of
//! attribution's cost (`cargo xtask bench-replay`, docs/benchmarks-replay.md). foldhash is several
//! times faster and still seeded at random per process, so colliding keys cannot be prepared
//! offline; and every map here is capped (`SemanticsConfig`, `JwtLimits::cache_entries`), so even
//! a flood of colliding keys costs at most a cap's worth of comparisons per lookup. The map is
//! hashbrown's (std's is the same table) for its borrowed-key entry: finding an entry by a
//! `&str` and inserting its owned key if it is missing costs one hash and one probe.
pub type FastMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// The entry of `key` in `map`, inserting `make()` first if there is room for one more under
/// `cap`; `None` when the key is new and the map is full (the caller counts what it cut).
///
/// Every capped map of attribution grows through this one function, so none can outgrow its cap.
pub(crate) fn entry_within<'m, Q, K, V>(
    map: &'m mut FastMap<K, V>,
    key: &Q,
    cap: usize,
    make: impl FnOnce() -> V,
) -> Option<&'m mut V>
where
    K: std::hash::Hash + Eq,
    Q: OwnKey<K> + std::hash::Hash + hashbrown::Equivalent<K> + ?Sized,
{
    let full = map.len() >= cap;
    match map.entry_ref(key) {
        hashbrown::hash_map::EntryRef::Occupied(entry) => Some(entry.into_mut()),
        hashbrown::hash_map::EntryRef::Vacant(_) if full => None,
        hashbrown::hash_map::EntryRef::Vacant(entry) => {
            Some(entry.insert_with_key(key.own(), make()))
        }
    }
}

/// A borrowed map key's owned form (`str` → `Box<str>`; `Copy` keys are their own).
pub(crate) trait OwnKey<K> {
    fn own(&self) -> K;
}

impl OwnKey<Box<str>> for str {
    fn own(&self) -> Box<str> {
        self.into()
    }
}

impl<T: Copy> OwnKey<T> for T {
    fn own(&self) -> T {
        *self
    }
}
