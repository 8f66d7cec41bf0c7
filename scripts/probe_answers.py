#!/usr/bin/env python3
"""Probe how the default model words answers about the user's own facts.

Starts a real `engram serve` (the release build) with a fresh data folder. For each of
12 owners x 8 facets, in its own session: one turn states the fact ("My bike's lock code is
4417."), then a question about it (six question forms) is asked twice, greedy, 24 tokens:
replaying that turn (the default chat path) and in no-replay mode. Counted per answer: it
holds the value; it speaks to the user ("Your …", "You …"); it speaks of "the user" (the
memory block's third person, copied). Then a question about a facet never stated ("What is
my bike's serial number?") is asked the same two ways; counted: the answer says memory does
not hold it. Last, in a session of its own, the fact is forgotten (three forms: "Forget my
bike's lock code."); counted: the answer names what was erased (owner and facet), speaks to
the user, speaks of "the user", repeats the value. `--no-opening` / `--no-abstain` turn the
`memory.opening` / `memory.abstain` knobs off.

    .venv/bin/python scripts/probe_answers.py [--no-opening] [--no-abstain] [--verbose]
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

SYSTEM = "You are Engram. Answer in one short sentence, using the facts you remember."
OWNERS = ["server", "laptop", "router", "bike", "car", "printer", "phone", "cat", "sister",
          "office", "boat", "garage"]
FACETS = [("ip", "10.0.{i}.7"), ("password", "hunter{i}"), ("color", ["teal", "ochre", "navy"]),
          ("name", ["Rex", "Petrel", "Bluebird"]), ("lock code", "44{i}"),
          ("email", "box{i}@example.org"), ("model", "LX-{i}0"),
          ("location", ["Porto", "Oslo", "Kyoto"])]
STATEMENTS = ["My {o}'s {f} is {v}.", "The {f} of my {o} is {v}.", "FYI my {o}'s {f} is {v}."]
# A facet no statement names, and how an answer says memory does not hold it.
UNSTATED = "serial number"
ABSTAINED = ["no memory", "don't know", "do not know", "not sure", "don't have"]
QUESTIONS = ["What is my {o}'s {f}?", "What's the {f} of my {o}?", "Remind me of my {o}'s {f}?",
             "Tell me my {o}'s {f}.", "Do you know my {o}'s {f}?", "What {f} does my {o} have?"]
FORGETS = ["Forget my {o}'s {f}.", "Please forget my {o}'s {f}", "Forget the {f} of my {o}."]


def value(template, i):
    return template[i % len(template)] if isinstance(template, list) else template.format(i=i)


def chat(server, session, messages, memory):
    body = {"messages": [{"role": "system", "content": SYSTEM}] + messages, "session": session,
            "max_tokens": 24, "temperature": 0, "memory": memory}
    req = urllib.request.Request(server.url + "/v1/chat", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as res:
        return json.loads(res.read())["choices"][0]["message"]["content"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-opening", action="store_true")
    parser.add_argument("--no-abstain", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    memory = {"recall": True, "capture": True, "opening": not args.no_opening,
              "abstain": not args.no_abstain}
    counts = {mode: {"value": 0, "to the user": 0, "of the user": 0, "unknown said": 0,
                     "asked": 0}
              for mode in ("replay", "no-replay")}
    forgets = {"named": 0, "to the user": 0, "of the user": 0, "value repeated": 0, "asked": 0}
    server = Server(tempfile.mkdtemp(prefix="engram-answerprobe-")).start()
    try:
        i = 0
        for owner in OWNERS:
            for facet, template in FACETS:
                v = value(template, i)
                stated = STATEMENTS[i % len(STATEMENTS)].format(o=owner, f=facet, v=v)
                question = QUESTIONS[i % len(QUESTIONS)].format(o=owner, f=facet)
                session = f"probe-{i}"
                reply = chat(server, session, [{"role": "user", "content": stated}], memory)
                history = [{"role": "user", "content": stated},
                           {"role": "assistant", "content": reply}]
                for mode in counts:
                    knobs = {**memory, "no_replay": mode == "no-replay"}
                    text = chat(server, f"{session}-{mode}",
                                history + [{"role": "user", "content": question}], knobs)
                    c = counts[mode]
                    c["asked"] += 1
                    has_value = v.lower() in text.lower()
                    to_user = text.startswith(("Your ", "You "))
                    c["value"] += has_value
                    c["to the user"] += to_user
                    c["of the user"] += "the user" in text.lower()
                    if args.verbose or not has_value or not to_user:
                        print(f"  {mode}: {question!r} -> {text!r}")
                    unknown = QUESTIONS[(i + 1) % len(QUESTIONS)].format(o=owner, f=UNSTATED)
                    text = chat(server, f"{session}-{mode}-unknown",
                                history + [{"role": "user", "content": unknown}], knobs)
                    said = any(m in text.lower() for m in ABSTAINED)
                    c["unknown said"] += said
                    if args.verbose or not said:
                        print(f"  {mode}: {unknown!r} -> {text!r}")
                forget = FORGETS[i % len(FORGETS)].format(o=owner, f=facet)
                text = chat(server, f"{session}-forget", [{"role": "user", "content": forget}],
                            memory)
                lower = text.lower()
                named = owner in lower and facet in lower
                third_person = "the user" in lower
                forgets["asked"] += 1
                forgets["named"] += named
                forgets["to the user"] += "your " in lower
                forgets["of the user"] += third_person
                forgets["value repeated"] += v.lower() in lower
                if args.verbose or not named or third_person:
                    print(f"  forget: {forget!r} -> {text!r}")
                i += 1
    finally:
        server.stop()
    knobs = ", ".join(f"{k} {'on' if memory[k] else 'off'}" for k in ("opening", "abstain"))
    for mode, c in [*counts.items(), ("forget", forgets)]:
        n = c.pop("asked")
        print(f"{mode} ({knobs}): " + ", ".join(f"{k} {v}/{n}" for k, v in c.items()))


if __name__ == "__main__":
    main()
