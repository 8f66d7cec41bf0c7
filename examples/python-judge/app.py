"""judge-jaccard in Python: the Shannon-Prime deterministic recall gate.

The same algorithm as plugins/judge-jaccard (Rust): a candidate is accepted
when the Jaccard overlap of its content tokens with the query's reaches 0.6.
Content tokens are lowercased alphanumeric runs (dots, colons and apostrophes
kept inside a run, so `10.0.0.7` is one token), with a possessive `'s` and a
plural `s` stripped, minus a small stop-word list.

Build (see build.sh): componentize-py -d ../../wit -w judge componentize app --stub-wasi -o judge_py.wasm
"""

from typing import List

from wit_world import exports
from wit_world.imports.types import Candidate, Verdict

THRESHOLD = 0.6

STOP_WORDS = {
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "has",
    "have", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "that", "the",
    "their", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who", "why",
    "how", "with", "you", "your", "tell", "please", "can", "could", "would", "again",
}


def _keep(c: str) -> bool:
    return c.isalnum() or c in ".:'"


def content_tokens(text: str) -> set:
    out = set()
    raw, cur = [], []
    for c in text.lower():
        if _keep(c):
            cur.append(c)
        else:
            raw.append("".join(cur))
            cur = []
    raw.append("".join(cur))
    for r in raw:
        t = r.strip(".:'")
        if t.endswith("'s"):
            t = t[:-2]
        t = t.rstrip("'")
        if not t or t in STOP_WORDS:
            continue
        if len(t) > 3 and t.endswith("s") and not t.endswith("ss") and t.isalpha():
            t = t[:-1]
        out.add(t)
    return out


class Judging(exports.Judging):
    def judge(self, query: str, candidates: List[Candidate]) -> List[Verdict]:
        q = content_tokens(query)
        verdicts = []
        for cand in candidates:
            c = content_tokens(cand.text)
            shared = sorted(q & c)
            union = len(q | c)
            overlap = len(shared) / union if union else 0.0
            verdicts.append(
                Verdict(
                    accept=overlap >= THRESHOLD,
                    confidence=overlap,
                    evidence="jaccard %.3f on [%s]" % (overlap, ", ".join(shared)),
                )
            )
        return verdicts
