"""Watching the plugins folder: a rebuilt slot component is hot-swapped by the running server
(`engram serve --watch-plugins-ms`), a broken build is refused while the old plugin keeps
serving, and with the watcher off (the default) a new file on disk changes nothing."""
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import time
import urllib.request

from conftest import ROOT, Server

TOKEN = "watch-admin-token"
BUILT = ROOT / "plugins" / "target" / "wasm32-wasip2" / "release"


def admin_get(server, path):
    request = urllib.request.Request(server.url + path,
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def judge_slot(server):
    return next(s for s in admin_get(server, "/v1/plugins")["data"] if s["kind"] == "judge")


def chat_ok(server):
    body = json.dumps({"messages": [{"role": "user", "content": "What is my server's IP?"}],
                       "max_tokens": 2, "temperature": 0}).encode()
    request = urllib.request.Request(server.url + "/v1/chat", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        return json.load(response)


def rebuilt(component: bytes, tag: bytes) -> bytes:
    """The same component with a custom section appended: a new build (new hash) that
    behaves the same."""
    name = b"engram-test-build"
    content = bytes([len(name)]) + name + tag
    assert len(content) < 128
    return component + bytes([0, len(content)]) + content


def replace_file(path: pathlib.Path, data: bytes):
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def plugins_copy():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="engram-plugins-"))
    for wasm in BUILT.glob("*.wasm"):
        shutil.copy(wasm, folder / wasm.name)
    return folder


def wait_for(predicate, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_rebuilt_judge_is_swapped_and_a_broken_build_is_refused():
    plugins = plugins_copy()
    data = tempfile.mkdtemp(prefix="engram-test-")
    server = Server(data, ["--plugins", str(plugins), "--admin-token", TOKEN,
                           "--watch-plugins-ms", "100"]).start()
    try:
        judge_file = plugins / "judge_jaccard.wasm"
        original = judge_file.read_bytes()
        before = judge_slot(server)
        assert before["hash"] == hashlib.sha256(original).hexdigest()

        new_build = rebuilt(original, b"v2")
        replace_file(judge_file, new_build)
        new_hash = hashlib.sha256(new_build).hexdigest()
        assert wait_for(lambda: judge_slot(server)["hash"] == new_hash, 30), judge_slot(server)
        assert judge_slot(server)["swaps"] == before["swaps"] + 1
        chat_ok(server)

        # A broken build: refused, the new build keeps serving, chat still works.
        replace_file(judge_file, b"\0asm not a component")
        assert wait_for(lambda: any("new build refused" in line for line in server.log), 30)
        assert judge_slot(server)["hash"] == new_hash
        chat_ok(server)

        # Fixed again: picked up.
        third = rebuilt(original, b"v3")
        replace_file(judge_file, third)
        third_hash = hashlib.sha256(third).hexdigest()
        assert wait_for(lambda: judge_slot(server)["hash"] == third_hash, 30), judge_slot(server)
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(plugins, ignore_errors=True)


def test_without_the_watcher_a_new_file_changes_nothing():
    plugins = plugins_copy()
    data = tempfile.mkdtemp(prefix="engram-test-")
    server = Server(data, ["--plugins", str(plugins), "--admin-token", TOKEN]).start()
    try:
        judge_file = plugins / "judge_jaccard.wasm"
        before = judge_slot(server)
        replace_file(judge_file, rebuilt(judge_file.read_bytes(), b"v2"))
        time.sleep(1.5)
        after = judge_slot(server)
        assert (after["hash"], after["swaps"]) == (before["hash"], before["swaps"])
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(plugins, ignore_errors=True)


def test_engram_plugin_swap_uploads_to_a_running_server():
    import subprocess
    from conftest import engram_binary
    data = tempfile.mkdtemp(prefix="engram-test-")
    server = Server(data, ["--admin-token", TOKEN]).start()
    build = pathlib.Path(tempfile.mkdtemp(prefix="engram-build-")) / "judge_v2.wasm"
    try:
        build.write_bytes(rebuilt((BUILT / "judge_jaccard.wasm").read_bytes(), b"cli"))
        before = judge_slot(server)
        done = subprocess.run([engram_binary(), "plugin", "swap", "judge", str(build),
                               "--server", server.url, "--admin-token", TOKEN],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        new_hash = hashlib.sha256(build.read_bytes()).hexdigest()
        assert new_hash in done.stdout and before["hash"] in done.stdout, done.stdout
        after = judge_slot(server)
        assert (after["hash"], after["plugin"]) == (new_hash, "judge_v2")
        chat_ok(server)
        # A wrong token is refused with the server's reason and a non-zero exit.
        refused = subprocess.run([engram_binary(), "plugin", "swap", "judge", str(build),
                                  "--server", server.url, "--admin-token", "wrong"],
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "401" in refused.stderr, refused.stderr
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(build.parent, ignore_errors=True)
