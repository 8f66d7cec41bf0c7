//! Approximate nearest neighbours over cell embeddings: an inverted-file index (IVF) with
//! int8 codes, exact float re-ranking, and an unindexed tail scanned exhaustively.
//! Each list keeps its vectors' int8 codes contiguous, so a probe streams memory instead
//! of gathering one code per cache miss.
//!
//! * Below `exact_below` vectors the index is an exact float scan (no approximation).
//! * Above it, [`AnnIndex::rebuild`] trains `nlist ≈ √N` centroids by k-means on a sample
//!   and assigns every vector to its nearest centroid. A query scores the centroids, scans
//!   the `nprobe` nearest lists plus the tail of vectors added since the last build with
//!   int8 dot products, and re-ranks the best `rerank` of them with the float vectors.
//!   Probing is adaptive: lists are taken best centroid first until `nprobe` lists or
//!   `scan_budget` vectors have been scanned (at least `min_probe` lists), so a query near
//!   a few large lists does not pay for many of them.
//! * Writes append to the tail (O(1)); the store rebuilds when the tail outgrows
//!   `tail_fraction` of the index, so writes never pay for centroid assignment.
//! * Dot products use AVX2/FMA when the CPU has them (detected at run time), a portable
//!   loop written for auto-vectorisation otherwise; both give the same ranking.

use std::collections::HashMap;

/// Tuning of the ANN index.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AnnConfig {
    /// Below this many vectors every search is an exact float scan.
    pub exact_below: usize,
    /// Lists probed per query (scaled up for small `nlist`, see `effective_nprobe`).
    pub nprobe: usize,
    /// Rebuild when the unindexed tail exceeds this fraction of all vectors.
    pub tail_fraction: f32,
    /// Stop probing further lists once this many indexed vectors were scanned.
    pub scan_budget: usize,
    /// Lists always probed, whatever the budget.
    pub min_probe: usize,
}

impl Default for AnnConfig {
    fn default() -> Self {
        Self {
            exact_below: 20_000,
            nprobe: 24,
            tail_fraction: 0.10,
            scan_budget: 16_384,
            min_probe: 8,
        }
    }
}

/// The index. Slots are dense; `ids[slot]` maps back to the cell id.
#[derive(Debug)]
pub struct AnnIndex {
    dim: usize,
    cfg: AnnConfig,
    ids: Vec<u64>,
    vecs: Vec<f32>,
    scales: Vec<f32>,
    slot_of: HashMap<u64, u32>,
    centroids: Vec<f32>,
    /// `lists[nlist]` is the tail (vectors not yet assigned).
    lists: Vec<Vec<u32>>,
    /// `list_codes[l][p*dim..(p+1)*dim]`: int8 code of the vector at `lists[l][p]`.
    list_codes: Vec<Vec<i8>>,
    /// For each slot: (list, position in list).
    loc: Vec<(u32, u32)>,
}

impl AnnIndex {
    /// An empty index for `dim`-dimensional vectors.
    pub fn new(dim: usize, cfg: AnnConfig) -> Self {
        Self {
            dim,
            cfg,
            ids: Vec::new(),
            vecs: Vec::new(),
            scales: Vec::new(),
            slot_of: HashMap::new(),
            centroids: Vec::new(),
            lists: vec![Vec::new()],
            list_codes: vec![Vec::new()],
            loc: Vec::new(),
        }
    }

    /// Number of vectors indexed.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    fn nlist(&self) -> usize {
        self.lists.len() - 1
    }

    /// The float vector stored for `id`.
    pub fn vector(&self, id: u64) -> Option<&[f32]> {
        let s = *self.slot_of.get(&id)? as usize;
        Some(&self.vecs[s * self.dim..(s + 1) * self.dim])
    }

    /// Add (or replace) the vector of `id`. Vectors must have the index's dimension.
    pub fn insert(&mut self, id: u64, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        if self.slot_of.contains_key(&id) {
            self.remove(id);
        }
        let slot = self.ids.len() as u32;
        self.ids.push(id);
        self.vecs.extend_from_slice(v);
        let (code, scale) = quantize(v);
        self.scales.push(scale);
        self.slot_of.insert(id, slot);
        let tail = self.nlist();
        self.loc.push((tail as u32, self.lists[tail].len() as u32));
        self.lists[tail].push(slot);
        self.list_codes[tail].extend_from_slice(&code);
    }

    /// Remove `id` (no-op when absent).
    pub fn remove(&mut self, id: u64) {
        let Some(slot) = self.slot_of.remove(&id) else {
            return;
        };
        let slot = slot as usize;
        // Unlink from its list, fixing the entry that moves into its place.
        let d = self.dim;
        let (l, p) = self.loc[slot];
        let list = &mut self.lists[l as usize];
        list.swap_remove(p as usize);
        let codes = &mut self.list_codes[l as usize];
        let end = codes.len() - d;
        if (p as usize) * d != end {
            codes.copy_within(end.., p as usize * d);
        }
        codes.truncate(end);
        if let Some(&moved) = list.get(p as usize) {
            self.loc[moved as usize].1 = p;
        }
        // Move the last slot into `slot`.
        let last = self.ids.len() - 1;
        if slot != last {
            self.ids[slot] = self.ids[last];
            self.vecs.copy_within(last * d..(last + 1) * d, slot * d);
            self.scales[slot] = self.scales[last];
            self.loc[slot] = self.loc[last];
            let (ml, mp) = self.loc[slot];
            self.lists[ml as usize][mp as usize] = slot as u32;
            self.slot_of.insert(self.ids[slot], slot as u32);
        }
        self.ids.pop();
        self.vecs.truncate(last * self.dim);
        self.scales.pop();
        self.loc.pop();
    }

    /// Whether the tail has outgrown the configured fraction (or the index outgrew exact mode).
    pub fn needs_rebuild(&self) -> bool {
        let n = self.len();
        if n < self.cfg.exact_below {
            return false;
        }
        let tail = self.lists[self.nlist()].len();
        self.nlist() == 0 || tail as f32 > self.cfg.tail_fraction * n as f32
    }

    /// Train centroids and assign every vector (k-means, deterministic seeding).
    pub fn rebuild(&mut self) {
        let n = self.len();
        let d = self.dim;
        if n < self.cfg.exact_below {
            let all: Vec<u32> = (0..n as u32).collect();
            self.centroids.clear();
            self.list_codes = vec![self.codes_of(&all)];
            self.lists = vec![all];
            self.loc = (0..n).map(|i| (0, i as u32)).collect();
            return;
        }
        let nlist = ((n as f64).sqrt() as usize).clamp(16, 1024);
        let sample_n = (nlist * 32).min(n);
        let stride = n / sample_n;
        let sample: Vec<usize> = (0..sample_n).map(|i| i * stride).collect();
        let mut cents: Vec<f32> = Vec::with_capacity(nlist * d);
        for c in 0..nlist {
            let s = sample[c * sample_n / nlist];
            cents.extend_from_slice(&self.vecs[s * d..(s + 1) * d]);
        }
        for _ in 0..6 {
            let assign = assign_parallel(&cents, d, &sample, &self.vecs);
            let mut sums = vec![0f32; nlist * d];
            let mut counts = vec![0usize; nlist];
            for (i, &c) in assign.iter().enumerate() {
                let s = sample[i];
                counts[c] += 1;
                for (acc, x) in sums[c * d..(c + 1) * d]
                    .iter_mut()
                    .zip(&self.vecs[s * d..(s + 1) * d])
                {
                    *acc += x;
                }
            }
            for c in 0..nlist {
                if counts[c] == 0 {
                    continue; // keep the old centroid for an empty cluster
                }
                let row = &mut sums[c * d..(c + 1) * d];
                normalize(row);
                cents[c * d..(c + 1) * d].copy_from_slice(row);
            }
        }
        let all: Vec<usize> = (0..n).collect();
        let assign = assign_parallel(&cents, d, &all, &self.vecs);
        let mut lists = vec![Vec::new(); nlist + 1];
        let mut loc = vec![(0u32, 0u32); n];
        for (slot, &c) in assign.iter().enumerate() {
            loc[slot] = (c as u32, lists[c].len() as u32);
            lists[c].push(slot as u32);
        }
        self.centroids = cents;
        self.list_codes = lists.iter().map(|l| self.codes_of(l)).collect();
        self.lists = lists;
        self.loc = loc;
    }

    /// The int8 codes of `slots`, concatenated in order.
    fn codes_of(&self, slots: &[u32]) -> Vec<i8> {
        let d = self.dim;
        let mut out = Vec::with_capacity(slots.len() * d);
        for &s in slots {
            out.extend(quantize(&self.vecs[s as usize * d..(s as usize + 1) * d]).0);
        }
        out
    }

    fn effective_nprobe(&self) -> usize {
        self.cfg.nprobe.max(self.nlist() / 32).min(self.nlist())
    }

    /// The `k` nearest ids by cosine (vectors are unit length), best first, with scores.
    pub fn search(&self, q: &[f32], k: usize) -> Vec<(u64, f32)> {
        let n = self.len();
        if n == 0 || k == 0 || q.len() != self.dim {
            return Vec::new();
        }
        let d = self.dim;
        if self.centroids.is_empty() {
            let mut top = TopK::new(k);
            for s in 0..n {
                top.push(dot(q, &self.vecs[s * d..(s + 1) * d]), s as u32);
            }
            return top
                .into_sorted()
                .into_iter()
                .map(|(sc, s)| (self.ids[s as usize], sc))
                .collect();
        }
        let mut ctop = TopK::new(self.effective_nprobe());
        for c in 0..self.nlist() {
            ctop.push(dot(q, &self.centroids[c * d..(c + 1) * d]), c as u32);
        }
        // The query's own int8 scale is a common factor of every approximate score.
        let (qcode, _) = quantize(q);
        let rerank = (k * 8).max(64);
        let mut approx = TopK::new(rerank);
        let mut scan = |l: usize| {
            for (&s, code) in self.lists[l].iter().zip(self.list_codes[l].chunks_exact(d)) {
                let sc = dot_i8(&qcode, code) as f32 * self.scales[s as usize];
                approx.push(sc, s);
            }
        };
        let mut scanned = 0usize;
        for (i, (_, c)) in ctop.into_sorted().into_iter().enumerate() {
            if i >= self.cfg.min_probe && scanned >= self.cfg.scan_budget {
                break;
            }
            scan(c as usize);
            scanned += self.lists[c as usize].len();
        }
        scan(self.nlist());
        let mut top = TopK::new(k);
        for (_, s) in approx.into_sorted() {
            let s = s as usize;
            top.push(dot(q, &self.vecs[s * d..(s + 1) * d]), s as u32);
        }
        top.into_sorted()
            .into_iter()
            .map(|(sc, s)| (self.ids[s as usize], sc))
            .collect()
    }

    /// Exact top-`k` (used to measure the approximation's recall).
    pub fn search_exact(&self, q: &[f32], k: usize) -> Vec<(u64, f32)> {
        let d = self.dim;
        let mut top = TopK::new(k);
        for s in 0..self.len() {
            top.push(dot(q, &self.vecs[s * d..(s + 1) * d]), s as u32);
        }
        top.into_sorted()
            .into_iter()
            .map(|(sc, s)| (self.ids[s as usize], sc))
            .collect()
    }
}

/// Index of the nearest centroid for each of `rows`, on up to 4 threads.
fn assign_parallel(cents: &[f32], d: usize, rows: &[usize], vecs: &[f32]) -> Vec<usize> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let chunk = rows.len().div_ceil(threads).max(1);
    let mut out = vec![0usize; rows.len()];
    std::thread::scope(|scope| {
        for (rows, out) in rows.chunks(chunk).zip(out.chunks_mut(chunk)) {
            scope.spawn(move || {
                for (r, o) in rows.iter().zip(out.iter_mut()) {
                    let v = &vecs[r * d..(r + 1) * d];
                    let mut best = (f32::MIN, 0);
                    for (c, cent) in cents.chunks_exact(d).enumerate() {
                        let s = dot(v, cent);
                        if s > best.0 {
                            best = (s, c);
                        }
                    }
                    *o = best.1;
                }
            });
        }
    });
    out
}

/// Float dot product: AVX2/FMA when the CPU has it, else a portable loop.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if a.len() == b.len() && simd::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time); lengths are equal.
        return unsafe { simd::dot_f32(a, b) };
    }
    dot_portable(a, b)
}

/// Float dot product written for auto-vectorisation (8 independent accumulators).
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Int8 dot product (exact in i32 for any width below 2^16).
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if a.len() == b.len() && simd::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 (checked at run time); lengths are equal.
        return unsafe { simd::dot_i8(a, b) };
    }
    dot_i8_portable(a, b)
}

fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    let mut s: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += *x as i32 * *y as i32;
    }
    s
}

/// AVX2/FMA kernels of the dot products.
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    /// Whether the CPU has AVX2 and FMA (detected once).
    pub(super) fn has_avx2_fma() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                acc1,
            );
            i += 16;
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
        let v = _mm256_add_ps(acc0, acc1);
        let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        let mut s = _mm_cvtss_f32(h);
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        while i + 16 <= n {
            let x = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i) as *const __m128i));
            let y = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i) as *const __m128i));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
            i += 16;
        }
        let h = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256(acc, 1),
        );
        let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b01_00_11_10));
        let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b10_11_00_01));
        let mut s = _mm_cvtsi128_si32(h);
        while i < n {
            s += a[i] as i32 * b[i] as i32;
            i += 1;
        }
        s
    }
}

/// Symmetric int8 quantisation; returns the codes and the scale (max |x| / 127).
fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if m == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let inv = 127.0 / m;
    (
        v.iter()
            .map(|x| (x * inv).round().clamp(-127.0, 127.0) as i8)
            .collect(),
        m / 127.0,
    )
}

/// Scale `v` to unit length (no-op for the zero vector).
pub fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Bounded best-`k` collector (min-heap by score).
struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(OrdF32, u32)>>,
}

/// An `f32` ordered by `total_cmp` (scores are never NaN, but the heap needs `Ord`).
#[derive(Debug, Clone, Copy)]
struct OrdF32(f32);
impl PartialEq for OrdF32 {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k + 1),
        }
    }

    fn push(&mut self, score: f32, item: u32) {
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse((OrdF32(score), item)));
        } else if let Some(min) = self.heap.peek() {
            if score > min.0 .0 .0 {
                self.heap.pop();
                self.heap.push(std::cmp::Reverse((OrdF32(score), item)));
            }
        }
    }

    fn into_sorted(self) -> Vec<(f32, u32)> {
        let mut v: Vec<(f32, u32)> = self.heap.into_iter().map(|r| (r.0 .0 .0, r.0 .1)).collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_unit(seed: &mut u64, d: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..d)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        normalize(&mut v);
        v
    }

    #[test]
    fn simd_and_portable_dots_agree() {
        let mut seed = 3;
        for d in [1usize, 7, 8, 15, 16, 17, 33, 384, 385] {
            let a = rand_unit(&mut seed, d);
            let b = rand_unit(&mut seed, d);
            assert!(
                (dot(&a, &b) - dot_portable(&a, &b)).abs() < 1e-5,
                "f32 width {d}"
            );
            let (qa, _) = quantize(&a);
            let (qb, _) = quantize(&b);
            assert_eq!(dot_i8(&qa, &qb), dot_i8_portable(&qa, &qb), "i8 width {d}");
        }
    }

    #[test]
    fn scan_budget_bounds_the_probe_and_stays_accurate() {
        let cfg = AnnConfig {
            exact_below: 500,
            nprobe: 64,
            scan_budget: 600,
            min_probe: 4,
            ..AnnConfig::default()
        };
        let mut ix = AnnIndex::new(32, cfg);
        let mut seed = 5;
        let vs: Vec<Vec<f32>> = (0..4000).map(|_| rand_unit(&mut seed, 32)).collect();
        for (i, v) in vs.iter().enumerate() {
            ix.insert(i as u64, v);
        }
        ix.rebuild();
        let mut hits = 0;
        for (i, v) in vs.iter().enumerate().step_by(40) {
            if ix.search(v, 1)[0].0 == i as u64 {
                hits += 1;
            }
        }
        assert!(hits >= 95, "self-recall with a bounded scan {hits}/100");
    }

    #[test]
    fn remove_keeps_index_consistent() {
        let mut ix = AnnIndex::new(8, AnnConfig::default());
        let mut seed = 7;
        let vs: Vec<Vec<f32>> = (0..50).map(|_| rand_unit(&mut seed, 8)).collect();
        for (i, v) in vs.iter().enumerate() {
            ix.insert(i as u64, v);
        }
        for i in (0..50).step_by(3) {
            ix.remove(i as u64);
        }
        for (i, v) in vs.iter().enumerate() {
            let hit = ix.search(v, 1);
            if i % 3 == 0 {
                assert_ne!(hit[0].0, i as u64);
                assert!(ix.vector(i as u64).is_none());
            } else {
                assert_eq!(hit[0].0, i as u64);
            }
        }
    }

    #[test]
    fn ivf_finds_planted_neighbours() {
        let cfg = AnnConfig {
            exact_below: 500,
            nprobe: 8,
            ..AnnConfig::default()
        };
        let mut ix = AnnIndex::new(32, cfg);
        let mut seed = 11;
        let vs: Vec<Vec<f32>> = (0..3000).map(|_| rand_unit(&mut seed, 32)).collect();
        for (i, v) in vs.iter().enumerate() {
            ix.insert(i as u64, v);
        }
        assert!(ix.needs_rebuild());
        ix.rebuild();
        assert!(!ix.needs_rebuild());
        let mut hits = 0;
        for (i, v) in vs.iter().enumerate().step_by(30) {
            if ix.search(v, 1)[0].0 == i as u64 {
                hits += 1;
            }
        }
        assert!(hits >= 95, "self-recall {hits}/100");
        // Removing after a build and adding to the tail still works.
        ix.remove(0);
        ix.insert(5000, &vs[0]);
        assert_eq!(ix.search(&vs[0], 1)[0].0, 5000);
    }
}
