"""1,000 malformed or hostile requests over raw sockets: each gets a 4xx with an OpenAI-style
error body (never a 5xx, never a hang), and afterwards the server still answers normally.

The cases are generated from a fixed seed, so every run sends the same requests.
"""
import json
import random
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Server

MAX_BODY = 64 * 1024
MAX_TOKENS_LIMIT = 512
TIMEOUT = 20.0  # seconds a refused request may take before we call it a hang
SEED = 20261123


@pytest.fixture(scope="module")
def small_server():
    data = tempfile.mkdtemp(prefix="engram-bad-input-")
    srv = Server(data, ["--max-body-bytes", str(MAX_BODY),
                        "--max-tokens-limit", str(MAX_TOKENS_LIMIT)]).start()
    yield srv
    srv.stop()
    shutil.rmtree(data, ignore_errors=True)


def address(server):
    parsed = urllib.parse.urlparse(server.url)
    return parsed.hostname, parsed.port


class Reply:
    """A parsed HTTP/1.1 response (or `status=None` when the server closed without one)."""

    def __init__(self, raw):
        self.raw = raw
        self.status = None
        self.headers = {}
        self.body = b""
        if not raw:
            return
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self.body = dechunk(body)
        else:
            self.body = body

    def json(self):
        return json.loads(self.body)


def dechunk(body):
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def send_raw(server, payload, timeout=TIMEOUT, half_close=False):
    """Send raw bytes, read until the server closes; a hang fails the test."""
    host, port = address(server)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse early (body too large) and close
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"server hung on {payload[:120]!r}")
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout as err:
                raise AssertionError(f"server hung on {payload[:120]!r}") from err
            if not data:
                break
            chunks.append(data)
    return Reply(b"".join(chunks))


def http(method, path, body=b"", headers=None, content_length=None):
    """Build one HTTP/1.1 request that asks the server to close afterwards."""
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close"]
    if body or method in ("POST", "PUT"):
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chat(body, **kw):
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    return http("POST", "/v1/chat/completions", body, **kw)


VALID = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

# Fields with values of the wrong type, and the `param` the error must name.
WRONG_TYPES = {
    "messages": ["hi", 3, True, {"role": "user"}],
    "stream": ["yes", 1, [], {}],
    "stream_options": ["x", 1, True],
    "stream_options.include_usage": ["yes", 2, {}],
    "max_tokens": ["many", 1.5, -5, True, [], 2 ** 40],
    "max_completion_tokens": ["many", -1, {}],
    "temperature": ["hot", [], {}, True],
    "top_p": ["x", [], True],
    "seed": ["abc", -1, 1.25, {}],
    "stop": [3, True, {"a": 1}, [1, 2]],
    "tools": ["search", 3, {"type": "function"}],
    "tool_choice": [3, True, "sometimes", {"type": "function"}],
    "n": ["two", -1, 1.5],
    "session": [7, True, ["a"], {}],
    "memory": ["on", 3, 2.5],
    "memory.recall": ["yes", 1],
    "memory.k": ["ten", -3],
    "messages[0].role": ["wizard", 3, None, {}],
    "messages[0].content": [3, True, {"text": "hi"}, [{"type": "image_url"}]],
    "messages[0].name": [3, []],
    "messages[0].tool_calls": ["x", 3],
}

# Values of the right type that are out of range (checked after parsing).
OUT_OF_RANGE = {
    "max_tokens": [0, MAX_TOKENS_LIMIT + 1, 100_000, 4_000_000],
    "max_completion_tokens": [0, MAX_TOKENS_LIMIT * 10],
    "temperature": [-1, -0.001, 2.5, 1e30],
    "top_p": [0, -0.5, 1.0001, 7],
    "n": [0, 2, 64],
    "messages": [[]],
    "stop": [["a", "b", "c", "d", "e"]],
}

BAD_SESSIONS = ["../../etc", "../../etc/passwd", "a/b", "/abs", ".hidden", "", "x y",
                "a" * 129, "name\u00e9", "semi;colon", "tab\there", "nul\u0000byte", "..",
                "%2e%2e%2fetc", "back\\slash", "new\nline"]


def with_field(path, value):
    body = json.loads(json.dumps(VALID))
    target = body
    parts = path.replace("[0]", ".0").split(".")
    for part in parts[:-1]:
        key = int(part) if part.isdigit() else part
        if isinstance(target, dict) and key not in target:
            target[key] = {}
        target = target[key]
    last = parts[-1]
    target[int(last) if last.isdigit() else last] = value
    return body


def generate_cases():
    """(name, request bytes, expected status or None for any 4xx, expected param or ...)."""
    rng = random.Random(SEED)
    cases = []
    valid = json.dumps(VALID)

    for field, values in WRONG_TYPES.items():
        for value in values:
            cases.append((f"wrong type {field}={value!r}", chat(with_field(field, value)), 400, field))
    for field, values in OUT_OF_RANGE.items():
        for value in values:
            cases.append((f"out of range {field}={value!r}", chat(with_field(field, value)), 400,
                          "max_tokens" if field == "max_completion_tokens" else field))
    for name in BAD_SESSIONS:
        cases.append((f"session {name!r}", chat(dict(VALID, session=name)), 400, "session"))
    for name in BAD_SESSIONS:
        if any(c in name for c in "\r\n\u0000\t") or not name.isascii() or not name:
            continue  # not representable as a header value
        cases.append((f"header session {name!r}",
                      chat(VALID, headers={"x-engram-session": name}), 400, "session"))
    # Non-finite and non-JSON numbers.
    for literal in ["NaN", "-NaN", "Infinity", "-Infinity", "1e999999", "0x10", "+1", ".5", "01"]:
        for field in ["temperature", "max_tokens", "top_p"]:
            body = '{"messages":[{"role":"user","content":"hi"}],"%s":%s}' % (field, literal)
            cases.append((f"number {field}={literal}", chat(body), 400, ...))
    # Not JSON, or JSON of the wrong shape.
    for body in ["", " ", "null", "true", "3", '"text"', "[]", "[{}]", "{}", "{", "}", "{]",
                 '{"messages": [}', "{'messages': []}", '{"messages": []} trailing',
                 '{"messages": [{"role": "user", "content": "hi"}]}{}', "\ufeff" + valid,
                 '{"messages": [{"role": "user", "content": "hi"]}', "<xml/>", "messages=hi"]:
        cases.append((f"not json {body[:30]!r}", chat(body), 400, ...))
    # Truncated bodies (a JSON prefix whose Content-Length matches what is sent).
    long_valid = json.dumps(dict(VALID, messages=[{"role": "user", "content": "tell me a story " * 8},
                                                  {"role": "assistant", "content": "once upon"},
                                                  {"role": "user", "content": "go on"}],
                                 temperature=0.5, stop=["\n\n"]))
    for _ in range(150):
        cut = rng.randrange(0, len(long_valid) - 1)
        cases.append((f"truncated at {cut}", chat(long_valid[:cut]), 400, ...))
    # Random bytes, and invalid UTF-8 inside otherwise valid JSON.
    for _ in range(100):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        cases.append((f"random bytes {junk[:8]!r}", chat(junk), 400, ...))
    for bad in [b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x28\x8c\xbc", b"\xed\xa0\x80", b"\xc0\xaf"]:
        for where in range(3):
            body = valid.encode()
            pos = body.index(b'"hi"') + 1 + where
            cases.append((f"invalid utf8 {bad!r}@{where}", chat(body[:pos] + bad + body[pos:]), 400, ...))
    # Deeply nested JSON, in a known field and in an ignored one.
    for depth in [200, 1_000, 10_000, 100_000]:
        nested = "[" * depth + "]" * depth
        # The deepest bodies are over the size limit (413); the others are refused as JSON (400).
        cases.append((f"nested messages {depth}", chat('{"messages": %s}' % nested), None, ...))
        objects = '{"a":' * depth + "1" + "}" * depth
        cases.append((f"nested objects {depth}", chat('{"messages": %s}' % objects), None, ...))
    # Bodies over the configured limit (declared honestly, and chunked without a length).
    for size in [MAX_BODY + 1, MAX_BODY * 2, MAX_BODY * 16]:
        big = json.dumps(dict(VALID, messages=[{"role": "user", "content": "x" * size}]))
        cases.append((f"body of {len(big)} bytes", chat(big), 413, ...))
    for size in [MAX_BODY + 1, MAX_BODY * 4]:
        big = json.dumps(dict(VALID, messages=[{"role": "user", "content": "y" * size}])).encode()
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        body = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 8192]), big[i:i + 8192])
                        for i in range(0, len(big), 8192)) + b"0\r\n\r\n"
        cases.append((f"chunked body of {len(big)} bytes", head + body, 413, ...))
    # Unknown routes and wrong methods.
    for _ in range(60):
        path = "/" + "/".join("".join(rng.choice("abcxyz019-_.%") for _ in range(rng.randrange(1, 9)))
                              for _ in range(rng.randrange(1, 4)))
        method = rng.choice(["GET", "POST", "DELETE"])
        cases.append((f"unknown route {method} {path}", http(method, "/v2" + path, b"{}"), 404, ...))
    for path in ["/../../etc/passwd", "/v1/chat/completions/extra", "/v1//chat", "/V1/models",
                 "/v1/sessions/../../etc", "/%2e%2e/%2e%2e/etc/passwd", "/v1/models/x"]:
        cases.append((f"unknown route {path}", http("GET", path), 404, ...))
    cases.append(("abort unknown id", http("POST", "/v1/abort/chatcmpl-nope"), 404, ...))
    cases.append(("abort traversal", http("POST", "/v1/abort/..%2F..%2Fetc"), 404, ...))
    # Random mutations of a valid body: flip, drop or duplicate characters until it breaks.
    while len(cases) < 1000:
        text = list(long_valid)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(text))
            op = rng.randrange(3)
            if op == 0:
                text[i] = rng.choice('{}[]":,\\x0-')
            elif op == 1:
                del text[i]
            else:
                text.insert(i, rng.choice('{}[]":,'))
        mutated = "".join(text)
        try:
            parsed = json.loads(mutated)
            # Still valid JSON: only keep it if its shape is certainly wrong.
            if isinstance(parsed, dict) and isinstance(parsed.get("messages"), list):
                continue
        except ValueError:
            pass
        cases.append((f"mutation {len(cases)}", chat(mutated), 400, ...))
    return cases


CASES = generate_cases()


def check_refusal(server, name, payload, status, param):
    reply = send_raw(server, payload)
    assert reply.status is not None, f"{name}: the server closed the connection without answering"
    assert 400 <= reply.status < 500, f"{name}: status {reply.status}: {reply.body[:300]!r}"
    if status is not None:
        assert reply.status == status, f"{name}: status {reply.status}, expected {status}: {reply.body[:300]!r}"
    try:
        body = reply.json()
    except ValueError as err:
        raise AssertionError(f"{name}: status {reply.status} without a JSON error body: {reply.body[:200]!r}") from err
    error = body.get("error")
    assert isinstance(error, dict), f"{name}: no `error` object in {body}"
    assert isinstance(error.get("message"), str) and error["message"], f"{name}: {body}"
    assert isinstance(error.get("type"), str) and error["type"], f"{name}: {body}"
    assert "param" in error, f"{name}: no `param` in {body}"
    if param is not ...:
        assert error["param"] == param, f"{name}: param {error['param']!r}, expected {param!r}: {error['message']}"
    return reply.status


def test_the_cases_are_deterministic_and_a_thousand():
    assert len(CASES) == 1000
    again = generate_cases()
    assert [c[1] for c in again] == [c[1] for c in CASES]


def test_a_thousand_hostile_requests_get_4xx_and_the_server_keeps_serving(small_server):
    failures = []
    statuses = {}
    # Two clients at a time: concurrency without turning the test into a load test.
    def one(case):
        try:
            status = check_refusal(small_server, *case)
            return None, status
        except AssertionError as err:
            return str(err), None

    with ThreadPoolExecutor(max_workers=4) as pool:
        for failure, status in pool.map(one, CASES):
            if failure:
                failures.append(failure)
            else:
                statuses[status] = statuses.get(status, 0) + 1
    assert not failures, f"{len(failures)} of {len(CASES)} cases failed:\n" + "\n".join(failures[:40])
    print("statuses:", statuses)
    assert_still_serves(small_server)
    assert_no_server_errors_counted(small_server)


WRONG_METHODS = [("GET", "/v1/chat/completions"), ("PUT", "/v1/chat/completions"),
                 ("DELETE", "/v1/chat/completions"), ("PATCH", "/v1/chat"), ("GET", "/v1/chat"),
                 ("POST", "/v1/models"), ("DELETE", "/v1/models"), ("POST", "/v1/metrics"),
                 ("PUT", "/"), ("POST", "/")]


@pytest.mark.parametrize("method,path", WRONG_METHODS)
def test_wrong_methods_get_405_with_an_openai_error_body(small_server, method, path):
    check_refusal(small_server, f"{method} {path}", http(method, path, b"{}"), 405, None)


def test_deeply_nested_ignored_fields_do_not_crash_the_server(small_server):
    # serde skips unknown fields without recursing, so these are valid requests: answered, and
    # the server survives them.
    for depth in [1_000, 10_000, 30_000]:
        nested = "[" * depth + "]" * depth
        body = '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"x":%s}' % nested
        reply = send_raw(small_server, chat(body))
        assert reply.status == 200, reply.raw[:300]
    assert_still_serves(small_server)


def test_truncated_body_with_a_longer_declared_length_does_not_hang(small_server):
    body = json.dumps(VALID).encode()
    payload = chat(body[:20], content_length=len(body))
    reply = send_raw(small_server, payload, half_close=True)
    # The client gave up mid-body: a 4xx or a closed connection are both fine, a 5xx is not.
    assert reply.status is None or 400 <= reply.status < 500, reply.raw[:300]
    assert_still_serves(small_server)


def test_slowloris_connections_do_not_block_other_clients(small_server):
    host, port = address(small_server)
    held = []
    try:
        for i in range(40):
            sock = socket.create_connection((host, port), timeout=TIMEOUT)
            # A request that never finishes: headers trickle in and stop.
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Le")
            held.append(sock)
        for sock in held[:20]:
            sock.sendall(b"ngth: 100\r\n\r\n{\"messages\":")  # a body that never completes
        # Meanwhile, other clients are answered promptly.
        for _ in range(5):
            reply = send_raw(small_server, http("GET", "/v1/models"), timeout=10)
            assert reply.status == 200
        assert_still_serves(small_server)
    finally:
        for sock in held:
            sock.close()


def test_many_concurrent_connections_are_all_answered(small_server):
    bodies = [chat(with_field("max_tokens", -i)) for i in range(1, 201)]
    with ThreadPoolExecutor(max_workers=64) as pool:
        replies = list(pool.map(lambda payload: send_raw(small_server, payload), bodies))
    statuses = [r.status for r in replies]
    assert statuses == [400] * len(bodies), sorted(set(map(str, statuses)))
    assert all(r.json()["error"]["param"] == "max_tokens" for r in replies)
    assert_still_serves(small_server)


def test_unknown_but_valid_session_names_start_a_fresh_session(small_server):
    for name in ["never-seen-before", "x" * 128, "a.b_c-D"]:
        reply = send_raw(small_server, chat(dict(VALID, session=name, max_tokens=2, temperature=0)))
        assert reply.status == 200, reply.body[:300]
        body = reply.json()
        assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
        assert body.get("session") == name


def test_stop_strings_around_multibyte_text_are_answered(small_server):
    # Portuguese answers hold multi-byte characters; stop strings longer than one character,
    # or made of multi-byte ones, once sliced the streamed text inside a character (a 500).
    prompt = [{"role": "user", "content": "Escreve uma frase em português sobre a manhã em Lisboa."}]
    for stop in [["never appears in the answer"], ["ãããã manhã não", "€€"]]:
        for stream in (False, True):
            body = {"messages": prompt, "max_tokens": 32, "temperature": 0, "stop": stop,
                    "stream": stream}
            reply = send_raw(small_server, chat(body), timeout=120)
            assert reply.status == 200, reply.raw[:300]
            if not stream:
                assert not reply.json()["choices"][0]["message"]["content"].isascii()
    assert_still_serves(small_server)


# Pieces of valid but unusual requests: multi-byte and combining characters, control tokens of
# the chat template typed as text, tool-protocol tags, JSON-looking text.
ODD_TEXT = ["a", "é", "ã", "€", "😀", "中", "\u0301", "\n", " ", "'", '"', "\\", "<|im_end|>",
            "<|im_start|>", "\u200b", "\ufffd", "xxx", "Lisboa", "<tool>", "</tool>", "{", "}",
            "\t", "\u00a0"]


def valid_odd_cases(seed=SEED, n=120):
    """Well-formed chat requests with odd content, stop strings, sampling settings, memory
    knobs and sessions on both endpoints: each must be answered (2xx), never a 5xx."""
    rng = random.Random(seed)
    text = lambda n: "".join(rng.choice(ODD_TEXT) for _ in range(rng.randint(0, n)))
    cases = []
    for _ in range(n):
        messages = [{"role": "system", "content": text(20)}] if rng.random() < 0.5 else []
        for _ in range(rng.randint(0, 3)):
            messages += [{"role": "user", "content": text(15)},
                         {"role": "assistant", "content": text(15)}]
        messages.append({"role": "user", "content": rng.choice([
            text(30), "Escreve uma frase sobre a manhã em Lisboa.",
            "My email is a€b@x.org. What is it?", "Forget " + text(5)])})
        body = {"messages": messages, "max_tokens": rng.randint(1, 16),
                "temperature": rng.choice([0, 0.7, 2.0]), "top_p": rng.choice([1.0, 0.5, 0.01]),
                "seed": rng.randint(0, 99), "stream": rng.random() < 0.3}
        if rng.random() < 0.6:
            body["stop"] = [text(4) or "é" for _ in range(rng.randint(1, 4))]
        path = rng.choice(["/v1/chat", "/v1/chat/completions"])
        if path == "/v1/chat" and rng.random() < 0.5:
            body["memory"] = {"recall": True, "capture": True, "no_replay": rng.random() < 0.5,
                              "anchor": rng.random() < 0.8}
        if rng.random() < 0.3:
            body["session"] = f"odd-{rng.randint(0, 5)}"
        cases.append((path, body))
    return cases


def test_valid_requests_with_odd_content_are_all_answered(small_server):
    for path, body in valid_odd_cases():
        reply = send_raw(small_server, http("POST", path, json.dumps(body)), timeout=120)
        assert reply.status is not None and reply.status < 500, (path, body, reply.raw[:300])
    assert not [line for line in small_server.log if "panicked" in line]
    assert_still_serves(small_server)


def assert_still_serves(server):
    body = {"messages": [{"role": "user", "content": "Who wrote Romeo and Juliet?"}],
            "max_tokens": 16, "temperature": 0}
    reply = send_raw(server, chat(body), timeout=120)
    assert reply.status == 200, reply.raw[:500]
    answer = reply.json()
    assert "Shakespeare" in answer["choices"][0]["message"]["content"]
    assert answer["usage"]["completion_tokens"] > 0


def assert_no_server_errors_counted(server):
    reply = send_raw(server, http("GET", "/v1/metrics"))
    assert reply.status == 200
    text = reply.body.decode()
    for line in text.splitlines():
        if line.startswith("#") or 'status="5' not in line:
            continue
        assert float(line.rsplit(" ", 1)[1]) == 0, f"the server counted a 5xx: {line}"
