"""Memory-informed turns through the native /v1/chat endpoint (issue 6's scenario): facts
captured in one session are recalled (and judged) in another after a restart, a correction
supersedes the old value while history keeps both, and "forget" erases it."""
import json
import shutil
import tempfile
import urllib.request

import pytest

from conftest import Server

TOKEN = "test-admin-token"


def post(server, path, body):
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as res:
        return json.loads(res.read())


def admin_get(server, path):
    req = urllib.request.Request(server.url + path, headers={"authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read())


def say(server, session, text, history=(), **extra):
    messages = list(history) + [{"role": "user", "content": text}]
    return post(server, "/v1/chat", {"messages": messages, "session": session, "max_tokens": 24,
                                     "temperature": 0, **extra})


@pytest.fixture(scope="module")
def data_dir():
    path = tempfile.mkdtemp(prefix="engram-memory-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_memory_across_sessions_restart_correction_and_forget(data_dir):
    first = Server(data_dir, ["--admin-token", TOKEN]).start()
    try:
        told = say(first, "A", "My server's IP is 10.0.0.7")
        assert [c["value"] for c in told["memory"]["captured"]] == ["ip:10.0.0.7"]
        lives = say(first, "A", "I live in Lisbon")
        assert [c["facet"] for c in lives["memory"]["captured"]] == ["city"]
    finally:
        first.stop()

    server = Server(data_dir, ["--admin-token", TOKEN]).start()
    try:
        asked = say(server, "B", "What is my server's IP?")
        assert "10.0.0.7" in asked["choices"][0]["message"]["content"], asked
        recalled = [m for m in asked["memory"]["recalled"] if m["accepted"]]
        assert recalled and "10.0.0.7" in recalled[0]["text"]
        assert recalled[0]["evidence"], "the judge gives its evidence"
        calls = {p["call"]: p for p in asked["memory"]["plugins"]}
        assert calls["judge"]["plugin"] == "judge-jaccard"
        assert calls["recall-policy"]["plugin"] == "recall-concert"

        history = [{"role": "user", "content": "What is my server's IP?"},
                   {"role": "assistant", "content": asked["choices"][0]["message"]["content"]}]
        corrected = say(server, "B", "Actually it's 10.0.0.9", history)
        assert [c["value"] for c in corrected["memory"]["captured"]] == ["10.0.0.9"]
        assert "Superseded" in corrected["memory"]["captured"][0]["outcome"]

        again = say(server, "C", "What is my server's IP?")
        answer = again["choices"][0]["message"]["content"]
        assert "10.0.0.9" in answer and "10.0.0.7" not in answer, again
        versions = admin_get(server, "/v1/memory/history?subject=user.server&facet=ip")["data"]
        assert [v["value"] for v in versions] == ["ip:10.0.0.7", "ip:10.0.0.9"]
        assert versions[0]["valid_to_us"] is not None and versions[1]["valid_to_us"] is None

        forgot = say(server, "D", "Forget my server's IP")
        assert len(forgot["memory"]["forgotten"]) == 2  # both versions erased
        after = say(server, "E", "What is my server's IP?")
        assert "10.0.0.9" not in after["choices"][0]["message"]["content"]
        assert not [m for m in after["memory"]["recalled"] if "10.0.0" in m["text"]]
        assert admin_get(server, "/v1/memory/verify")["ok"] is True
        # Lisbon is untouched by forgetting the IP (the seeded capabilities corpus aside).
        cells = [c for c in admin_get(server, "/v1/memory/cells")["data"]
                 if c["subject"] != "engram"]
        assert [c["facet"] for c in cells] == ["city"]
    finally:
        server.stop()


def test_memory_knobs_off_is_the_plain_engine(data_dir):
    """Null floor: with every memory knob off the native endpoint's answer is byte-identical
    to a server started with --no-memory (and to the OpenAI endpoint)."""
    prompt = [{"role": "user", "content": "Where do I live?"}]
    with_memory = Server(data_dir, ["--admin-token", TOKEN]).start()
    try:
        off = post(with_memory, "/v1/chat", {"messages": prompt, "max_tokens": 20, "temperature": 0,
                                             "memory": {"recall": False, "capture": False}})
        on = post(with_memory, "/v1/chat", {"messages": prompt, "max_tokens": 20, "temperature": 0})
        openai_style = post(with_memory, "/v1/chat/completions",
                            {"messages": prompt, "max_tokens": 20, "temperature": 0})
    finally:
        with_memory.stop()
    plain_dir = tempfile.mkdtemp(prefix="engram-plain-")
    plain = Server(plain_dir, ["--no-memory"]).start()
    try:
        bare = post(plain, "/v1/chat/completions", {"messages": prompt, "max_tokens": 20, "temperature": 0})
    finally:
        plain.stop()
        shutil.rmtree(plain_dir, ignore_errors=True)
    text = lambda r: r["choices"][0]["message"]["content"]
    assert off["memory"]["enabled"] is False
    assert text(off) == text(bare) == text(openai_style)
    # With memory on, Lisbon (captured by the previous test) reaches the prompt.
    assert on["memory"]["enabled"] is True
    assert any("Lisbon" in m["text"] for m in on["memory"]["recalled"])


def test_admin_routes_need_the_token(data_dir):
    server = Server(data_dir, ["--admin-token", TOKEN]).start()
    try:
        for path in ("/v1/memory/cells", "/v1/memory/verify", "/v1/plugins"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(server.url + path, timeout=30)
            assert err.value.code == 401
            body = json.loads(err.value.read())
            assert body["error"]["type"] == "authentication_error"
        plugins = admin_get(server, "/v1/plugins")["data"]
        assert {p["kind"] for p in plugins} == {"judge", "recall-policy", "capture"}
    finally:
        server.stop()


def test_hot_swapping_the_judge_during_a_streaming_chat_interrupts_nothing(data_dir):
    import pathlib
    import threading

    component = pathlib.Path(__file__).resolve().parents[2] / \
        "plugins/target/wasm32-wasip2/release/judge_jaccard.wasm"
    server = Server(data_dir, ["--admin-token", TOKEN]).start()
    try:
        body = {"messages": [{"role": "user", "content": "Where do I live? Tell me a long story."}],
                "max_tokens": 48, "temperature": 0, "stream": True}
        chunks = []

        def stream():
            req = urllib.request.Request(server.url + "/v1/chat", data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as res:
                for line in res:
                    line = line.decode().strip()
                    if line.startswith("data: "):
                        chunks.append(line[6:])

        reader = threading.Thread(target=stream)
        reader.start()
        swaps = []
        while reader.is_alive() and len(swaps) < 5:
            req = urllib.request.Request(server.url + "/v1/plugins/judge", data=component.read_bytes(),
                                         method="PUT",
                                         headers={"authorization": f"Bearer {TOKEN}",
                                                  "content-type": "application/wasm",
                                                  "x-engram-plugin-name": f"judge-v{len(swaps) + 2}"})
            with urllib.request.urlopen(req, timeout=120) as res:
                swaps.append(json.loads(res.read()))
        reader.join(timeout=300)
        assert swaps, "the swap happened while the answer streamed"
        assert chunks[-1] == "[DONE]"
        events = [json.loads(c) for c in chunks[:-1]]
        finish = [e["choices"][0]["finish_reason"] for e in events if e.get("choices")]
        # The answer ends as a normal one does: at the token limit or at the model's own end
        # (the city stored earlier in this module is recalled, so it may answer briefly).
        assert finish[-1] in ("length", "stop"), finish
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
        assert text.strip()
        print("streamed answer:", text)
        plugins = admin_get(server, "/v1/plugins")["data"]
        judge = [p for p in plugins if p["kind"] == "judge"][0]
        assert judge["plugin"] == swaps[-1]["plugin"] and judge["swaps"] == len(swaps)
    finally:
        server.stop()
