//! Shards: which share of a plan one process owns when a migration runs as many processes
//! (a Kubernetes Indexed Job, one unit per machine). An account belongs to a shard by a stable
//! hash of its address alone, so editing the plan (adding, removing or reordering accounts)
//! never moves an account that stays in it; platform-level steps belong to shard 0.
//!
//! The hash is written here rather than taken from a crate because its output is part of the
//! state's contract: a state file written by one version must be owned by the same shard under
//! the next, whatever a dependency's hasher does. FNV-1a (64 bits) of the lower-cased address
//! feeds Lamping and Veach's jump consistent hash ("A Fast, Minimal Memory, Consistent Hash
//! Algorithm", 2014), which moves only the accounts that must move when N changes (about 1/N
//! of them going from N to N+1), so `mailshift state reshard` has the least to carry.

use std::fmt;

/// One shard of N: `index` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole plan in one process (what runs without `--shard`).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("a plan cannot be split into 0 shards: N must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard {index} of {count} does not exist: shards are numbered 0 to {} (as a \
                 Kubernetes Indexed Job's JOB_COMPLETION_INDEX is)",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Reads `I/N` (`2/10`: the third of ten shards).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text.trim().split_once('/').ok_or_else(|| {
            format!("shard `{text}`: write it as I/N, the shard's index and the number of shards (0/3, 1/3, 2/3)")
        })?;
        let number = |s: &str, what: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("shard `{text}`: {what} `{s}` is not a whole number"))
        };
        Shard::new(number(i, "the index")?, number(n, "the number of shards")?)
    }

    /// Whether this is the only shard (no split).
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Whether platform-level steps (domains, groups, contacts, footers, DNS) run here.
    pub fn owns_platform_steps(self) -> bool {
        self.index == 0
    }

    /// Whether the account with this address belongs to this shard.
    pub fn owns_account(self, address: &str) -> bool {
        shard_of(address, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard (of `count`) that owns the account with this address; case does not matter.
pub fn shard_of(address: &str, count: u32) -> u32 {
    jump(fnv1a(address), count.max(1))
}

fn fnv1a(address: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in address.trim().bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Jump consistent hash: the bucket in `0..buckets` of `key`.
fn jump(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_with_the_fix() {
        assert_eq!(
            Shard::parse("2/10").unwrap(),
            Shard {
                index: 2,
                count: 10
            }
        );
        assert!(Shard::parse("3/3").unwrap_err().contains("numbered 0 to 2"));
        assert!(Shard::parse("0/0").unwrap_err().contains("at least 1"));
        assert!(Shard::parse("1").unwrap_err().contains("I/N"));
        assert!(Shard::parse("a/3").unwrap_err().contains("`a`"));
    }

    #[test]
    fn values_are_pinned_because_state_files_depend_on_them() {
        // If this fails, existing sharded state files would belong to other shards: the hash
        // must not change.
        let got: Vec<u32> = ["alice@example.com", "bob@example.com", "carol@example.org"]
            .iter()
            .map(|a| shard_of(a, 10))
            .collect();
        assert_eq!(got, PINNED);
        assert_eq!(
            shard_of("ALICE@Example.com", 10),
            shard_of("alice@example.com", 10)
        );
        assert_eq!(shard_of("alice@example.com", 1), 0);
    }
    // Computed independently (a Python transcription of FNV-1a and the paper's jump hash).
    const PINNED: [u32; 3] = [4, 3, 6];

    #[test]
    fn spreads_evenly_and_moves_little_when_n_grows() {
        let addresses: Vec<String> = (0..10_000)
            .map(|i| format!("user{i}@example.com"))
            .collect();
        let mut counts = [0u32; 8];
        for a in &addresses {
            counts[shard_of(a, 8) as usize] += 1;
        }
        for c in counts {
            assert!((1_000..1_500).contains(&c), "{counts:?}");
        }
        let moved = addresses
            .iter()
            .filter(|a| shard_of(a, 8) != shard_of(a, 9))
            .count();
        // About 1/9 must move; a modulo hash would move about 8/9.
        assert!((800..1_500).contains(&moved), "{moved}");
        for a in &addresses {
            let (before, after) = (shard_of(a, 8), shard_of(a, 9));
            assert!(before == after || after == 8, "{a}: {before} -> {after}");
        }
    }
}
