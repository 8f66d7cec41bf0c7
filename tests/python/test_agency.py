"""Memory agency through the native /v1/chat endpoint with the default model, one test per
gate of the Shannon-Prime seed: G-FORGET, G-DECIDE (supersede), G-MERGE, G-CONSOLIDATE (the
heartbeat turns a finished conversation into cells + a summary without any request),
G-CAPABILITIES; plus the heartbeat's null floor (off = nothing happens between turns) and
no-replay mode's token report."""
import json
import shutil
import tempfile
import time
import urllib.request

import pytest

from conftest import Server

TOKEN = "agency-admin-token"
IDLE_MS = 1500


def post(server, path, body):
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as res:
        return json.loads(res.read())


def admin_get(server, path):
    req = urllib.request.Request(server.url + path, headers={"authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read())


def say(server, session, text, history=(), max_tokens=24, **extra):
    messages = list(history) + [{"role": "user", "content": text}]
    return post(server, "/v1/chat", {"messages": messages, "session": session,
                                     "max_tokens": max_tokens, "temperature": 0, **extra})


def answer(reply):
    return reply["choices"][0]["message"]["content"]


def cells(server, subject=None):
    data = admin_get(server, "/v1/memory/cells")["data"]
    return [c for c in data if subject is None or c["subject"] == subject]


@pytest.fixture(scope="module")
def agency_server():
    data = tempfile.mkdtemp(prefix="engram-agency-")
    srv = Server(data, ["--admin-token", TOKEN, "--heartbeat-interval-ms", "200",
                        "--heartbeat-idle-ms", str(IDLE_MS)]).start()
    yield srv
    srv.stop()
    shutil.rmtree(data, ignore_errors=True)


def test_g_forget(agency_server):
    told = say(agency_server, "forget-1", "My locker code is 4417.")
    assert [c["value"] for c in told["memory"]["captured"]] == ["int:4417"]

    forgot = say(agency_server, "forget-2", "Please forget my locker code.")
    gone = forgot["memory"]["forgotten"]
    assert gone and {g["facet"] for g in gone} == {"locker_code"}, forgot["memory"]
    assert "token overlap" in gone[0]["reason"]
    assert gone[0]["decision"] is not None, "the forget is a logged decision"
    assert "4417" not in answer(forgot)
    assert "locker code" in answer(forgot).lower(), "the answer names what was forgotten"
    # Spoken to the user (the `opening` knob), not "The user's locker code is erased …".
    assert answer(forgot) == "I have forgotten your locker code.", answer(forgot)
    # Memory gives the whole answer, so the model is not run (the `direct` knob).
    assert forgot["memory"]["opening"] == answer(forgot) and forgot["memory"]["direct"]
    assert forgot["usage"]["prompt_tokens"] == 0, forgot["usage"]

    missed = say(agency_server, "forget-2b", "Forget my kite's flavour.")
    assert not missed["memory"]["forgotten"]
    assert answer(missed).startswith("I have nothing stored"), answer(missed)

    asked = say(agency_server, "forget-3", "What is my locker code?")
    assert "4417" not in answer(asked)
    assert not [m for m in asked["memory"]["recalled"] if "4417" in m["text"]]
    assert not [c for c in cells(agency_server) if "4417" in c["text"]]
    assert admin_get(agency_server, "/v1/memory/verify")["ok"]


def test_g_forget_paraphrase(agency_server):
    say(agency_server, "forget-4", "I live in Lisbon.")
    # The request names neither the facet nor the value: its content word matches.
    forgot = say(agency_server, "forget-5", "Forget where I live")
    gone = forgot["memory"]["forgotten"]
    assert gone and gone[0]["facet"] == "city", forgot["memory"]
    assert not [c for c in cells(agency_server, "user") if c["facet"] == "city"]


def test_g_decide(agency_server):
    say(agency_server, "decide-1", "My build box's IP is 10.0.0.7")
    changed = say(agency_server, "decide-2", "Actually my build box's IP address is 10.0.0.9")
    captured = changed["memory"]["captured"]
    assert len(captured) == 1, changed["memory"]
    fact = captured[0]
    assert (fact["subject"], fact["facet"]) == ("user.build_box", "ip"), fact
    assert "Superseded" in fact["outcome"]
    assert fact["decision"]["op"] == "supersede"
    assert "cannot both be true" in fact["decision"]["reason"]
    # The statement's own κ stays out of the memory state: the old value is what it replaces.
    assert "10.0.0.7" not in answer(changed), changed
    assert not [m for m in changed["memory"]["recalled"] if m["in_prompt"]], changed["memory"]
    versions = admin_get(agency_server,
                         "/v1/memory/history?subject=user.build_box&facet=ip")["data"]
    assert [v["value"] for v in versions] == ["ip:10.0.0.7", "ip:10.0.0.9"]

    asked = say(agency_server, "decide-3", "What is my build box's IP?")
    text = answer(asked)
    assert "10.0.0.9" in text and "10.0.0.7" not in text, asked


def test_questions_that_name_a_facet_in_other_words_reach_it(agency_server):
    # "Where do I work?" names neither `employer` nor the value: its cue word routes it.
    say(agency_server, "cue-1", "I work at Acme Robotics.")
    asked = say(agency_server, "cue-2", "Where do I work?")
    shown = [m["rendered"] for m in asked["memory"]["recalled"] if m["in_prompt"]]
    assert shown == ["The user works at Acme Robotics."], asked["memory"]
    assert "acme" in answer(asked).lower(), asked


def test_g_merge(agency_server):
    say(agency_server, "merge-1", "My hobbies are chess.")
    merged = say(agency_server, "merge-2", "My hobbies are also hiking.")
    fact = merged["memory"]["captured"][0]
    assert fact["decision"]["op"] == "merge", merged["memory"]
    assert fact["value"] == "chess and hiking"
    [cell] = [c for c in cells(agency_server, "user") if c["facet"] == "hobbies"]
    assert "chess and hiking" in cell["text"]

    asked = say(agency_server, "merge-3", "What are my hobbies?")
    # The judge's token overlap rejects a two-valued statement; the store routes the query
    # to its κ, so the synthesis is part of the memory state the model sees.
    in_prompt = [m["text"] for m in asked["memory"]["recalled"] if m["in_prompt"]]
    assert any("chess and hiking" in t for t in in_prompt), asked["memory"]
    text = answer(asked).lower()
    assert "chess" in text or "hiking" in text, text


def test_g_consolidate(agency_server):
    quiet = {"recall": False, "capture": False, "consolidate": True}
    first = say(agency_server, "consolidate-1", "My bike's colour is teal.", memory=quiet)
    history = [{"role": "user", "content": "My bike's colour is teal."},
               {"role": "assistant", "content": answer(first)}]
    say(agency_server, "consolidate-1", "My bike's brand is Brompton.", history, memory=quiet)
    assert not cells(agency_server, "user.bike"), "capture was off: nothing yet"
    before = admin_get(agency_server, "/v1/memory/verify")["conversations"]

    # No request from here on: only the heartbeat can write.
    deadline = time.time() + 60
    while time.time() < deadline:
        bike = {c["facet"]: c["value"] for c in cells(agency_server, "user.bike")}
        stored = admin_get(agency_server, "/v1/memory/verify")["conversations"]
        if len(bike) == 2 and stored > before:
            break
        time.sleep(0.5)
    assert bike == {"colour": "text:teal", "brand": "text:brompton"}, bike
    assert stored > before, "the transcript went to the long tier"

    # The gist is recallable from chat, and the full transcript on demand.
    gist = say(agency_server, "consolidate-2", "What did we talk about regarding my bike?",
               memory={"recall": True})
    convs = gist["memory"]["conversations"]
    assert convs and "bike" in convs[0]["summary"], gist["memory"]
    assert not convs[0]["full"]
    full = say(agency_server, "consolidate-3",
               "What exactly did I say about my bike in that conversation?",
               memory={"recall": True})
    assert full["memory"]["conversations"][0]["full"]

    # Only a relevant gist reaches the prompt: a look-alike statement about another κ (the
    # same facet, another owner) recalls none; a question on the topic, or a reference to
    # earlier conversations, recalls the bike's.
    other = say(agency_server, "consolidate-4", "My kayak's colour is olive.",
                memory={"recall": True})
    assert other["memory"]["conversations"] == [], other["memory"]
    topic = say(agency_server, "consolidate-5", "What colour is my bike?",
                memory={"recall": True})
    assert any("bike" in c["summary"] for c in topic["memory"]["conversations"]), topic["memory"]
    earlier = say(agency_server, "consolidate-6", "What did we talk about earlier?",
                  memory={"recall": True})
    assert earlier["memory"]["conversations"], earlier["memory"]


# Questions to the assistant and what the answer must draw from the corpus. Before the
# capability fact was framed as the answer and the reply opened with its first words, the
# default model answered 0 of 9 such questions from it ("I'm a helpful AI named SmolLM").
CAPABILITY_QUESTIONS = [
    ("What can you do?", "remember facts you tell me"),
    ("Which endpoints do you have?", "/v1/chat"),
    ("What does your heartbeat do?", "consolidates"),
    ("How do I make you forget something?", "forget"),
]


@pytest.mark.parametrize("question,expected", CAPABILITY_QUESTIONS)
def test_g_capabilities(agency_server, question, expected):
    session = "caps-" + "".join(c for c in question if c.isalnum())[:24]
    asked = say(agency_server, session, question, max_tokens=48)
    own = [m for m in asked["memory"]["recalled"] if m.get("capability")]
    assert len(own) == 1, asked["memory"]
    assert expected in own[0]["text"], own
    assert expected in answer(asked), answer(asked)
    # The reply opens with the fact's first words, and the report says so.
    opening = asked["memory"]["opening"]
    assert opening and own[0]["text"].startswith(opening), asked["memory"]
    assert answer(asked).startswith(opening)


def test_capabilities_stay_out_of_questions_about_the_user(agency_server):
    mine = say(agency_server, "caps-mine", "What is my favourite tea?")
    assert not [m for m in mine["memory"]["recalled"] if m.get("capability")]
    # Nothing about the user's tea either: the answer says so (`abstain`), not a capability.
    assert mine["memory"]["abstained"] == "I have no memory of your favourite tea."
    assert mine["memory"]["opening"] == "I have no memory of your favourite tea."
    assert mine["memory"]["direct"] and answer(mine) == mine["memory"]["opening"]
    said = say(agency_server, "caps-own-1", "My kayak's name is Petrel.", max_tokens=8)
    assert said["memory"]["opening"] == "Noted.", said["memory"]
    asked = say(agency_server, "caps-own-2", "Do you know what my kayak's name is?")
    assert not [m for m in asked["memory"]["recalled"] if m.get("capability")]
    assert "Petrel" in answer(asked), answer(asked)
    # A personal question to the assistant is not a capability question: the model answers.
    for i, question in enumerate(("Do you like me?", "Do you like music?", "How old are you?")):
        personal = say(agency_server, f"caps-personal-{i}", question, max_tokens=8)
        assert not [m for m in personal["memory"]["recalled"] if m.get("capability")], question
        assert not personal["memory"].get("opening"), (question, personal["memory"])


def test_answer_opening_streams_and_off_changes_only_the_opening(agency_server):
    question = [{"role": "user", "content": "What are your plugins?"}]
    body = {"messages": question, "max_tokens": 32, "temperature": 0}
    knobs = {"recall": True, "capture": True, "consolidate": True}
    on = post(agency_server, "/v1/chat", {**body, "session": "open-1", "memory": knobs})
    off = post(agency_server, "/v1/chat", {**body, "session": "open-2",
                                           "memory": {**knobs, "opening": False}})
    opening = on["memory"]["opening"]
    assert opening and answer(on).startswith(opening), on["memory"]
    assert off["memory"]["opening"] is None
    # Off, the prompt is the same but for the opening's few tokens (three words).
    assert 1 <= on["usage"]["prompt_tokens"] - off["usage"]["prompt_tokens"] <= 6, (on, off)
    # The same memories went into both prompts (scores move with recency, between calls).
    chosen = lambda reply: [(m["id"], m["in_prompt"]) for m in reply["memory"]["recalled"]]
    assert chosen(on) == chosen(off)
    streamed = streamed_text(agency_server, {**body, "session": "open-3", "memory": knobs})
    assert streamed == answer(on), (streamed, answer(on))


def test_answers_about_the_users_facts_open_in_the_second_person(agency_server):
    say(agency_server, "yours-1", "My canoe's colour is ochre.", max_tokens=8)
    question = "What colour is my canoe?"
    knobs = {"recall": True, "capture": True}
    on = say(agency_server, "yours-2", question, memory=knobs)
    off = say(agency_server, "yours-3", question, memory={**knobs, "opening": False})
    # The memory block speaks of "the user"; without the opening the default model said
    # "The user's canoe's colour is ochre." to the user.
    assert on["memory"]["opening"] == "Your canoe's", on["memory"]
    assert answer(on).startswith("Your canoe's") and "ochre" in answer(on), answer(on)
    assert off["memory"]["opening"] is None
    assert not answer(off).startswith("Your canoe's"), answer(off)
    chosen = lambda reply: [(m["id"], m["in_prompt"]) for m in reply["memory"]["recalled"]]
    assert chosen(on) == chosen(off)
    # On, the prompt gains the opening (3 tokens) and its memory line trades the conditional
    # instruction for the shorter "Answer with it." (7 tokens fewer).
    assert -7 <= on["usage"]["prompt_tokens"] - off["usage"]["prompt_tokens"] <= -1, (on, off)


def test_a_plain_statement_is_acknowledged(agency_server):
    knobs = {"recall": True, "capture": True}
    said = say(agency_server, "noted-1", "My scooter's plate is QX-5521.", memory=knobs)
    # The default model answered such statements "I'm sorry for your loss."
    assert said["memory"]["opening"] == "Noted.", said["memory"]
    assert answer(said).startswith("Noted."), answer(said)
    assert any(f["value"] == "QX-5521" for f in said["memory"]["captured"]), said["memory"]
    off = say(agency_server, "noted-2", "My scooter's colour is mint.",
              memory={**knobs, "opening": False})
    assert off["memory"]["opening"] is None and not answer(off).startswith("Noted."), off
    # A statement that also asks for something gets the model's own answer.
    mixed = say(agency_server, "noted-3",
                "My scooter's charger is a C7. Write me a reminder to pack it.", memory=knobs)
    assert mixed["memory"]["opening"] is None, mixed["memory"]


DIRECT_TURNS = [
    # (session, text): a plain statement, a forget, an abstention, a forget with no match.
    ("direct-a", "My sled's colour is amber."),
    ("direct-b", "Forget my sled's colour."),
    ("direct-c", "What is my glider's tail number?"),
    ("direct-d", "Forget my kite's flavour."),
]


def test_direct_replies_skip_the_model_and_off_changes_only_that(agency_server):
    knobs = {"recall": True, "capture": True}
    for suffix, direct in [("on", True), ("off", False)]:
        replies = []
        for session, text in DIRECT_TURNS:
            replies.append(say(agency_server, f"{session}-{suffix}", text, max_tokens=32,
                               memory={**knobs, "direct": direct}))
        if direct:
            on = replies
            for reply in on:
                assert reply["memory"]["direct"], reply["memory"]
                assert reply["usage"]["prompt_tokens"] == 0, reply["usage"]
                assert reply["usage"]["completion_tokens"] == 0, reply["usage"]
                assert answer(reply) == reply["memory"]["opening"], reply
                assert reply["choices"][0]["finish_reason"] == "stop"
        else:
            off = replies
    for got, run in zip(on, off):
        # Off, the model is run from the statement's first words; what memory did is alike.
        assert not run["memory"]["direct"], run["memory"]
        assert run["usage"]["prompt_tokens"] > 20, run["usage"]
        assert got["memory"]["opening"].startswith(run["memory"]["opening"]), (got, run)
        assert [c["value"] for c in got["memory"]["captured"]] == \
            [c["value"] for c in run["memory"]["captured"]]
    assert [g["facet"] for g in on[1]["memory"]["forgotten"]] == ["colour"], on[1]["memory"]
    assert answer(on[1]) == "I have forgotten your sled's colour."
    # Off, the model goes on from the opening, and not always to the same words: here, with
    # no system prompt, "Noted." went on "I'm sorry for any misunderstanding. …".
    assert all(answer(r).startswith(r["memory"]["opening"]) for r in off), \
        [answer(r) for r in off]
    # Streamed: one delta, the same text.
    body = {"messages": [{"role": "user", "content": "What is my glider's tail number?"}],
            "max_tokens": 32, "temperature": 0, "session": "direct-stream", "memory": knobs}
    assert streamed_text(agency_server, body) == answer(on[2])


def test_a_fact_memory_does_not_hold_is_answered_as_unknown(agency_server):
    knobs = {"recall": True, "capture": True}
    question = "What is my yacht's mooring number?"
    # Never told: the default model answered such questions with an invented value.
    on = say(agency_server, "unknown-1", question, memory=knobs)
    assert on["memory"]["abstained"] == "I have no memory of your yacht's mooring number."
    assert answer(on).startswith("I have no memory of your yacht's mooring number"), answer(on)
    off = say(agency_server, "unknown-2", question, memory={**knobs, "abstain": False})
    assert off["memory"]["abstained"] is None
    assert "no memory" not in answer(off), answer(off)
    # The abstention is the whole answer: not run through the model unless `direct` is off,
    # where its prompt carries the statement.
    assert on["memory"]["direct"] and on["usage"]["prompt_tokens"] == 0, on
    prompted = say(agency_server, "unknown-2b", question, memory={**knobs, "direct": False})
    assert prompted["memory"]["opening"] == "I have no", prompted["memory"]
    assert prompted["usage"]["prompt_tokens"] > off["usage"]["prompt_tokens"] + 10
    # Said earlier in the conversation in words capture does not read: no abstention.
    history = [{"role": "user", "content": "The yacht I keep sits at mooring number 41."},
               {"role": "assistant", "content": "Noted."}]
    told = say(agency_server, "unknown-3", question, history, memory=knobs)
    assert told["memory"]["abstained"] is None, told["memory"]
    # Forgotten on request: the answer says why it no longer knows.
    say(agency_server, "unknown-4", "My kite's colour is crimson.", max_tokens=8, memory=knobs)
    say(agency_server, "unknown-5", "Forget my kite's colour.", max_tokens=16, memory=knobs)
    gone = say(agency_server, "unknown-6", "What is my kite's colour?", memory=knobs)
    assert gone["memory"]["abstained"] == \
        "I no longer know your kite's colour: you asked me to forget it.", gone["memory"]
    assert "crimson" not in answer(gone) and answer(gone).startswith("I no longer"), answer(gone)


def test_no_replay_reports_its_token_cost(agency_server):
    history = []
    for text in ["My car's plate is KX-2291.", "My gym's name is Ironworks.",
                 "My dentist's name is Dr. Amaral."]:
        reply = say(agency_server, "noreplay-1", text, history, max_tokens=8,
                    memory={"recall": True, "capture": True, "no_replay": True})
        history += [{"role": "user", "content": text},
                    {"role": "assistant", "content": answer(reply)}]
    asked = say(agency_server, "noreplay-1", "What is my car's plate?", history,
                memory={"recall": True, "capture": True, "no_replay": True})
    tokens = asked["memory"]["tokens"]
    assert tokens["prompt_tokens"] == asked["usage"]["prompt_tokens"]
    assert tokens["prompt_tokens"] < tokens["replay_prompt_tokens"], tokens
    assert "KX-2291" in answer(asked), asked
    replayed = say(agency_server, "noreplay-2", "What is my car's plate?", history)
    assert replayed["memory"]["tokens"] is None, "replay is the default"


def test_heartbeat_off_is_a_no_op(fresh_data_dir):
    server = Server(fresh_data_dir, ["--admin-token", TOKEN]).start()
    try:
        say(server, "off-1", "My boat's name is Aurora.",
            memory={"recall": False, "capture": False, "consolidate": True})
        time.sleep(2 * IDLE_MS / 1000)
        assert admin_get(server, "/v1/memory/verify")["conversations"] == 0
        assert not cells(server, "user.boat")
    finally:
        server.stop()


# Facts whose answers the default model followed with a copy of the memory state's
# instruction ("… is 40187. If the user asks about it, answer with it") before the answers
# stopped where an instruction begins (16 of 96 such questions in a probe, 0 after).
ECHOED = [("My cat's ip is 10.1.34.232.", "Remind me of my cat's ip?", "10.1.34.232"),
          ("My drone's ip is 10.1.34.232.", "Do you know my drone's ip?", "10.1.34.232"),
          ("My project's tag is SN-11998.", "Tell me my project's tag.", "SN-11998"),
          ("My server's code is 40187.", "Tell me my server's code.", "40187")]


@pytest.mark.parametrize("stated,question,value", ECHOED)
def test_answers_never_show_the_memory_instruction(agency_server, stated, question, value):
    knobs = {"recall": True, "capture": True, "no_replay": True}
    session = "echo-" + "".join(c for c in value if c.isalnum())
    say(agency_server, session, stated, max_tokens=8, memory=knobs)
    for stream in (False, True):
        body = {"messages": [{"role": "user", "content": question}], "session": session,
                "max_tokens": 24, "temperature": 0, "memory": knobs}
        if stream:
            text = streamed_text(agency_server, body)
        else:
            text = answer(post(agency_server, "/v1/chat", body))
        assert value.lower() in text.lower(), text
        assert "if the user" not in text.lower(), text
        assert not text.endswith(" "), repr(text)


def streamed_text(server, body):
    """The content deltas of a streamed /v1/chat answer, joined."""
    req = urllib.request.Request(server.url + "/v1/chat",
                                 data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"content-type": "application/json"})
    text = ""
    with urllib.request.urlopen(req, timeout=300) as res:
        for raw in res:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[len("data: "):])
            if event.get("choices"):
                text += event["choices"][0].get("delta", {}).get("content") or ""
    return text


def test_value_anchoring_keeps_a_begun_value_exact_and_off_changes_nothing(agency_server):
    # Without a system prompt the default model copied "sable52@example." and went on with
    # "com" on 12 of 12 such questions in a probe; anchored, it continues the stored value.
    say(agency_server, "anchor-1", "My cat's contact is sable52@example.org.", max_tokens=8)
    question = [{"role": "user", "content": "What is my cat's contact?"}]
    body = {"messages": question, "max_tokens": 24, "temperature": 0}
    # Without the answer opening ("Your cat's …"), which alone got this value right.
    knobs = {"recall": True, "capture": True, "consolidate": True, "opening": False}
    on = post(agency_server, "/v1/chat", {**body, "session": "anchor-2", "memory": knobs})
    off = post(agency_server, "/v1/chat", {**body, "session": "anchor-3",
                                           "memory": {**knobs, "anchor": False}})
    assert "sable52@example.org" in answer(on), answer(on)
    assert "sable52@example.org" not in answer(off), answer(off)
    # The prompts were the same: only the choice of tokens inside the value differs, and the
    # report says how many tokens anchoring chose.
    assert on["usage"]["prompt_tokens"] == off["usage"]["prompt_tokens"]
    assert on["memory"]["anchored_tokens"] >= 1 and off["memory"]["anchored_tokens"] == 0
    prefix = answer(off).split("sable52@example.")[0]
    assert answer(on).startswith(prefix + "sable52@example.org"), (answer(on), answer(off))
