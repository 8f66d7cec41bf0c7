"""Sessions survive the server: a restart (SIGTERM), a crash (SIGKILL mid-generation), a torn
snapshot, and LRU eviction to disk — and a resumed turn answers exactly what a server that
never stopped answers."""
import json
import pathlib
import shutil
import signal
import tempfile
import urllib.request

import pytest

from conftest import Server

QUESTIONS = ["My name is Ada and I keep bees in Lisbon. Say hello.",
             "What do I keep?",
             "Where do I live?"]


def post(server, body, timeout=300):
    request = urllib.request.Request(server.url + "/v1/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


def turn(server, history, question, session=None):
    """Send one user turn (resending the history), append the answer, return the response."""
    history.append({"role": "user", "content": question})
    body = {"messages": history, "max_tokens": 12, "temperature": 0}
    if session is not None:
        body["session"] = session
    answer = post(server, body)
    history.append({"role": "assistant", "content": answer["choices"][0]["message"]["content"]})
    return answer


def cached(answer):
    return answer["usage"]["prompt_tokens_details"]["cached_tokens"]


def covered(previous):
    """Tokens of the previous turn's prompt and answer: what the next turn should find cached.
    The answer's last token (EOS or the cut at max_tokens) is re-rendered by the template, so a
    couple of tokens at the seam may be prefilled again."""
    usage = previous["usage"]
    return usage["prompt_tokens"] + usage["completion_tokens"] - 2


@pytest.fixture()
def data_dirs():
    dirs = [pathlib.Path(tempfile.mkdtemp(prefix="engram-sessions-")) for _ in range(2)]
    yield dirs
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("session", ["abc", None], ids=["named", "derived"])
def test_sessions_resume_after_a_restart_with_the_same_answers(data_dirs, session):
    restarted_dir, reference_dir = data_dirs
    reference = Server(reference_dir).start()
    try:
        ref_history, ref_answers = [], []
        for question in QUESTIONS:
            ref_answers.append(turn(reference, ref_history, question, session))
    finally:
        reference.stop()

    history, answers = [], []
    for question in QUESTIONS:
        server = Server(restarted_dir).start()  # a fresh process for every turn
        try:
            answers.append(turn(server, history, question, session))
        finally:
            server.stop(signal.SIGTERM)
        assert server.proc.returncode == 0, "".join(server.log)
    assert list((restarted_dir / "sessions").glob("*.kv")), "no session snapshot on disk"

    for i in range(1, len(QUESTIONS)):
        assert cached(answers[i]) >= covered(answers[i - 1]), (i, answers[i]["usage"], answers[i - 1]["usage"])
        assert cached(answers[i]) <= answers[i]["usage"]["prompt_tokens"]
        assert cached(answers[i]) == cached(ref_answers[i])
    assert history == ref_history, "a restarted server answered differently from one that never stopped"


def test_a_crash_mid_generation_and_a_torn_snapshot_do_not_stop_the_server(fresh_data_dir):
    server = Server(fresh_data_dir).start()
    history = []
    first = turn(server, history, QUESTIONS[0], "crashy")
    # Start a long streaming answer in another session and kill the server mid-stream.
    body = {"messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
            "max_tokens": 400, "temperature": 0, "stream": True, "session": "victim"}
    request = urllib.request.Request(server.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as stream:
        chunks = 0
        for line in stream:
            if line.startswith(b"data: {"):
                chunks += 1
            if chunks >= 5:
                server.stop(signal.SIGKILL)
                break
    assert server.proc.returncode == -signal.SIGKILL

    sessions = fresh_data_dir / "sessions"
    # A torn snapshot (half a file) and a leftover temp file, as a crash while writing leaves.
    torn = sessions / "torn.kv"
    good = (sessions / "crashy.kv").read_bytes()
    torn.write_bytes(good[: len(good) // 2])
    (sessions / "garbage.kv").write_bytes(b"\x00not a snapshot\xff" * 7)
    (sessions / "victim.tmp").write_bytes(good[:100])

    server = Server(fresh_data_dir).start()
    try:
        # The session written before the crash resumes from disk.
        second = turn(server, history, QUESTIONS[1], "crashy")
        assert cached(second) >= covered(first), (second["usage"], first["usage"])
        # Unusable snapshots start fresh instead of failing the request or the server.
        for name in ["torn", "garbage", "victim"]:
            answer = turn(server, [], "Say hello.", name)
            assert answer["choices"][0]["message"]["content"].strip()
            if name != "victim":
                assert cached(answer) == 0, answer["usage"]
    finally:
        server.stop()


def test_sessions_evicted_from_memory_resume_from_disk(fresh_data_dir):
    server = Server(fresh_data_dir, ["--max-sessions", "2"]).start()
    try:
        names = ["s1", "s2", "s3", "s4"]
        histories = {name: [] for name in names}
        firsts = {}
        for i, name in enumerate(names):
            firsts[name] = turn(server, histories[name], f"My favourite number is {i * 7 + 3}. Say ok.", name)
        # s1 and s2 were evicted when s3 and s4 came in; all four resume with their history cached.
        for name in names:
            second = turn(server, histories[name], "What is my favourite number?", name)
            assert cached(second) >= covered(firsts[name]), (name, second["usage"], firsts[name]["usage"])
        metrics = urllib.request.urlopen(server.url + "/v1/metrics", timeout=30).read().decode()
        live = [line for line in metrics.splitlines() if line.startswith("engram_sessions_in_memory")]
        assert live and float(live[0].split()[-1]) <= 2, live
    finally:
        server.stop()
