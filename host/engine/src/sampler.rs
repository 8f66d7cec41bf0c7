//! Token sampling: repetition penalty, top-k, top-p, min-p, temperature and a seeded RNG;
//! greedy (argmax) at temperature 0.

use crate::error::{EngineError, Result};

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; `<= 0` means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1.0 = off).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` × the most likely one (0.0 = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens by this (1.0 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: usize,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding.
    pub fn greedy() -> SamplerConfig {
        SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// Checks the ranges of every setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(EngineError::InvalidArgument(m.to_string()));
        if !self.temperature.is_finite() {
            return bad("temperature must be a finite number");
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad("top_p must be in [0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p must be in [0, 1]");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat_penalty must be positive");
        }
        Ok(())
    }
}

/// A sampler with its own RNG state.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: u64,
    cand: Vec<(u32, f32)>,
}

/// Index of the largest value (first on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

impl Sampler {
    /// A sampler; errors when a setting is out of range.
    pub fn new(cfg: SamplerConfig) -> Result<Sampler> {
        cfg.validate()?;
        Ok(Sampler {
            cfg,
            rng: cfg.seed ^ 0x9E37_79B9_7F4A_7C15,
            cand: Vec::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    fn next_f32(&mut self) -> f32 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Picks the next token from `logits`, given the tokens so far (for the penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let c = self.cfg;
        let penalised = c.repeat_penalty != 1.0 && c.repeat_last_n > 0;
        if c.temperature <= 0.0 && !penalised {
            return argmax(logits);
        }
        self.cand.clear();
        self.cand.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        if penalised {
            let start = history.len().saturating_sub(c.repeat_last_n);
            let mut seen: Vec<u32> = history[start..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                if let Some(e) = self.cand.get_mut(t as usize) {
                    e.1 = if e.1 > 0.0 {
                        e.1 / c.repeat_penalty
                    } else {
                        e.1 * c.repeat_penalty
                    };
                }
            }
        }
        if c.temperature <= 0.0 {
            let best = self
                .cand
                .iter()
                .enumerate()
                .fold(0, |b, (i, e)| if e.1 > self.cand[b].1 { i } else { b });
            return self.cand[best].0;
        }
        self.cand
            .sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if c.top_k > 0 && c.top_k < self.cand.len() {
            self.cand.truncate(c.top_k);
        }
        // Softmax over the remaining candidates.
        let max = self.cand[0].1;
        let mut sum = 0f32;
        for e in self.cand.iter_mut() {
            e.1 = (e.1 - max).exp();
            sum += e.1;
        }
        for e in self.cand.iter_mut() {
            e.1 /= sum;
        }
        if c.top_p < 1.0 {
            let mut acc = 0f32;
            let mut keep = self.cand.len();
            for (i, e) in self.cand.iter().enumerate() {
                acc += e.1;
                if acc >= c.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        if c.min_p > 0.0 {
            let floor = self.cand[0].1 * c.min_p;
            let keep = self.cand.iter().take_while(|e| e.1 >= floor).count().max(1);
            self.cand.truncate(keep);
        }
        // Temperature: p^(1/T), renormalised.
        let inv_t = 1.0 / c.temperature;
        let mut sum = 0f32;
        for e in self.cand.iter_mut() {
            e.1 = e.1.powf(inv_t);
            sum += e.1;
        }
        let mut r = self.next_f32() * sum;
        for e in &self.cand {
            r -= e.1;
            if r <= 0.0 {
                return e.0;
            }
        }
        self.cand.last().map(|e| e.0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_argmax() {
        let mut s = Sampler::new(SamplerConfig::greedy()).unwrap();
        assert_eq!(s.sample(&[0.1, 3.0, 2.9, -1.0], &[]), 1);
    }

    #[test]
    fn same_seed_same_choices_and_top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 17) as f32 * 0.3).collect();
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 7,
            ..Default::default()
        };
        let a: Vec<u32> = {
            let mut s = Sampler::new(cfg).unwrap();
            (0..50).map(|_| s.sample(&logits, &[])).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(cfg).unwrap();
            (0..50).map(|_| s.sample(&logits, &[])).collect()
        };
        assert_eq!(a, b);
        assert!(
            a.iter().collect::<std::collections::HashSet<_>>().len() > 1,
            "temperature 1 should vary"
        );
        let mut k1 = Sampler::new(SamplerConfig { top_k: 1, ..cfg }).unwrap();
        assert_eq!(k1.sample(&logits, &[]), argmax(&logits));
    }

    #[test]
    fn repetition_penalty_moves_away_from_seen_tokens() {
        let cfg = SamplerConfig {
            temperature: 0.0,
            repeat_penalty: 2.0,
            ..Default::default()
        };
        let mut s = Sampler::new(cfg).unwrap();
        assert_eq!(s.sample(&[1.0, 3.0, 2.0], &[1]), 2);
        let mut off = Sampler::new(SamplerConfig {
            repeat_penalty: 1.0,
            ..cfg
        })
        .unwrap();
        assert_eq!(off.sample(&[1.0, 3.0, 2.0], &[1]), 1);
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        let logits = [10.0, 0.0, 0.0, 0.0];
        for cfg in [
            SamplerConfig {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.5,
                seed: 1,
                ..Default::default()
            },
            SamplerConfig {
                temperature: 1.0,
                top_k: 0,
                top_p: 0.5,
                min_p: 0.0,
                seed: 1,
                ..Default::default()
            },
        ] {
            let mut s = Sampler::new(cfg).unwrap();
            for _ in 0..100 {
                assert_eq!(s.sample(&logits, &[]), 0);
            }
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Sampler::new(SamplerConfig {
            top_p: 2.0,
            ..Default::default()
        })
        .is_err());
        assert!(Sampler::new(SamplerConfig {
            repeat_penalty: 0.0,
            ..Default::default()
        })
        .is_err());
    }
}
