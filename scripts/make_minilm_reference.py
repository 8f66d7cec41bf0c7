#!/usr/bin/env python3
"""Write tests/fixtures/minilm-reference.json: independent reference embeddings for the
all-MiniLM-L6-v2 sentence embedder (host/embed).

Independent of the Rust code: tokenization by Hugging Face `tokenizers` from the model's own
tokenizer.json (its hard-coded truncation/padding to 128 disabled), and a float64 numpy forward
of BERT from the safetensors weights (embeddings + 6 post-LayerNorm layers, exact erf GELU,
mean pooling over all tokens, L2 normalisation: what sentence-transformers computes).

    .venv/bin/pip install tokenizers safetensors numpy
    .venv/bin/python scripts/make_minilm_reference.py [MODEL_DIR] [OUT.json]

Defaults: models/all-MiniLM-L6-v2 and tests/fixtures/minilm-reference.json.
"""
import json
import math
import random
import re
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
MAX_TOKENS = 256  # the embedder's documented truncation length, [CLS] and [SEP] included

LONG = (
    "Engram is a local host for a small language model that owns its memory: every "
    "conversation turn is embedded, stored, and recalled later when it matters. The store "
    "keeps facts about people, places, projects and preferences, and it ranks them by "
    "semantic similarity, recency, and importance before they are placed into the prompt. "
    "Because the machine has only two CPU cores, the embedder must be fast: it batches "
    "sentences, packs its weights into cache-friendly panels, uses AVX2 and FMA instructions "
    "when the processor supports them, and never reloads the 90 MB safetensors file between "
    "calls. Tokenization follows BERT's WordPiece algorithm — lowercasing, stripping accents "
    "such as those in café, naïve, or Zürich, splitting punctuation, and breaking rare words "
    "like 'antidisestablishmentarianism' into pieces prefixed with two hashes. The reference "
    "you are reading was produced independently in numpy so that the Rust implementation can "
    "be checked to a cosine similarity of at least 0.999 on twenty varied sentences."
)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A cat is sleeping on the warm windowsill.",
    "Hello, world! How are you doing today?",
    "Crème brûlée is a French dessert; naïve café owners serve it à la carte.",
    "The meeting is scheduled for 3:45 PM on 2026-11-23, room #42.",
    "I paid $1,234.56 for 3 tickets (that's about €1,100).",
    "🚀 Launch day! 🎉 Everything worked 👍",
    "Memory stores remember facts about the user across sessions.",
    "What did I say about my sister's birthday last week?",
    "東京は日本の首都です。",
    "Привет, как дела? Ça va très bien, merci!",
    "   leading and trailing whitespace\tand\ttabs\nand newlines   ",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    'fn main() { println!("{}", x + 1); } // Rust code',
    "user@example.com visited https://example.org/path?q=1&r=2",
    "OK.",
    "The [MASK] token and [SEP] appear literally in this text.",
    "Ünïcödé ÀÉÎÕÜ straße ﬁne ½ cup, 10×20 mm²",
    LONG,
    "Dogs are loyal companions and love to play fetch in the park.",
]

# Longer than MAX_TOKENS word pieces: checks the truncation policy (first MAX_TOKENS - 2
# pieces, then [SEP]) on top of the untruncated tokenization.
TRUNCATED = " ".join([LONG, LONG, "This final sentence is beyond the limit."])


# Character pools for the random tokenizer cases: every class the BERT normaliser and
# pre-tokenizer treat specially, plus scripts with accents, marks, and no spaces.
POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "    \t\n\r\u00a0\u2002\u2009\u200a\u3000\u2028\u2029\u0085\u000b\u000c",
    "\u0000\u0001\u001f\u007f\u200b\u200d\u2060\ufeff\ufffd\u00ad\ue000",
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßÀÉÎÕÜŒœŠšŽžłŁđĐħıĳ",
    "e\u0301a\u0308o\u0302n\u0303c\u0327\u0336\u20dd",
    "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΆΈΉΊΌΎΏΣΣς",
    "абвгдежзийклмнопрстуфхцчшщъыьэюяЁЙ",
    "東京日本語中文字漢字你好世界𠀀𪜀丽",
    "ひらがなカタカナがぎぐげごぱぴぷぺぽヴ",
    "한국어안녕하세요",
    "العربيةمرحبا",
    "हिन्दीनमस्ते",
    "ภาษาไทย",
    "€£¥₹©®™°±×÷½¼¾²³µ¶§¿¡«»“”‘’„…–—•′″",
    "ﬁﬂﬀＡＢＣ１２３！？＃ｶﾀｶﾅ",
    "😀🚀🎉👍🏽👨‍👩‍👧❤️🇫🇷✨🔥",
    "∑∏√∞≈≠≤≥∈∉∀∃⊂⊃∩∪",
]


def random_texts(n, seed=20261123):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            pool = rng.choice(POOLS)
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 10))))
            parts.append(rng.choice([" ", " ", "", "\n", "-", "."]))
        out.append("".join(parts))
    # Words longer than max_input_chars_per_word (100) become [UNK].
    out.append("x" * 101 + " " + "y" * 100)
    out.append("ΟΔΥΣΣΕΥΣ ΣΟΦΟΣ. ὈΔΥΣΣΕΎΣ\nΣ\n\u0301Σ")
    return out


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x, w, b, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def embed(ids, t, cfg):
    """Float64 BERT forward of one sequence, mean pooled and L2 normalised."""
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    hd = d // heads
    eps = cfg["layer_norm_eps"]
    n = len(ids)
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][:n]
        + t["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)

    def dense(name, v):
        return v @ t[name + ".weight"].T + t[name + ".bias"]

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q = dense(p + ".attention.self.query", x).reshape(n, heads, hd).transpose(1, 0, 2)
        k = dense(p + ".attention.self.key", x).reshape(n, heads, hd).transpose(1, 0, 2)
        v = dense(p + ".attention.self.value", x).reshape(n, heads, hd).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs = probs / probs.sum(axis=-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, d)
        h = layer_norm(
            dense(p + ".attention.output.dense", ctx) + x,
            t[p + ".attention.output.LayerNorm.weight"],
            t[p + ".attention.output.LayerNorm.bias"],
            eps,
        )
        f = gelu(dense(p + ".intermediate.dense", h))
        x = layer_norm(
            dense(p + ".output.dense", f) + h,
            t[p + ".output.LayerNorm.weight"],
            t[p + ".output.LayerNorm.bias"],
            eps,
        )
    pooled = x.mean(axis=0)
    return pooled / max(np.linalg.norm(pooled), 1e-12)


def main():
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models" / "all-MiniLM-L6-v2"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests" / "fixtures" / "minilm-reference.json"
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    cfg = json.loads((model_dir / "config.json").read_text())
    tensors = {k: v.astype(np.float64) for k, v in load_file(str(model_dir / "model.safetensors")).items()}

    cases = []
    for text in SENTENCES:
        ids = tok.encode(text).ids
        assert len(ids) <= MAX_TOKENS, f"reference sentence too long: {len(ids)} ids"
        cases.append({"text": text, "ids": ids, "embedding": [round(float(v), 7) for v in embed(ids, tensors, cfg)]})
    long_ids = [i for c in cases for i in [len(c["ids"])]]
    assert max(long_ids) > 128, "one sentence must exceed 128 word pieces"

    full = tok.encode(TRUNCATED).ids
    assert len(full) > MAX_TOKENS
    kept = full[: MAX_TOKENS - 1] + [full[-1]]  # first 254 pieces after [CLS], then [SEP]
    truncated = {
        "text": TRUNCATED,
        "untruncated_len": len(full),
        "ids": kept,
        "embedding": [round(float(v), 7) for v in embed(kept, tensors, cfg)],
    }

    tokenizer_cases = [{"text": t, "ids": tok.encode(t).ids} for t in random_texts(400)]

    doc = {
        "about": "all-MiniLM-L6-v2 reference embeddings; written by scripts/make_minilm_reference.py",
        "tokenizer": f"huggingface tokenizers {__import__('tokenizers').__version__}, truncation and padding disabled",
        "forward": f"numpy {np.__version__} float64 BERT forward, mean pooling, L2 normalisation",
        "max_tokens": MAX_TOKENS,
        "cases": cases,
        "truncated": truncated,
        "tokenizer_cases": tokenizer_cases,
    }
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    # One line per number array keeps the fixture readable and its diffs small.
    text = re.sub(r"\[\s+([-0-9.e,\s]+?)\s+\]", lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    out.write_text(text + "\n")
    print(f"wrote {out}: {len(cases)} cases, lengths {[len(c['ids']) for c in cases]}, truncated {len(full)} -> {len(kept)}")


if __name__ == "__main__":
    main()
