#!/usr/bin/env python3
"""The peer for the embedder benchmark (BENCHMARKS.md, section `embed`): all-MiniLM-L6-v2 in
float32 numpy (matrix products by numpy's BLAS) with Hugging Face `tokenizers`, batched as
sentence-transformers does it (batches of 32 texts, padded to the longest, attention mask).

    .venv/bin/pip install tokenizers safetensors numpy
    cargo bench -p engram-embed --bench embed -- --sentences > /tmp/sentences.txt
    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_minilm_peer.py /tmp/sentences.txt
    OPENBLAS_NUM_THREADS=2 .venv/bin/python scripts/bench_minilm_peer.py /tmp/sentences.txt

Prints the same columns as the Rust benchmark: single-sentence latency (median of 41 runs,
first sentence; wall and process-CPU time) and batched throughput (median of 5 runs over all
sentences; per wall second and per CPU second). It first checks
its own vectors against tests/fixtures/minilm-reference.json so the timing is of a correct
forward pass.
"""
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "all-MiniLM-L6-v2"


def erf(x):
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), vectorised in float32."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + np.float32(0.3275911) * a)
    y = 1.0 - (((((np.float32(1.061405429) * t - np.float32(1.453152027)) * t) + np.float32(1.421413741)) * t
                - np.float32(0.284496736)) * t + np.float32(0.254829592)) * t * np.exp(-a * a)
    return s * y


class Model:
    def __init__(self, model_dir):
        self.cfg = json.loads((model_dir / "config.json").read_text())
        self.t = load_file(str(model_dir / "model.safetensors"))
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.enable_truncation(256)
        self.tok.no_padding()
        # Pre-transpose the dense weights once (as a real deployment would).
        self.w = {k[: -len(".weight")]: np.ascontiguousarray(v.T) for k, v in self.t.items()
                  if k.endswith(".weight") and v.ndim == 2 and k.startswith("encoder")}

    def ln(self, x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + np.float32(self.cfg["layer_norm_eps"])) * self.t[name + ".weight"] + self.t[name + ".bias"]

    def dense(self, name, x):
        return x @ self.w[name] + self.t[name + ".bias"]

    def embed_batch(self, texts):
        encs = self.tok.encode_batch(texts)
        b, n = len(encs), max(len(e.ids) for e in encs)
        ids = np.zeros((b, n), dtype=np.int64)
        mask = np.zeros((b, n), dtype=np.float32)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        d, heads = self.cfg["hidden_size"], self.cfg["num_attention_heads"]
        hd = d // heads
        t = self.t
        x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:n] + t["embeddings.token_type_embeddings.weight"][0]
        x = self.ln(x, "embeddings.LayerNorm")
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}"
            q = self.dense(p + ".attention.self.query", x).reshape(b, n, heads, hd).transpose(0, 2, 1, 3)
            k = self.dense(p + ".attention.self.key", x).reshape(b, n, heads, hd).transpose(0, 2, 3, 1)
            v = self.dense(p + ".attention.self.value", x).reshape(b, n, heads, hd).transpose(0, 2, 1, 3)
            s = q @ k * np.float32(1.0 / math.sqrt(hd)) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
            h = self.ln(self.dense(p + ".attention.output.dense", ctx) + x, p + ".attention.output.LayerNorm")
            f = self.dense(p + ".intermediate.dense", h)
            f = np.float32(0.5) * f * (np.float32(1.0) + erf(f * np.float32(1 / math.sqrt(2))))
            x = self.ln(self.dense(p + ".output.dense", f) + h, p + ".output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed_many(self, texts, batch=32):
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = [None] * len(texts)
        for s in range(0, len(texts), batch):
            idx = order[s : s + batch]
            for i, v in zip(idx, self.embed_batch([texts[i] for i in idx])):
                out[i] = v
        return out


def median_time(runs, f):
    """Median wall seconds and median process-CPU seconds of `runs` calls of f."""
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        f()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main():
    sentences = [l.rstrip("\n") for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
    m = Model(MODEL)
    ref = json.loads((ROOT / "tests" / "fixtures" / "minilm-reference.json").read_text())
    got = m.embed_many([c["text"] for c in ref["cases"]])
    worst = min(float(np.dot(g, np.array(c["embedding"]))) for g, c in zip(got, ref["cases"]))
    tokens = sum(len(e.ids) for e in m.tok.encode_batch(sentences))
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"peer numpy {np.__version__} float32, BLAS threads {threads}; min cosine vs fixture {worst:.6f}")
    m.embed_batch([sentences[0]])
    single = median_time(41, lambda: m.embed_batch([sentences[0]]))
    batch = median_time(5, lambda: m.embed_many(sentences))
    long_text = " ".join(sentences)  # truncated at 256 tokens, like the Rust benchmark
    long = median_time(11, lambda: m.embed_batch([long_text]))
    print(f"{'kernel':<10} {'threads':>7} {'single ms':>12} {'single cpu':>12} {'batch sent/s':>15} {'batch tok/s':>14} {'tok/cpu-second':>16}")
    print(f"{'numpy':<10} {threads:>7} {single[0] * 1e3:>12.2f} {single[1] * 1e3:>12.2f} {len(sentences) / batch[0]:>15.1f} {tokens / batch[0]:>14.0f} {tokens / batch[1]:>16.0f}")
    print(f"\none 256-token text (truncated):\n{'numpy':<10} {threads:>7} {long[0] * 1e3:>12.2f} ms wall {long[1] * 1e3:>12.2f} ms cpu")

if __name__ == "__main__":
    main()
