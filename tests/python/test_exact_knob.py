"""The per-request exact knob: `"exact": true|false` in a chat request picks the arithmetic of
that turn, equal to a server started in that mode, with its own KV cache."""
import json
import shutil
import tempfile
import urllib.error
import urllib.request

import openai
import pytest

from conftest import Server

PROMPTS = [
    "Name three colours.",
    "What is the capital of France?",
    "Write one sentence about the sea.",
]


@pytest.fixture(scope="module")
def servers():
    dirs = [tempfile.mkdtemp(prefix="engram-test-") for _ in range(2)]
    float_server = Server(dirs[0], ["--no-memory"]).start()
    exact_server = Server(dirs[1], ["--no-memory", "--exact"]).start()
    yield float_server, exact_server
    for srv in (float_server, exact_server):
        srv.stop()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def ask(server, prompt, exact=None, session=None, stream=False):
    body = {}
    if exact is not None:
        body["exact"] = exact
    if session is not None:
        body["session"] = session
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    return c.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=12,
        temperature=0,
        stream=stream,
        extra_body=body or None,
    )


def test_exact_request_equals_an_exact_server(servers):
    float_server, exact_server = servers
    for prompt in PROMPTS:
        per_request = ask(float_server, prompt, exact=True)
        server_wide = ask(exact_server, prompt)
        assert per_request.choices[0].message.content == server_wide.choices[0].message.content
        assert per_request.system_fingerprint == "engram-exact"
        assert server_wide.system_fingerprint == "engram-exact"


def test_float_request_on_an_exact_server_equals_a_float_server(servers):
    float_server, exact_server = servers
    for prompt in PROMPTS:
        per_request = ask(exact_server, prompt, exact=False)
        plain = ask(float_server, prompt)
        assert per_request.choices[0].message.content == plain.choices[0].message.content
        # Float turns carry no fingerprint, exactly as before the knob existed.
        assert per_request.system_fingerprint is None
        assert plain.system_fingerprint is None


def test_streamed_exact_chunks_say_so(servers):
    float_server, _ = servers
    chunks = list(ask(float_server, PROMPTS[0], exact=True, stream=True))
    assert chunks and all(c.system_fingerprint == "engram-exact" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ask(float_server, PROMPTS[0], exact=True).choices[0].message.content


def test_modes_keep_separate_kv_caches(servers):
    float_server, _ = servers
    first = ask(float_server, "Tell me about owls.", session="modes")
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    # Same session name, exact mode: nothing computed on the float path is reused.
    switched = ask(float_server, "Tell me about owls.", exact=True, session="modes")
    assert switched.usage.prompt_tokens_details.cached_tokens == 0
    # Back on the float path the float cache is still there.
    again = ask(float_server, "Tell me about owls.", session="modes")
    assert again.usage.prompt_tokens_details.cached_tokens > 0
    exact_again = ask(float_server, "Tell me about owls.", exact=True, session="modes")
    assert exact_again.usage.prompt_tokens_details.cached_tokens > 0
    assert exact_again.choices[0].message.content == switched.choices[0].message.content


def test_a_malformed_knob_is_a_clear_400(servers):
    float_server, _ = servers
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "exact": "yes"}).encode()
    req = urllib.request.Request(float_server.url + "/v1/chat/completions", data=body,
                                 headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=60)
    assert err.value.code == 400
    assert "exact" in err.value.read().decode()
