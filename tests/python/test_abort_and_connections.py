"""Over raw HTTP: aborting a streaming answer through `POST /v1/abort/{id}`, closing
connections that never finish their headers (slowloris) while others are served, and
refusing a `stream_options` that is not an object."""
import json
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import Server


def post(url, body, timeout=60):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_abort_stops_a_streaming_answer(server):
    body = {"messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
            "max_tokens": 400, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    request = urllib.request.Request(server.url + "/v1/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        events = []
        completion_id = None
        aborted_at = None
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            data = line[len("data: "):]
            if data == "[DONE]":
                break
            event = json.loads(data)
            events.append(event)
            if completion_id is None:
                completion_id = event["id"]
            texts = [e for e in events if e.get("choices") and e["choices"][0]["delta"].get("content")]
            if aborted_at is None and len(texts) >= 3:
                status, answer = post(server.url + "/v1/abort/" + completion_id, {})
                assert status == 200 and answer == {"id": completion_id, "aborted": True}
                aborted_at = time.time()
        ended = time.time()
    assert aborted_at is not None, "the answer ended before it could be aborted"
    assert ended - aborted_at < 20, "the stream kept going after the abort"
    finish = [e["choices"][0]["finish_reason"] for e in events
              if e.get("choices") and e["choices"][0]["finish_reason"]]
    assert finish == ["stop"]
    usage = events[-1]["usage"]
    assert 3 <= usage["completion_tokens"] < 400
    # Once finished, the id is unknown: 404 with an OpenAI error body.
    status, answer = post(server.url + "/v1/abort/" + completion_id, {})
    assert status == 404 and "no running generation" in answer["error"]["message"]
    # The server keeps answering.
    status, answer = post(server.url + "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert status == 200


def test_stream_options_must_be_an_object(server):
    for bad in ([True], True, "include_usage"):
        status, body = post(server.url + "/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "Hi"}], "stream": True,
                             "stream_options": bad})
        assert status == 400, (bad, body)
        assert body["error"]["param"] == "stream_options"
        assert "object" in body["error"]["message"]


@pytest.fixture()
def impatient_server():
    data = tempfile.mkdtemp(prefix="engram-test-")
    srv = Server(data, ["--no-memory", "--header-timeout-secs", "1"]).start()
    yield srv
    srv.stop()
    shutil.rmtree(data, ignore_errors=True)


def closed_by_server(sock, within):
    """True when the server closes `sock` (EOF or reset, maybe after a 408) within `within` s."""
    sock.settimeout(within)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True
            if not chunk.startswith(b"HTTP/1.1 408"):
                return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_slowloris_connections_are_closed_while_others_are_served(impatient_server):
    address = urllib.parse.urlsplit(impatient_server.url)
    slow = []
    for _ in range(8):
        sock = socket.create_connection((address.hostname, address.port))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: app")
        slow.append(sock)
    # Everyone else is served meanwhile.
    started = time.time()
    with urllib.request.urlopen(impatient_server.url + "/v1/models", timeout=10) as response:
        assert response.status == 200
    assert time.time() - started < 5
    # Keep dribbling bytes, never finishing the headers: the timeout still closes them.
    for sock in slow:
        sock.sendall(b"lic")
    for sock in slow:
        assert closed_by_server(sock, within=10), "a slowloris connection was left open"
        sock.close()
    status, _ = post(impatient_server.url + "/v1/chat/completions",
                     {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert status == 200
