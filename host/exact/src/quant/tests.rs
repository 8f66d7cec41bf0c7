//! Tests of the exact dot products: against an element-wise reference, scalar vs AVX2,
//! chunking and thread splits, and the activation quantizer.

use super::*;
use crate::test_rng::Rng;
use proptest::prelude::*;

/// A random f16 scale: mostly model-like magnitudes, sometimes subnormal, zero, negative or huge.
fn random_scale(rng: &mut Rng) -> u16 {
    match rng.below(10) {
        0 => rng.below(0x400) as u16,                      // subnormal or zero
        1 => 0x7bff,                                       // 65504, the largest finite
        2 => 0x8000 | (0x1c00 + rng.below(0x1000)) as u16, // negative
        _ => (0x1400 + rng.below(0x1800)) as u16,          // about 2^-10 .. 2^-4
    }
}

/// A random row of `nb` weight blocks of `format`.
fn random_row(format: WeightFormat, nb: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(nb * format.block_bytes());
    for _ in 0..nb {
        let mut block = vec![0u8; format.block_bytes()];
        for b in block.iter_mut() {
            *b = rng.next_u64() as u8;
        }
        if rng.below(8) == 0 {
            // extreme codes: all-ones nibbles / -128 bytes
            for b in block.iter_mut() {
                *b = if format == WeightFormat::Q8_0 {
                    0x80
                } else {
                    0xff
                };
            }
        }
        for &off in format.scale_offsets() {
            block[off..off + 2].copy_from_slice(&random_scale(rng).to_le_bytes());
        }
        out.extend_from_slice(&block);
    }
    out
}

/// Random activations with a per-block magnitude between 2^-16 and 2^15.
fn random_act(n: usize, rng: &mut Rng) -> Vec<i32> {
    let mut x = Vec::with_capacity(n);
    for _ in 0..n / QK {
        let mag = 1i64 << rng.below(32);
        for _ in 0..QK {
            x.push(
                rng.range_i64(-mag, mag)
                    .clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            );
        }
    }
    x
}

/// One weight block decoded independently of the kernels: the f16 bits of `d` and of the
/// offset scale, and per element `(c, o)` with `value = d·c + offset_scale·o`.
fn decode(format: WeightFormat, block: &[u8]) -> (u16, u16, Vec<(i64, i64)>) {
    let h = |off: usize| u16::from_le_bytes([block[off], block[off + 1]]);
    let nib = |qs: &[u8], j: usize| if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 } as i64;
    match format {
        WeightFormat::Q4_0 => (
            h(0),
            0,
            (0..QK).map(|j| (nib(&block[2..18], j) - 8, 0)).collect(),
        ),
        WeightFormat::Q4_1 => (
            h(0),
            h(2),
            (0..QK).map(|j| (nib(&block[4..20], j), 1)).collect(),
        ),
        WeightFormat::Q5_0 => {
            let qh = u32::from_le_bytes(block[2..6].try_into().unwrap());
            let els = (0..QK).map(|j| {
                (
                    nib(&block[6..22], j) + (((qh >> j) & 1) << 4) as i64 - 16,
                    0,
                )
            });
            (h(0), 0, els.collect())
        }
        WeightFormat::Q8_0 => (
            h(0),
            0,
            (0..QK).map(|j| (block[2 + j] as i8 as i64, 0)).collect(),
        ),
        WeightFormat::Q4_K => {
            // ggml dequantize_row_q4_K, element by element
            let sc = &block[4..16];
            let scale_min = |j: usize| -> (i64, i64) {
                if j < 4 {
                    ((sc[j] & 63) as i64, (sc[j + 4] & 63) as i64)
                } else {
                    (
                        ((sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4)) as i64,
                        ((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)) as i64,
                    )
                }
            };
            let mut els = Vec::new();
            for chunk in 0..4 {
                let q = &block[16 + 32 * chunk..16 + 32 * chunk + 32];
                let (d1, m1) = scale_min(2 * chunk);
                let (d2, m2) = scale_min(2 * chunk + 1);
                els.extend(q.iter().map(|&b| (d1 * (b & 0xF) as i64, -m1)));
                els.extend(q.iter().map(|&b| (d2 * (b >> 4) as i64, -m2)));
            }
            (h(0), h(2), els)
        }
        WeightFormat::Q6_K => {
            // ggml dequantize_row_q6_K, element by element
            let mut els = vec![(0i64, 0i64); 256];
            for n in 0..2 {
                let (ql, qh, sc) = (
                    &block[64 * n..],
                    &block[128 + 32 * n..],
                    &block[192 + 8 * n..],
                );
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i64 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i64 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i64 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i64 - 32;
                    let s = |k: usize| sc[is + k] as i8 as i64;
                    els[128 * n + l] = (s(0) * q1, 0);
                    els[128 * n + l + 32] = (s(2) * q2, 0);
                    els[128 * n + l + 64] = (s(4) * q3, 0);
                    els[128 * n + l + 96] = (s(6) * q4, 0);
                }
            }
            (h(208), 0, els)
        }
    }
}

/// The exact Q40 dot product computed element by element from the dequantized operands.
fn reference_dot(format: WeightFormat, row: &[u8], x: &[Q8Block]) -> i128 {
    let mut acc = 0i128;
    let apb = format.block_len() / QK;
    for (block, a) in row
        .chunks_exact(format.block_bytes())
        .zip(x.chunks_exact(apb))
    {
        let (d, o, els) = decode(format, block);
        let (dm, de) = f16_parts(d).unwrap();
        let (om, oe) = f16_parts(o).unwrap();
        for (e, &(c, off)) in els.iter().enumerate() {
            let blk = &a[e / QK];
            let q = blk.qs[e % QK] as i128;
            acc += (dm as i128 * c as i128 * q) << (de + blk.shift as i32 - 16 + 40);
            acc += (om as i128 * off as i128 * q) << (oe + blk.shift as i32 - 16 + 40);
        }
    }
    acc
}

fn f16_value(bits: u16) -> f64 {
    let (m, e) = f16_parts(bits).unwrap();
    m as f64 * (e as f64).exp2()
}

#[test]
fn kernels_equal_elementwise_reference_and_each_other() {
    let mut rng = Rng::new(42);
    for format in WeightFormat::ALL {
        for case in 0..300 {
            let nb = 1 + case % 37;
            let cols = nb * format.block_len();
            let row = random_row(format, nb, &mut rng);
            let x = random_act(cols, &mut rng);
            let mut xq = vec![Q8Block::default(); cols / QK];
            quantize_act(&x, &mut xq).unwrap();
            let m = QuantMatrix::new(format, &row, 1, cols).unwrap();
            let want = reference_dot(format, &row, &xq);
            assert_eq!(
                m.row_dot(0, &xq, Kernel::Scalar).unwrap(),
                want,
                "{format:?} scalar"
            );
            assert_eq!(
                m.row_dot(0, &xq, Kernel::Auto).unwrap(),
                want,
                "{format:?} {}",
                Kernel::Auto.name()
            );
        }
    }
}

/// A row long enough to cross the AVX2 kernel's 4096-block accumulation chunks, with the
/// largest terms every format allows (extreme codes, the largest f16, the largest shift).
#[test]
fn long_extreme_rows_are_exact() {
    let mut rng = Rng::new(5);
    for format in [
        WeightFormat::Q4_0,
        WeightFormat::Q4_1,
        WeightFormat::Q5_0,
        WeightFormat::Q8_0,
    ] {
        let nb = 4096 + 8 + 3;
        let mut row = random_row(format, nb, &mut rng);
        for block in row.chunks_exact_mut(format.block_bytes()) {
            for b in block.iter_mut() {
                *b = if format == WeightFormat::Q8_0 {
                    0x80
                } else {
                    0x00
                };
            }
            for &off in format.scale_offsets() {
                block[off..off + 2].copy_from_slice(&0x7bffu16.to_le_bytes());
            }
        }
        // q = 127 with shift 12: with the largest f16 (e = 5) the bucket remainder is 20, the maximum
        let x = vec![520_000; nb * QK];
        let mut xq = vec![Q8Block::default(); nb];
        quantize_act(&x, &mut xq).unwrap();
        let m = QuantMatrix::new(format, &row, 1, nb * QK).unwrap();
        let want = reference_dot(format, &row, &xq);
        assert_eq!(
            m.row_dot(0, &xq, Kernel::Scalar).unwrap(),
            want,
            "{format:?}"
        );
        assert_eq!(m.row_dot(0, &xq, Kernel::Auto).unwrap(), want, "{format:?}");
    }
}

/// The matvec entry point with model-like scales (the AVX2 64-bit window path), rows short and
/// long enough to pass the prepared activation groups, against the scalar kernel.
#[test]
fn matvec_window_path_matches_scalar() {
    let mut rng = Rng::new(21);
    for format in [
        WeightFormat::Q4_0,
        WeightFormat::Q4_1,
        WeightFormat::Q5_0,
        WeightFormat::Q8_0,
    ] {
        for nb in [1, 7, 8, 18, 48, 64 * 8 + 13] {
            let rows = 5;
            let mut data: Vec<u8> = (0..rows)
                .flat_map(|_| random_row(format, nb, &mut rng))
                .collect();
            for block in data.chunks_exact_mut(format.block_bytes()) {
                for &off in format.scale_offsets() {
                    let s = (0x1400 + rng.below(0x1000)) as u16;
                    block[off..off + 2].copy_from_slice(&s.to_le_bytes());
                }
            }
            let m = QuantMatrix::new(format, &data, rows, nb * QK).unwrap();
            let x: Vec<i32> = (0..nb * QK)
                .map(|_| rng.range_i64(-(4 << 16), 4 << 16) as i32)
                .collect();
            let mut xq = vec![Q8Block::default(); nb];
            quantize_act(&x, &mut xq).unwrap();
            let (mut a, mut b) = (vec![0; rows], vec![0; rows]);
            m.matvec(&xq, &mut a, Kernel::Scalar).unwrap();
            m.matvec(&xq, &mut b, Kernel::Auto).unwrap();
            assert_eq!(a, b, "{format:?} nb={nb}");
            for (r, &v) in a.iter().enumerate() {
                assert_eq!(dot_to_act(reference_dot(format, m.row_data(r), &xq)), v);
            }
        }
    }
}

#[test]
fn avx2_is_exercised_when_available() {
    if std::arch::is_x86_feature_detected!("avx2") && std::env::var_os(SCALAR_ENV).is_none() {
        let want = if super::avx2::vnni_available() {
            "avx2+vnni"
        } else {
            "avx2"
        };
        assert_eq!(Kernel::Auto.name(), want);
    }
    assert_eq!(Kernel::Scalar.name(), "scalar");
}

/// The child half of `env_var_forces_scalar`: only asserts when launched by it.
#[test]
fn child_reports_kernel() {
    if std::env::var_os("ENGRAM_EXACT_TEST_CHILD").is_some() {
        assert_eq!(Kernel::Auto.name(), "scalar");
        assert!(!Kernel::Auto.uses_avx2());
    }
}

#[test]
fn env_var_forces_scalar() {
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "quant::tests::child_reports_kernel",
            "--test-threads=1",
        ])
        .env(SCALAR_ENV, "1")
        .env("ENGRAM_EXACT_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "with {SCALAR_ENV}=1 the Auto kernel must be scalar: {stdout}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run: {stdout}"
    );
}

#[test]
fn close_to_float_dot_of_unquantized_activations() {
    let mut rng = Rng::new(7);
    for format in WeightFormat::ALL {
        for _ in 0..100 {
            let cols = 2304; // 9 super-blocks, 72 blocks
            let nb = cols / format.block_len();
            let mut row = random_row(format, nb, &mut rng);
            // model-like scales only, so the float reference is well conditioned
            for block in row.chunks_exact_mut(format.block_bytes()) {
                for &off in format.scale_offsets() {
                    let s = (0x1400 + rng.below(0x1000)) as u16;
                    block[off..off + 2].copy_from_slice(&s.to_le_bytes());
                }
            }
            let x: Vec<i32> = (0..cols)
                .map(|_| rng.range_i64(-(4 << 16), 4 << 16) as i32)
                .collect();
            let mut xq = vec![Q8Block::default(); cols / QK];
            quantize_act(&x, &mut xq).unwrap();
            let m = QuantMatrix::new(format, &row, 1, cols).unwrap();
            let got = m.row_dot(0, &xq, Kernel::Auto).unwrap() as f64 / 2f64.powi(40);
            let (mut want, mut bound) = (0f64, 0f64);
            for (b, block) in row.chunks_exact(format.block_bytes()).enumerate() {
                let (d, o, els) = decode(format, block);
                let (d, o) = (f16_value(d), f16_value(o));
                for (e, &(c, off)) in els.iter().enumerate() {
                    let idx = b * format.block_len() + e;
                    let w = d * c as f64 + o * off as f64;
                    want += w * x[idx] as f64 / 65536.0;
                    bound += w.abs() * (xq[idx / QK].shift as f64 - 17.0).exp2();
                }
            }
            assert!(
                (got - want).abs() <= bound * (1.0 + 1e-12) + 1e-12,
                "{format:?}: {got} vs {want} (bound {bound})"
            );
        }
    }
}

#[test]
fn same_bits_for_any_chunking_and_thread_split() {
    let mut rng = Rng::new(99);
    for format in WeightFormat::ALL {
        let (rows, cols) = (61, 2304);
        let nb = cols / format.block_len();
        let data: Vec<u8> = (0..rows)
            .flat_map(|_| random_row(format, nb, &mut rng))
            .collect();
        let m = QuantMatrix::new(format, &data, rows, cols).unwrap();
        let x = random_act(cols, &mut rng);
        let mut xq = vec![Q8Block::default(); cols / QK];
        quantize_act(&x, &mut xq).unwrap();
        let mut base = vec![0; rows];
        m.matvec(&xq, &mut base, Kernel::Scalar).unwrap();
        // chunked rows: every split point of every row
        for (r, &b) in base.iter().enumerate() {
            let full = m.row_dot(r, &xq, Kernel::Scalar).unwrap();
            assert_eq!(dot_to_act(full), b);
            for split in 0..=nb {
                let a = m.row_dot_blocks(r, 0..split, &xq, Kernel::Auto).unwrap();
                let b = m.row_dot_blocks(r, split..nb, &xq, Kernel::Scalar).unwrap();
                assert_eq!(a + b, full);
            }
        }
        // thread splits
        for threads in 1..=4 {
            let mut out = vec![0; rows];
            let per = rows.div_ceil(threads);
            std::thread::scope(|s| {
                for (t, chunk) in out.chunks_mut(per).enumerate() {
                    let m = &m;
                    let xq = &xq;
                    s.spawn(move || {
                        let start = t * per;
                        m.matvec_rows(start..start + chunk.len(), xq, chunk, Kernel::Auto)
                            .unwrap();
                    });
                }
            });
            assert_eq!(out, base, "{format:?} with {threads} threads");
        }
    }
}

#[test]
fn quantizer_picks_the_smallest_shift_and_rounds() {
    let mut rng = Rng::new(3);
    for _ in 0..20_000 {
        let x = random_act(QK, &mut rng);
        let mut q = [Q8Block::default()];
        quantize_act(&x, &mut q).unwrap();
        let k = q[0].shift as u32;
        let amax = x.iter().map(|v| v.unsigned_abs() as u64).max().unwrap();
        assert!(q[0].qs.iter().all(|&v| v.unsigned_abs() <= 127));
        if k > 0 {
            // one less would overflow
            let kk = k - 1;
            let half = if kk == 0 { 0 } else { 1u64 << (kk - 1) };
            assert!((amax + half) >> kk > 127);
        }
        let step = 1i64 << k;
        for (qi, &xi) in q[0].qs.iter().zip(&x) {
            assert!((*qi as i64 * step - xi as i64).abs() * 2 <= step);
        }
        assert_eq!(
            q[0].sum as i32,
            q[0].qs.iter().map(|&v| v as i32).sum::<i32>()
        );
    }
    let mut q = [Q8Block::default()];
    quantize_act(&[i32::MIN; QK], &mut q).unwrap();
    assert_eq!((q[0].qs[0], q[0].shift), (-64, 25));
    quantize_act(&[127; QK], &mut q).unwrap();
    assert_eq!((q[0].qs[0], q[0].shift), (127, 0));
    quantize_act(&[128; QK], &mut q).unwrap();
    assert_eq!((q[0].qs[0], q[0].shift), (64, 1));
}

#[test]
fn bad_inputs_are_errors() {
    let row = vec![0u8; 20];
    assert!(QuantMatrix::new(WeightFormat::Q4_1, &row, 1, 32).is_ok());
    assert!(QuantMatrix::new(WeightFormat::Q4_1, &row, 1, 31).is_err());
    assert!(QuantMatrix::new(WeightFormat::Q4_1, &row, 2, 32).is_err());
    let mut bad = row.clone();
    bad[2..4].copy_from_slice(&0x7c00u16.to_le_bytes()); // m = +inf
    assert_eq!(
        QuantMatrix::new(WeightFormat::Q4_1, &bad, 1, 32).unwrap_err(),
        ExactError::NonFiniteScale { row: 0, block: 0 }
    );
    let m = QuantMatrix::new(WeightFormat::Q4_1, &row, 1, 32).unwrap();
    let xq = [Q8Block::default()];
    assert!(m.row_dot(1, &xq, Kernel::Auto).is_err());
    assert!(m.row_dot(0, &[], Kernel::Auto).is_err());
    assert!(m.row_dot_blocks(0, 0..2, &xq, Kernel::Auto).is_err());
    assert!(m.matvec(&xq, &mut [0; 2], Kernel::Auto).is_err());
    assert!(quantize_act(&[0; 31], &mut [Q8Block::default()]).is_err());
    assert_eq!(WeightFormat::from_ggml_type(3), Some(WeightFormat::Q4_1));
    assert_eq!(WeightFormat::from_ggml_type(12), Some(WeightFormat::Q4_K));
    assert_eq!(WeightFormat::from_ggml_type(14), Some(WeightFormat::Q6_K));
    assert_eq!(WeightFormat::from_ggml_type(10), None);
    assert!(QuantMatrix::new(WeightFormat::Q4_K, &[0; 144], 1, 32).is_err());
    assert!(QuantMatrix::new(WeightFormat::Q6_K, &[0; 210], 1, 256).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Scalar and AVX2 kernels agree bit for bit on arbitrary bytes with finite scales.
    #[test]
    fn prop_kernels_agree(
        seed in any::<u64>(),
        fmt in 0usize..6,
        nb in 1usize..12,
    ) {
        let format = WeightFormat::ALL[fmt];
        let cols = nb * format.block_len();
        let mut rng = Rng::new(seed);
        let row = random_row(format, nb, &mut rng);
        let x = random_act(cols, &mut rng);
        let mut xq = vec![Q8Block::default(); cols / QK];
        quantize_act(&x, &mut xq).unwrap();
        let m = QuantMatrix::new(format, &row, 1, cols).unwrap();
        let s = m.row_dot(0, &xq, Kernel::Scalar).unwrap();
        prop_assert_eq!(s, m.row_dot(0, &xq, Kernel::Auto).unwrap());
        prop_assert_eq!(s, reference_dot(format, &row, &xq));
    }
}

#[test]
fn packed_tiles_match_scalar_for_any_row_range() {
    let mut rng = Rng::new(77);
    for format in [
        WeightFormat::Q4_0,
        WeightFormat::Q4_1,
        WeightFormat::Q5_0,
        WeightFormat::Q8_0,
    ] {
        for (rows, nb) in [(8, 1), (19, 7), (24, 18), (16, 48), (9, 64 * 8 + 13)] {
            // Model-like scales on most rows (the tile path), extreme ones on some (fallback).
            let mut data: Vec<u8> = (0..rows)
                .flat_map(|_| random_row(format, nb, &mut rng))
                .collect();
            let extreme_row = rng.below(rows as u64) as usize;
            for (i, block) in data.chunks_exact_mut(format.block_bytes()).enumerate() {
                if i / nb == extreme_row {
                    continue;
                }
                for &off in format.scale_offsets() {
                    let s = (0x1400 + rng.below(0x1000)) as u16 | (rng.below(2) as u16) << 15;
                    block[off..off + 2].copy_from_slice(&s.to_le_bytes());
                }
            }
            let plain = QuantMatrix::new(format, &data, rows, nb * QK).unwrap();
            let packed = plain.clone().with_packed_scales();
            for x in [
                random_act(nb * QK, &mut rng),
                (0..nb * QK)
                    .map(|_| rng.range_i64(-(4 << 16), 4 << 16) as i32)
                    .collect(),
            ] {
                let mut xq = vec![Q8Block::default(); nb];
                quantize_act(&x, &mut xq).unwrap();
                let mut want = vec![0; rows];
                plain.matvec(&xq, &mut want, Kernel::Scalar).unwrap();
                let mut got = vec![0; rows];
                packed.matvec(&xq, &mut got, Kernel::Auto).unwrap();
                assert_eq!(got, want, "{format:?} rows={rows} nb={nb}");
                // An unaligned split of the rows gives the same bits.
                let cut = 3.min(rows);
                packed
                    .matvec_rows(0..cut, &xq, &mut got[..cut], Kernel::Auto)
                    .unwrap();
                packed
                    .matvec_rows(cut..rows, &xq, &mut got[cut..], Kernel::Auto)
                    .unwrap();
                assert_eq!(got, want, "{format:?} split at {cut}");
                // Every tile kernel this machine can run, in both nibble layouts.
                #[cfg(target_arch = "x86_64")]
                if super::avx2::available() {
                    let mut plain_layout = packed.clone();
                    if let Some(p) = plain_layout.packed.as_mut() {
                        p.qs.clear();
                    }
                    let shifts = super::shift_range(&xq);
                    for m in [&packed, &plain_layout] {
                        for vnni in [false, super::avx2::vnni_available()] {
                            got.fill(0);
                            m.matvec_tiled_with(0..rows, &xq, &mut got, shifts, vnni);
                            assert_eq!(got, want, "{format:?} vnni={vnni}");
                        }
                    }
                }
            }
        }
    }
}

/// The tiles' `i64` conversion equals the `i128` expression it replaces, for every base and
/// values of every magnitude (including the edges of `i64` and the rounding ties).
#[test]
fn window_to_act_equals_the_i128_conversion() {
    let mut rng = Rng::new(77);
    let mut values = vec![
        0i64,
        1,
        -1,
        i64::MAX,
        i64::MIN + 1,
        1 << 62,
        -(1 << 62),
        (1 << 62) - 1,
    ];
    for s in 0..63 {
        values.extend([
            1i64 << s,
            -(1i64 << s),
            (1i64 << s) + (1 << s.max(1) >> 1),
            -(3i64 << s.min(60)),
        ]);
    }
    for _ in 0..20_000 {
        let bits = rng.below(64) as u32;
        values.push((rng.next_u64() as i64) >> (63 - bits.min(63)));
    }
    for &v in &values {
        for base in 0..=64u32 {
            assert_eq!(
                window_to_act(v, base),
                dot_to_act((v as i128) << base),
                "v = {v}, base = {base}"
            );
        }
    }
}
