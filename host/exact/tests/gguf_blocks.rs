//! The weight layouts against an independent implementation on real model data: one row of
//! every format the project's models use (SmolLM2 Q4_1/Q8_0, Qwen2.5 Q5_0/Q8_0/Q4_K/Q6_K),
//! as raw GGUF bytes and as dequantized by gguf-py (see `fixtures/make_gguf_blocks.py`).

use engram_exact::quant::DEQUANT_FRAC_BITS;
use engram_exact::{quantize_act, Kernel, Q8Block, QuantMatrix, WeightFormat};

struct Row {
    name: String,
    format: WeightFormat,
    cols: usize,
    bytes: Vec<u8>,
    values: Vec<f32>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("fixture hex"))
        .collect()
}

fn rows() -> Vec<Row> {
    let text = include_str!("fixtures/gguf-blocks.txt");
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let mut out = Vec::new();
    while let Some(header) = lines.next() {
        let f: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(f[0], "tensor");
        let ty: u32 = f[2].parse().unwrap();
        let bytes = hex(lines.next().unwrap().strip_prefix("bytes ").unwrap());
        let values = hex(lines.next().unwrap().strip_prefix("values ").unwrap())
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.push(Row {
            name: f[1].to_string(),
            format: WeightFormat::from_ggml_type(ty).expect("supported type"),
            cols: f[3].parse().unwrap(),
            bytes,
            values,
        });
    }
    out
}

#[test]
fn fixture_covers_the_model_formats() {
    let formats: Vec<WeightFormat> = rows().iter().map(|r| r.format).collect();
    for f in [
        WeightFormat::Q4_1,
        WeightFormat::Q8_0,
        WeightFormat::Q5_0,
        WeightFormat::Q4_K,
        WeightFormat::Q6_K,
    ] {
        assert!(formats.contains(&f), "{f:?} missing from the fixture");
    }
}

#[test]
fn dequantization_matches_gguf_py() {
    for row in rows() {
        let m = QuantMatrix::new(row.format, &row.bytes, 1, row.cols).unwrap();
        let mut w = vec![0i64; row.cols];
        m.dequantize_row(0, &mut w).unwrap();
        let scale = (1u64 << DEQUANT_FRAC_BITS) as f64;
        let max = row.values.iter().fold(0f64, |a, v| a.max(v.abs() as f64));
        let worst = w
            .iter()
            .zip(&row.values)
            .map(|(&x, &v)| (x as f64 / scale - v as f64).abs())
            .fold(0f64, f64::max);
        // gguf-py computes in f32 (several roundings per element); a layout error is off by
        // whole quantization steps.
        eprintln!(
            "measured: {} ({:?}) dequantization vs gguf-py worst {worst:.3e} (max |w| {max:.3e})",
            row.name, row.format
        );
        assert!(
            worst <= max * 1e-6,
            "{}: worst {worst} (max |w| {max})",
            row.name
        );

        let mut scratch = vec![0i64; 256];
        let mut act = vec![0i32; row.cols];
        m.dequantize_row_act(0, &mut scratch, &mut act).unwrap();
        for (&a, &x) in act.iter().zip(&w) {
            let want = (x as f64 / 256.0).abs().round() * (x as f64).signum();
            assert_eq!(a as f64, want);
        }
    }
}

#[test]
fn dot_products_are_exact_on_real_rows() {
    let mut state = 77u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as i64
    };
    for row in rows() {
        let m = QuantMatrix::new(row.format, &row.bytes, 1, row.cols).unwrap();
        let mut w = vec![0i64; row.cols];
        m.dequantize_row(0, &mut w).unwrap();
        for _ in 0..20 {
            let x: Vec<i32> = (0..row.cols)
                .map(|_| ((next() % (8 << 16)) - (4 << 16)) as i32)
                .collect();
            let mut xq = vec![Q8Block::default(); row.cols / 32];
            quantize_act(&x, &mut xq).unwrap();
            // Σ w·a in Q40 = Σ W(Q24)·q·2^(k−16)·2^16 = Σ W·q·2^k.
            let want: i128 = w
                .iter()
                .enumerate()
                .map(|(j, &wj)| (wj as i128 * xq[j / 32].qs[j % 32] as i128) << xq[j / 32].shift)
                .sum();
            assert_eq!(
                m.row_dot(0, &xq, Kernel::Scalar).unwrap(),
                want,
                "{}",
                row.name
            );
            assert_eq!(
                m.row_dot(0, &xq, Kernel::Auto).unwrap(),
                want,
                "{}",
                row.name
            );
        }
    }
}
