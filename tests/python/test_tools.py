"""Tools through the official `openai` client: forced calls (named and "required") in both
answer forms, "auto" giving a well-formed answer either way, and the follow-up turn with a
`role: tool` message. The default model (SmolLM2-135M, no tool support in its template)
gets the seed's text protocol; forced calls make the tests deterministic."""
import json
import urllib.error
import urllib.request

import openai

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}
CALC = {
    "type": "function",
    "function": {
        "name": "calc",
        "description": "Evaluate an arithmetic expression exactly.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def check_call(call, name):
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == name
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict)
    return args


def test_named_tool_choice_forces_a_call_with_json_arguments(server):
    answer = client(server).chat.completions.create(
        model="default", messages=ASK, tools=[WEATHER, CALC], temperature=0, max_tokens=48,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert len(choice.message.tool_calls) == 1
    check_call(choice.message.tool_calls[0], "get_weather")
    assert answer.usage.completion_tokens > 0


def test_required_picks_an_offered_tool_and_arguments_always_parse(server):
    c = client(server)
    for seed, temperature, max_tokens in [(0, 0, 48), (1, 1.0, 48), (2, 1.5, 3), (3, 0, 1)]:
        answer = c.chat.completions.create(
            model="default", messages=ASK, tools=[WEATHER, CALC], tool_choice="required",
            temperature=temperature, seed=seed, max_tokens=max_tokens,
        )
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls", (seed, choice)
        call = choice.message.tool_calls[0]
        assert call.function.name in ("get_weather", "calc")
        check_call(call, call.function.name)


def test_streaming_forced_call_arrives_as_tool_call_deltas(server):
    stream = client(server).chat.completions.create(
        model="default", messages=ASK, tools=[WEATHER], temperature=0, max_tokens=48,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    calls = {}
    finish = None
    for chunk in chunks:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        for delta in choice.delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            if delta.id:
                entry["id"] = delta.id
            if delta.function and delta.function.name:
                entry["name"] += delta.function.name
            if delta.function and delta.function.arguments:
                entry["arguments"] += delta.function.arguments
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"].startswith("call_")
    assert calls[0]["name"] == "get_weather"
    assert isinstance(json.loads(calls[0]["arguments"]), dict)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_auto_gives_a_well_formed_answer_either_way(server):
    c = client(server)
    answer = c.chat.completions.create(
        model="default", messages=ASK, tools=[WEATHER], tool_choice="auto",
        temperature=0, max_tokens=32,
    )
    choice = answer.choices[0]
    if choice.finish_reason == "tool_calls":
        check_call(choice.message.tool_calls[0], "get_weather")
    else:
        assert choice.finish_reason in ("stop", "length")
        assert choice.message.tool_calls is None
        assert isinstance(choice.message.content, str) and choice.message.content
    # Streaming "auto" agrees with the non-streaming answer (greedy).
    stream = c.chat.completions.create(
        model="default", messages=ASK, tools=[WEATHER], temperature=0, max_tokens=32,
        stream=True,
    )
    chunks = [ch for ch in stream if ch.choices]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices[0].finish_reason]
    assert finish == [choice.finish_reason]
    if choice.finish_reason == "tool_calls":
        # The call's text never leaks into the streamed content.
        assert "<tool" not in text
    else:
        assert text == choice.message.content


def test_tool_choice_none_hides_the_tools(server):
    c = client(server)
    with_none = c.chat.completions.create(
        model="default", messages=ASK, tools=[WEATHER], tool_choice="none",
        temperature=0, max_tokens=12,
    )
    plain = c.chat.completions.create(model="default", messages=ASK, temperature=0, max_tokens=12)
    assert with_none.choices[0].message.tool_calls is None
    assert with_none.choices[0].message.content == plain.choices[0].message.content


def test_follow_up_turn_with_the_tool_result(server):
    c = client(server)
    first = c.chat.completions.create(
        model="default", messages=ASK, tools=[WEATHER], temperature=0, max_tokens=48,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = first.choices[0].message.tool_calls[0]
    messages = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees Celsius and sunny"},
    ]
    second = c.chat.completions.create(
        model="default", messages=messages, tools=[WEATHER], temperature=0, max_tokens=24,
    )
    choice = second.choices[0]
    if choice.finish_reason == "tool_calls":
        check_call(choice.message.tool_calls[0], "get_weather")
    else:
        assert choice.finish_reason in ("stop", "length")
        assert choice.message.content
    # Same tools offered, so the same prompt prefix: the first turn's KV is reused.
    assert second.usage.prompt_tokens_details.cached_tokens > first.usage.prompt_tokens // 2


def post(server, body):
    request = urllib.request.Request(
        server.url + "/v1/chat/completions", data=json.dumps(body).encode(),
        headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_bad_tool_requests_name_the_field(server):
    cases = [
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]},
         "tools[0].function.name"),
        ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ]
    for extra, param in cases:
        status, body = post(server, {"messages": ASK, **extra})
        assert status == 400, (extra, body)
        assert body["error"]["param"].startswith(param), (extra, body)
    status, body = post(server, {"messages": [{"role": "tool", "content": "x"}]})
    assert status == 400 and body["error"]["param"] == "messages[0].tool_call_id"


def native(server, body):
    request = urllib.request.Request(
        server.url + "/v1/chat", data=json.dumps(body).encode(),
        headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


NO_MEMORY = {"recall": False, "capture": False}


def test_server_side_plugin_tools_run_in_the_sandbox_and_are_reported(server):
    ask = [{"role": "user", "content": "Use the calculator: what is 12 * 7?"}]
    answer = native(server, {
        "messages": ask, "memory": NO_MEMORY, "temperature": 0, "max_tokens": 24,
        "server_tools": {"max_rounds": 1},
        "tool_choice": {"type": "function", "function": {"name": "calc"}},
    })
    runs = answer["server_tools"]
    assert len(runs) == 1, answer
    run = runs[0]
    assert run["round"] == 1 and run["name"] == "calc"
    assert isinstance(json.loads(run["arguments"]), dict)
    assert run["answered_by"]["plugin"] == "tool-calc"
    assert (run["result"] is None) != (run["error"] is None)
    # The result went back to the model, which then answered in text (rounds ran out).
    choice = answer["choices"][0]
    assert choice["finish_reason"] in ("stop", "length")
    assert "tool_calls" not in choice["message"]
    assert choice["message"]["content"]
    # tool-script is offered too, and a script call runs inside the sandbox.
    answer = native(server, {
        "messages": [{"role": "user", "content": "Run a script that adds 2 and 3."}],
        "memory": NO_MEMORY, "temperature": 0, "max_tokens": 24,
        "server_tools": {"max_rounds": 1},
        "tool_choice": {"type": "function", "function": {"name": "script"}},
    })
    assert answer["server_tools"][0]["answered_by"]["plugin"] == "tool-script"


def test_server_tools_off_changes_nothing(server):
    base = {"messages": [{"role": "user", "content": "Name a colour."}], "memory": NO_MEMORY,
            "temperature": 0, "max_tokens": 12}
    plain = native(server, base)
    off = native(server, {**base, "server_tools": {"enabled": False}})
    assert plain["server_tools"] == [] and off["server_tools"] == []
    assert plain["choices"][0]["message"] == off["choices"][0]["message"]
    # The OpenAI endpoint ignores the knob: no server tool ever runs there.
    answer = client(server).chat.completions.create(
        model="default", messages=base["messages"], temperature=0, max_tokens=12,
        extra_body={"server_tools": {"max_rounds": 2}},
    )
    assert answer.choices[0].message.content == plain["choices"][0]["message"]["content"]
