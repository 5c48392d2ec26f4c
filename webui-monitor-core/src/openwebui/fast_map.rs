//! The hash map of the per-request path.
//!
//! Every request looks up its token in the JWT cache, its user, its route series and its auth
//! result; with std's SipHash-1-3 the hashing alone (a JWT is about 200 bytes) was a fifth of
//! attribution's cost (`cargo xtask bench-replay`, docs/benchmarks-replay.md). foldhash is several
//! times faster and still seeded at random per process, so colliding keys cannot be prepared
//! offline; and every map here is capped (`SemanticsConfig`, `JwtLimits::cache_entries`), so even
//! a flood of colliding keys costs at most a cap's worth of comparisons per lookup.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
