#!/usr/bin/env python3
"""Probe how memory captures and answers everyday statements.

Starts a real `engram serve` (the release build) with a fresh data folder and, for each item
of `tests/fixtures/everyday-facts.json`, says its statement ("I'm allergic to shellfish.")
and then asks its question ("Do I have any allergies?"), each in a session of its own,
greedy, 32 tokens. Counted per item: the statement was captured (`memory.captured` is not
empty) and the answer holds the expected value. `--verbose` prints every item.

    .venv/bin/python scripts/probe_everyday.py [--verbose]
"""
import argparse
import json
import pathlib
import sys
import tempfile
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from conftest import Server  # noqa: E402


def chat(server, session, text):
    body = {"messages": [{"role": "user", "content": text}], "session": session,
            "max_tokens": 32, "temperature": 0,
            "memory": {"recall": True, "capture": True}}
    req = urllib.request.Request(server.url + "/v1/chat", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as res:
        return json.loads(res.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    items = json.loads((ROOT / "tests/fixtures/everyday-facts.json").read_text())["items"]
    server = Server(tempfile.mkdtemp(prefix="engram-everyday-")).start()
    captured = answered = 0
    try:
        for i, item in enumerate(items):
            said = chat(server, f"say-{i}", item["say"])
            took = said["memory"].get("captured") or []
            reply = chat(server, f"ask-{i}", item["ask"])
            text = reply["choices"][0]["message"]["content"]
            hit = item["expect"].lower() in text.lower()
            captured += bool(took)
            answered += hit
            if args.verbose or not hit:
                facts = [(c["subject"], c["facet"], c["value"]) for c in took]
                mark = "hit " if hit else "miss"
                print(f"  {mark} {item['say']!r} {facts} / {item['ask']!r} -> {text[:100]!r}")
    finally:
        server.stop()
    n = len(items)
    print(f"captured {captured}/{n}, answered with the value {answered}/{n}")


if __name__ == "__main__":
    main()
