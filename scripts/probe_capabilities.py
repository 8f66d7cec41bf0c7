#!/usr/bin/env python3
"""Probe how the default model answers questions to the assistant about itself.

Starts a real `engram serve` (the release build) with a fresh data folder and asks each
question of `tests/fixtures/capability-questions.json` in its own session, greedy, 48 tokens.
A question counts when the capability fact recalled for it is the one of its facet *and* the
answer holds one of its words. `--no-opening` turns the `memory.opening` knob off, to measure
what the answer opening adds.

    .venv/bin/python scripts/probe_capabilities.py [--no-opening] [--verbose]
"""
import argparse
import json
import pathlib
import re
import sys
import tempfile
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from conftest import Server  # noqa: E402


def corpus():
    """facet -> statement, read from the corpus in host/server/src/capabilities.rs."""
    src = (ROOT / "host/server/src/capabilities.rs").read_text()
    body = src[src.index("pub const CORPUS"):src.index("];", src.index("pub const CORPUS"))]
    found = re.findall(r'\(\s*"([a-z ]+)",\s*"((?:[^"\\]|\\.)*)",?\s*\)', body)
    return {facet: text.replace('\\"', '"') for facet, text in found}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-opening", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    facts = corpus()
    sets = json.loads((ROOT / "tests/fixtures/capability-questions.json").read_text())
    memory = {"recall": True, "capture": True, "consolidate": True,
              "opening": not args.no_opening}
    server = Server(tempfile.mkdtemp(prefix="engram-capprobe-")).start()
    total = asked = 0
    try:
        for name, questions in sets.items():
            if name.startswith("_"):
                continue
            hits = 0
            for i, q in enumerate(questions):
                body = {"messages": [{"role": "user", "content": q["question"]}],
                        "session": f"{name}-{i}", "max_tokens": 48, "temperature": 0,
                        "memory": memory}
                req = urllib.request.Request(server.url + "/v1/chat", data=json.dumps(body).encode(),
                                             headers={"content-type": "application/json"})
                with urllib.request.urlopen(req, timeout=300) as res:
                    reply = json.loads(res.read())
                text = reply["choices"][0]["message"]["content"]
                own = [m["text"] for m in reply["memory"]["recalled"] if m.get("capability")]
                right = bool(own) and own[0] == facts.get(q["facet"])
                ok = right and any(w.lower() in text.lower() for w in q["any_of"])
                hits += ok
                if args.verbose or not ok:
                    fact = "right fact" if right else ("other fact" if own else "no fact")
                    print(f"  {'HIT ' if ok else 'miss'} ({fact}) {q['question']!r} -> {text[:100]!r}")
            print(f"{name}: {hits}/{len(questions)}")
            total += hits
            asked += len(questions)
    finally:
        server.stop()
    print(f"all: {total}/{asked} (opening {'off' if args.no_opening else 'on'})")


if __name__ == "__main__":
    main()
