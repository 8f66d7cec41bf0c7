//! Tests of the exact dot products: against an element-wise reference, scalar vs AVX2,
//! chunking and thread splits, and the activation quantizer.

use super::*;
use crate::test_rng::Rng;
use proptest::prelude::*;

/// A random f16 scale: mostly model-like magnitudes, sometimes subnormal, zero, negative or huge.
fn random_scale(rng: &mut Rng) -> u16 {
    match rng.below(10) {
        0 => rng.below(0x400) as u16,                 // subnormal or zero
        1 => 0x7bff,                                  // 65504, the largest finite
        2 => 0x8000 | (0x1c00 + rng.below(0x1000)) as u16, // negative
        _ => (0x1400 + rng.below(0x1800)) as u16,     // about 2^-10 .. 2^-4
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
                *b = if format == WeightFormat::Q8_0 { 0x80 } else { 0xff };
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
            x.push(rng.range_i64(-mag, mag).clamp(i32::MIN as i64, i32::MAX as i64) as i32);
        }
    }
    x
}

/// The signed element codes of one block, decoded from the layout independently of the kernels.
fn codes(format: WeightFormat, block: &[u8]) -> [i64; QK] {
    let mut c = [0i64; QK];
    for (j, cj) in c.iter_mut().enumerate() {
        let nib = |qs: &[u8]| if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 } as i64;
        *cj = match format {
            WeightFormat::Q4_0 => nib(&block[2..18]) - 8,
            WeightFormat::Q4_1 => nib(&block[4..20]),
            WeightFormat::Q5_0 => {
                let qh = u32::from_le_bytes(block[2..6].try_into().unwrap());
                nib(&block[6..22]) + (((qh >> j) & 1) << 4) as i64 - 16
            }
            WeightFormat::Q8_0 => block[2 + j] as i8 as i64,
        };
    }
    c
}

/// The exact Q40 dot product computed element by element from the dequantized operands.
fn reference_dot(format: WeightFormat, row: &[u8], x: &[Q8Block]) -> i128 {
    let mut acc = 0i128;
    for (block, a) in row.chunks_exact(format.block_bytes()).zip(x) {
        let (dm, de) = f16_parts(u16::from_le_bytes([block[0], block[1]])).unwrap();
        let c = codes(format, block);
        for j in 0..QK {
            let q = a.qs[j] as i128;
            let sh = de + a.shift as i32 - 16 + 40;
            acc += (dm as i128 * c[j] as i128 * q) << sh;
            if format == WeightFormat::Q4_1 {
                let (mm, me) = f16_parts(u16::from_le_bytes([block[2], block[3]])).unwrap();
                acc += (mm as i128 * q) << (me + a.shift as i32 - 16 + 40);
            }
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
            let row = random_row(format, nb, &mut rng);
            let x = random_act(nb * QK, &mut rng);
            let mut xq = vec![Q8Block::default(); nb];
            quantize_act(&x, &mut xq).unwrap();
            let m = QuantMatrix::new(format, &row, 1, nb * QK).unwrap();
            let want = reference_dot(format, &row, &xq);
            assert_eq!(m.row_dot(0, &xq, Kernel::Scalar).unwrap(), want, "{format:?} scalar");
            assert_eq!(m.row_dot(0, &xq, Kernel::Auto).unwrap(), want, "{format:?} {}", Kernel::Auto.name());
        }
    }
}

#[test]
fn avx2_is_exercised_when_available() {
    if std::arch::is_x86_feature_detected!("avx2") && std::env::var_os(SCALAR_ENV).is_none() {
        assert_eq!(Kernel::Auto.name(), "avx2");
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
        .args(["--exact", "quant::tests::child_reports_kernel", "--test-threads=1"])
        .env(SCALAR_ENV, "1")
        .env("ENGRAM_EXACT_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "with {SCALAR_ENV}=1 the Auto kernel must be scalar: {stdout}");
    assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
}

#[test]
fn close_to_float_dot_of_unquantized_activations() {
    let mut rng = Rng::new(7);
    for format in WeightFormat::ALL {
        for _ in 0..100 {
            let nb = 18; // 576 columns, SmolLM2's width
            let mut row = random_row(format, nb, &mut rng);
            // model-like scales only, so the float reference is well conditioned
            for block in row.chunks_exact_mut(format.block_bytes()) {
                for &off in format.scale_offsets() {
                    let s = (0x1400 + rng.below(0x1000)) as u16;
                    block[off..off + 2].copy_from_slice(&s.to_le_bytes());
                }
            }
            let x: Vec<i32> = (0..nb * QK).map(|_| rng.range_i64(-(4 << 16), 4 << 16) as i32).collect();
            let mut xq = vec![Q8Block::default(); nb];
            quantize_act(&x, &mut xq).unwrap();
            let m = QuantMatrix::new(format, &row, 1, nb * QK).unwrap();
            let got = m.row_dot(0, &xq, Kernel::Auto).unwrap() as f64 / 2f64.powi(40);
            let (mut want, mut bound) = (0f64, 0f64);
            for (b, block) in row.chunks_exact(format.block_bytes()).enumerate() {
                let d = f16_value(u16::from_le_bytes([block[0], block[1]]));
                let mn = if format == WeightFormat::Q4_1 {
                    f16_value(u16::from_le_bytes([block[2], block[3]]))
                } else {
                    0.0
                };
                let c = codes(format, block);
                let half_step = (xq[b].shift as f64 - 17.0).exp2();
                for j in 0..QK {
                    let w = d * c[j] as f64 + mn;
                    want += w * x[b * QK + j] as f64 / 65536.0;
                    bound += w.abs() * half_step;
                }
            }
            assert!((got - want).abs() <= bound * (1.0 + 1e-12) + 1e-12, "{format:?}: {got} vs {want} (bound {bound})");
        }
    }
}

#[test]
fn same_bits_for_any_chunking_and_thread_split() {
    let mut rng = Rng::new(99);
    for format in WeightFormat::ALL {
        let (rows, nb) = (61, 18);
        let data: Vec<u8> = (0..rows).flat_map(|_| random_row(format, nb, &mut rng)).collect();
        let m = QuantMatrix::new(format, &data, rows, nb * QK).unwrap();
        let x = random_act(nb * QK, &mut rng);
        let mut xq = vec![Q8Block::default(); nb];
        quantize_act(&x, &mut xq).unwrap();
        let mut base = vec![0; rows];
        m.matvec(&xq, &mut base, Kernel::Scalar).unwrap();
        // chunked rows: every split point of every row
        for r in 0..rows {
            let full = m.row_dot(r, &xq, Kernel::Scalar).unwrap();
            assert_eq!(dot_to_act(full), base[r]);
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
                        m.matvec_rows(start..start + chunk.len(), xq, chunk, Kernel::Auto).unwrap();
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
        assert_eq!(q[0].sum as i32, q[0].qs.iter().map(|&v| v as i32).sum::<i32>());
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
    assert_eq!(WeightFormat::from_ggml_type(12), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Scalar and AVX2 kernels agree bit for bit on arbitrary bytes with finite scales.
    #[test]
    fn prop_kernels_agree(
        seed in any::<u64>(),
        fmt in 0usize..4,
        nb in 1usize..40,
    ) {
        let format = WeightFormat::ALL[fmt];
        let mut rng = Rng::new(seed);
        let row = random_row(format, nb, &mut rng);
        let x = random_act(nb * QK, &mut rng);
        let mut xq = vec![Q8Block::default(); nb];
        quantize_act(&x, &mut xq).unwrap();
        let m = QuantMatrix::new(format, &row, 1, nb * QK).unwrap();
        let s = m.row_dot(0, &xq, Kernel::Scalar).unwrap();
        prop_assert_eq!(s, m.row_dot(0, &xq, Kernel::Auto).unwrap());
        prop_assert_eq!(s, reference_dot(format, &row, &xq));
    }
}
