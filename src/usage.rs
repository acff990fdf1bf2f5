//! Who holds which blob, and from that how much of a tag, a repository or a
//! namespace is its own.
//!
//! Blobs and holders (tags, repositories or namespaces: one level at a time)
//! are numbered. [`Holders`] keeps, for every blob, the sorted distinct
//! holders whose images need it, in one flat array: a few bytes per
//! (blob, holder) pair, never a set of digests per image. [`Holders::share`]
//! then gives a holder's total, unique and shared bytes and how many other
//! holders it shares a blob with.
//!
//! Counting the other holders is a union over the holders of each of its
//! blobs. A base layer held by every tag would make that quadratic, so the
//! holders of blobs held by many are also kept as bit sets (within a fixed
//! memory budget), and a union costs one pass over a bit set for them.

use serde::Serialize;

/// The memory the bit sets of much-held blobs may take.
const BITSET_BUDGET: usize = 16 << 20;

/// A blob held by more holders than this (at least) is kept as a bit set.
const MIN_HEAVY: usize = 64;

/// For every blob, the holders whose images need it.
pub struct Holders {
    /// Holders of blob `b`: `holders[start[b]..start[b + 1]]`.
    start: Vec<u32>,
    holders: Vec<u32>,
    count: usize,
    /// Blob → its row in `bits`, for blobs with many holders.
    heavy: Vec<u32>,
    bits: Vec<u64>,
    words: usize,
}

const NOT_HEAVY: u32 = u32::MAX;

/// One holder's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Share {
    /// How many distinct blobs it holds.
    pub blobs: usize,
    /// The bytes of its distinct blobs.
    pub bytes: u64,
    /// The bytes of the blobs no other holder holds: what deleting it frees.
    pub unique_bytes: u64,
    /// `bytes - unique_bytes`.
    pub shared_bytes: u64,
    /// How many other holders hold at least one of its blobs.
    pub shared_with: usize,
    /// The bytes of blobs it keeps that are not its own (the blobs of its
    /// untagged referrers) and that no other holder holds: deleting it
    /// frees `unique_bytes + referrer_bytes`.
    pub referrer_bytes: u64,
}

/// Per-thread working memory of [`Holders::share`].
pub struct Scratch {
    stamp: Vec<u32>,
    round: u32,
    bits: Vec<u64>,
}

impl Holders {
    /// Builds the table from `(blob, holder)` pairs (repeats allowed) for
    /// `blobs` blobs and `count` holders.
    pub fn build(blobs: usize, count: usize, mut pairs: Vec<(u32, u32)>) -> Holders {
        pairs.sort_unstable();
        pairs.dedup();
        let mut start = vec![0u32; blobs + 1];
        for &(b, _) in &pairs {
            start[b as usize + 1] += 1;
        }
        for i in 0..blobs {
            start[i + 1] += start[i];
        }
        let holders: Vec<u32> = pairs.into_iter().map(|(_, h)| h).collect();
        let words = count.div_ceil(64);
        // Few enough heavy blobs that their bit sets fit the budget: at most
        // `pairs / threshold` blobs have more holders than `threshold`.
        let threshold = (holders.len() * words * 8 / BITSET_BUDGET).max(MIN_HEAVY);
        let mut heavy = vec![NOT_HEAVY; blobs];
        let mut bits = Vec::new();
        for b in 0..blobs {
            let hs = &holders[start[b] as usize..start[b + 1] as usize];
            if hs.len() > threshold {
                heavy[b] = (bits.len() / words.max(1)) as u32;
                let row = bits.len();
                bits.resize(row + words, 0);
                for &h in hs {
                    bits[row + h as usize / 64] |= 1 << (h % 64);
                }
            }
        }
        Holders {
            start,
            holders,
            count,
            heavy,
            bits,
            words,
        }
    }

    /// How many holders there are.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The holders of blob `b`, sorted.
    pub fn of(&self, b: u32) -> &[u32] {
        &self.holders[self.start[b as usize] as usize..self.start[b as usize + 1] as usize]
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            stamp: vec![0; self.count],
            round: 0,
            bits: vec![0; self.words],
        }
    }

    /// The share of a holder `me` (`None`: one that holds nothing in this
    /// table, such as an image chosen by digest) whose distinct blobs are
    /// `blobs`, with blob sizes `sizes`.
    pub fn share(&self, me: Option<u32>, blobs: &[u32], sizes: &[u64], s: &mut Scratch) -> Share {
        s.round = s.round.wrapping_add(1);
        if s.round == 0 {
            s.stamp.iter_mut().for_each(|x| *x = 0);
            s.round = 1;
        }
        let mut out = Share {
            blobs: blobs.len(),
            ..Share::default()
        };
        let mut any_heavy = false;
        for &b in blobs {
            let size = sizes[b as usize];
            out.bytes += size;
            let hs = self.of(b);
            if hs.iter().all(|&h| Some(h) == me) {
                out.unique_bytes += size;
            }
            let row = self.heavy[b as usize];
            if row != NOT_HEAVY {
                any_heavy = true;
                let row = &self.bits[row as usize * self.words..(row as usize + 1) * self.words];
                s.bits.iter_mut().zip(row).for_each(|(a, b)| *a |= b);
            }
        }
        let in_bits = |bits: &[u64], h: u32| bits[h as usize / 64] & (1 << (h % 64)) != 0;
        let mut others = 0;
        for &b in blobs {
            if self.heavy[b as usize] != NOT_HEAVY {
                continue;
            }
            for &h in self.of(b) {
                if Some(h) == me || (any_heavy && in_bits(&s.bits, h)) {
                    continue;
                }
                if s.stamp[h as usize] != s.round {
                    s.stamp[h as usize] = s.round;
                    others += 1;
                }
            }
        }
        if any_heavy {
            let set: usize = s.bits.iter().map(|w| w.count_ones() as usize).sum();
            let me_in = me.is_some_and(|m| in_bits(&s.bits, m));
            others += set - usize::from(me_in);
            s.bits.iter_mut().for_each(|w| *w = 0);
        }
        out.shared_bytes = out.bytes - out.unique_bytes;
        out.shared_with = others;
        out
    }

    /// [`Holders::share`] of `blobs`, with the bytes of the blobs of `kept`
    /// (blobs it keeps besides its own) that no other holder holds.
    pub fn share_keeping(
        &self,
        me: Option<u32>,
        blobs: &[u32],
        kept: &[u32],
        sizes: &[u64],
        s: &mut Scratch,
    ) -> Share {
        let mut out = self.share(me, blobs, sizes, s);
        out.referrer_bytes = kept
            .iter()
            .filter(|&&b| self.of(b).iter().all(|&h| Some(h) == me))
            .map(|&b| sizes[b as usize])
            .sum();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share computed the slow way, from sets.
    fn naive(pairs: &[(u32, u32)], me: Option<u32>, blobs: &[u32], sizes: &[u64]) -> Share {
        use std::collections::BTreeSet;
        let mut others = BTreeSet::new();
        let mut s = Share {
            blobs: blobs.len(),
            ..Share::default()
        };
        for &b in blobs {
            s.bytes += sizes[b as usize];
            let hs: BTreeSet<u32> = pairs
                .iter()
                .filter(|p| p.0 == b)
                .map(|p| p.1)
                .filter(|&h| Some(h) != me)
                .collect();
            if hs.is_empty() {
                s.unique_bytes += sizes[b as usize];
            }
            others.extend(hs);
        }
        s.shared_bytes = s.bytes - s.unique_bytes;
        s.shared_with = others.len();
        s
    }

    #[test]
    fn shares_match_the_set_computation_with_and_without_bit_sets() {
        // 300 holders; blob 0 held by all (a base layer), blob 1 by the even
        // ones, blobs 2.. by one or two holders each.
        let n = 300u32;
        let mut pairs = Vec::new();
        let mut own: Vec<Vec<u32>> = vec![Vec::new(); n as usize];
        for h in 0..n {
            pairs.push((0, h));
            own[h as usize].push(0);
            if h % 2 == 0 {
                pairs.push((1, h));
                own[h as usize].push(1);
            }
            let b = 2 + h;
            pairs.push((b, h));
            own[h as usize].push(b);
            if h % 3 == 0 {
                // Shared with the next holder.
                pairs.push((b, (h + 1) % n));
                own[((h + 1) % n) as usize].push(b);
            }
        }
        let blobs = 2 + n as usize;
        let sizes: Vec<u64> = (0..blobs as u64).map(|b| 1000 + b).collect();
        let table = Holders::build(blobs, n as usize, pairs.clone());
        assert!(table.heavy[0] != NOT_HEAVY && table.heavy[1] != NOT_HEAVY);
        assert_eq!(table.heavy[2], NOT_HEAVY);
        let mut s = table.scratch();
        let mut checked = 0;
        for h in 0..n {
            let mut mine = own[h as usize].clone();
            mine.sort();
            mine.dedup();
            assert_eq!(
                table.share(Some(h), &mine, &sizes, &mut s),
                naive(&pairs, Some(h), &mine, &sizes),
                "holder {h}"
            );
            // Without the base layers: only the small lists.
            let light: Vec<u32> = mine.iter().copied().filter(|&b| b >= 2).collect();
            assert_eq!(
                table.share(Some(h), &light, &sizes, &mut s),
                naive(&pairs, Some(h), &light, &sizes)
            );
            checked += 1;
        }
        assert_eq!(checked, n);
        // A holder outside the table (an image chosen by digest).
        assert_eq!(
            table.share(None, &[0, 5], &sizes, &mut s),
            naive(&pairs, None, &[0, 5], &sizes)
        );
    }

    #[test]
    fn a_blob_nobody_else_holds_is_unique() {
        let t = Holders::build(3, 2, vec![(0, 0), (1, 0), (1, 1), (1, 1)]);
        let sizes = [10, 20, 30];
        let mut s = t.scratch();
        let a = t.share(Some(0), &[0, 1], &sizes, &mut s);
        assert_eq!((a.bytes, a.unique_bytes, a.shared_bytes), (30, 10, 20));
        assert_eq!(a.shared_with, 1);
        // Blob 2 has no holder at all.
        let b = t.share(Some(1), &[1, 2], &sizes, &mut s);
        assert_eq!((b.bytes, b.unique_bytes, b.shared_with), (50, 30, 1));
    }
}
