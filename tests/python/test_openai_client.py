"""The official `openai` Python client against Engram's OpenAI-compatible endpoint."""
import json
import urllib.request

import openai
import pytest

from conftest import Server


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_the_served_model(server):
    models = client(server).models.list()
    assert len(models.data) == 1
    assert "SmolLM2" in models.data[0].id


def test_non_streaming_completion_has_text_and_usage(server):
    answer = client(server).chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Who wrote Romeo and Juliet?"}],
        max_tokens=16,
        temperature=0,
    )
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert "Shakespeare" in choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert answer.usage.prompt_tokens > 10
    assert 0 < answer.usage.completion_tokens <= 16
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_greedy_is_deterministic_and_max_tokens_gives_length(server):
    c = client(server)
    args = dict(model="default", messages=[{"role": "user", "content": "Count: one, two,"}],
                max_tokens=5, temperature=0)
    first = c.chat.completions.create(**args)
    second = c.chat.completions.create(**args)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].finish_reason == "length"
    assert first.usage.completion_tokens == 5


def test_streaming_sends_role_first_then_text_then_finish_and_usage(server):
    stream = client(server).chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0
    # Streaming and non-streaming answers agree (greedy).
    whole = client(server).chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=12, temperature=0)
    assert whole.choices[0].message.content == text


def test_second_turn_reuses_the_kv_cache(server):
    c = client(server)
    messages = [{"role": "user", "content": "My name is Ada. Remember it."}]
    first = c.chat.completions.create(model="default", messages=messages, max_tokens=10, temperature=0)
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "What is my name?"}]
    second = c.chat.completions.create(model="default", messages=messages, max_tokens=10, temperature=0)
    cached = second.usage.prompt_tokens_details.cached_tokens
    # Everything up to the new user message was already in the session's KV cache.
    assert cached >= first.usage.prompt_tokens, (cached, first.usage)
    assert cached < second.usage.prompt_tokens


def test_stop_strings_end_the_answer(server):
    c = client(server)
    free = c.chat.completions.create(model="default", max_tokens=24, temperature=0,
                                     messages=[{"role": "user", "content": "List three colours."}])
    text = free.choices[0].message.content
    assert len(text) > 4
    stop = text[3:5]
    cut = c.chat.completions.create(model="default", max_tokens=24, temperature=0, stop=[stop],
                                    messages=[{"role": "user", "content": "List three colours."}])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_bad_requests_raise_bad_request_errors_naming_the_field(server):
    c = client(server)
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="default", messages=[], max_tokens=4)
    assert err.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="default", max_tokens=10**9,
                                  messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["param"] == "max_tokens"


def test_raw_malformed_json_gets_an_openai_error_body(server):
    req = urllib.request.Request(server.url + "/v1/chat/completions", data=b"{not json",
                                 headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400
    body = json.loads(err.value.read())
    assert body["error"]["type"] == "invalid_request_error"


def test_a_question_to_the_assistant_streams_its_answer_from_memory(server):
    # The OpenAI endpoint uses memory when the request asks for it (extra_body); the reply
    # opens with the first words of the capability fact recalled, streamed after the role.
    args = dict(model="default", max_tokens=24, temperature=0,
                messages=[{"role": "user", "content": "Which endpoints do you have?"}],
                extra_body={"memory": {"recall": True}})
    chunks = list(client(server).chat.completions.create(stream=True, **args))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("My endpoints are"), text
    assert "/v1/chat" in text, text
    whole = client(server).chat.completions.create(**args)
    assert whole.choices[0].message.content == text


def test_joined_statements_and_named_pets_are_captured_and_recalled(fresh_data_dir):
    # "Hi! My name is Ada and I live in Lyon." holds two facts in one sentence after a
    # greeting: both are captured (the name is "Ada", not "Ada and I live in Lyon"), the turn
    # is acknowledged by memory without the model, and a later conversation recalls each;
    # "What do you know about me?" lists them, and forgetting one is honoured in the answers.
    srv = Server(str(fresh_data_dir)).start()
    try:
        c = client(srv)
        memory = {"memory": {"recall": True, "capture": True}}

        def ask(text):
            r = c.chat.completions.create(model="default", max_tokens=24, temperature=0,
                                          messages=[{"role": "user", "content": text}],
                                          extra_body=memory)
            return r.choices[0].message.content, r.usage.prompt_tokens

        told, told_tokens = ask("Hi! My name is Ada and I live in Lyon.")
        assert (told, told_tokens) == ("Noted.", 0)
        where, _ = ask("Where do I live?")
        assert "Lyon" in where and "Ada and" not in where, where
        name, _ = ask("What is my name?")
        assert "Ada" in name and "Lyon" not in name, name
        # A named pet is the pet's name, and asking for it is not asking for the user's.
        assert ask("I have a dog named Rex.") == ("Noted.", 0)
        dog, _ = ask("What is my dog's name?")
        assert "Rex" in dog and "Ada" not in dog, dog
        cat, _ = ask("What's my cat's name?")
        assert cat.startswith("I have no memory of your cat's name"), cat
        # What memory holds about the user is said to them, by memory (no prompt).
        known, known_tokens = ask("What do you know about me?")
        assert known_tokens == 0, known
        for fact in ("your name is Ada", "you live in Lyon", "your dog's name is Rex"):
            assert fact in known, known
        # A forgotten fact asked in the user's own words ("Where do I live?", no "my").
        assert ask("Forget where I live.")[0] == "I have forgotten your city."
        gone, _ = ask("Where do I live?")
        assert gone == "I no longer know your city: you asked me to forget it.", gone
        assert "Lyon" not in ask("What do you know about me?")[0]
    finally:
        srv.stop()


def test_she_and_he_in_later_clauses_are_the_person_just_named(fresh_data_dir):
    # "My wife is called Julia and she works at Airbus. She's 41." is three facts about
    # user.wife; each is answered in the second person, and "Who is my wife?" gives her name.
    srv = Server(str(fresh_data_dir)).start()
    try:
        c = client(srv)

        def ask(text):
            r = c.chat.completions.create(model="default", max_tokens=24, temperature=0,
                                          messages=[{"role": "user", "content": text}],
                                          extra_body={"memory": {"recall": True, "capture": True}})
            return r.choices[0].message.content

        assert ask("I love hiking.") == "Noted."
        assert "hiking" in ask("What do I like?")
        assert ask("My wife is called Julia and she works at Airbus. She's 41.") == "Noted."
        assert "Airbus" in ask("Where does my wife work?")
        assert "41" in ask("How old is my wife?")
        assert "Julia" in ask("Who is my wife?")
        known = ask("What do you know about me?")
        for fact in ("your wife's name is Julia", "your wife works at Airbus",
                     "your wife is 41 years old"):
            assert fact in known, known
    finally:
        srv.stop()


def test_jobs_and_named_groups_are_captured_and_recalled(fresh_data_dir):
    # "I'm Maya and I work as a nurse." holds a name and a job; "I have two kids, Sam and
    # Lily." names a group. Each is asked in the words people use ("What do I do for a
    # living?", "What are my kids called?"), and a job with an employer is two facts, each
    # answered by its own question.
    srv = Server(str(fresh_data_dir)).start()
    try:
        c = client(srv)

        def ask(text):
            r = c.chat.completions.create(model="default", max_tokens=24, temperature=0,
                                          messages=[{"role": "user", "content": text}],
                                          extra_body={"memory": {"recall": True, "capture": True}})
            return r.choices[0].message.content

        kids = ask("What are my kids called?")
        assert kids == "I have no memory of your kids' names.", kids
        assert ask("Hi! I'm Maya and I work as a nurse in Leeds.") == "Noted."
        assert ask("I have two kids, Sam and Lily.") == "Noted."
        for question in ("What are my kids called?", "What are the names of my kids?"):
            kids = ask(question)
            assert "Sam and Lily" in kids and "Maya" not in kids, (question, kids)
        for question in ("What's my job?", "What do I do for a living?", "What is my occupation?"):
            job = ask(question)
            assert "a nurse" in job, (question, job)
        assert ask("What's my name?").startswith("Your name is Maya"), "name"
        assert ask("I'm an engineer at Airbus.") == "Noted."
        job = ask("What do I do for a living?")
        assert "an engineer" in job and "nurse" not in job, job
        assert "Airbus" in ask("Where do I work?")
        known = ask("What do you know about me?")
        for fact in ("your name is Maya", "your job is an engineer", "your kids are Sam and Lily",
                     "you work at Airbus"):
            assert fact in known, known
    finally:
        srv.stop()


def test_everyday_statements_are_captured_and_asked_in_their_own_words(fresh_data_dir):
    # Facts people state about themselves in a verb of their own ("I'm allergic to …",
    # "I drive …", "I was born in …") are each answered to the question in the same verb.
    srv = Server(str(fresh_data_dir)).start()
    try:
        c = client(srv)

        def ask(text):
            r = c.chat.completions.create(model="default", max_tokens=24, temperature=0,
                                          messages=[{"role": "user", "content": text}],
                                          extra_body={"memory": {"recall": True, "capture": True}})
            return r.choices[0].message.content

        assert ask("What am I allergic to?") == "I have no memory of your allergies."
        for statement in ("I'm allergic to peanuts.", "I drive a Tesla.", "I was born in 1990.",
                          "I speak French and Spanish.", "I'm vegetarian.", "I hate mornings."):
            assert ask(statement) == "Noted.", statement
        for question, said in (("What am I allergic to?", "allergic to peanuts"),
                               ("What car do I drive?", "drive a Tesla"),
                               ("When was I born?", "born in 1990"),
                               ("What languages do I speak?", "speak French and Spanish"),
                               ("Am I vegetarian?", "vegetarian"),
                               ("What do I hate?", "mornings")):
            answer = ask(question)
            assert said in answer, (question, answer)
        # A collection grows with a new value, unless the statement says it replaces it.
        assert ask("I'm allergic to cats.") == "Noted."
        assert "allergic to peanuts and cats" in ask("What am I allergic to?")
        assert ask("Actually, I speak Italian now.") == "Noted."
        languages = ask("What languages do I speak?")
        assert "Italian" in languages and "French" not in languages, languages
        # Asking leave to speak about something is not a question about a stored fact.
        assert not ask("Can I tell you about my day?").startswith("I have no memory")
    finally:
        srv.stop()


def test_the_users_people_are_facts_of_their_own(fresh_data_dir):
    # "My wife Julia works at Airbus." is two facts about user.wife (her name, her employer),
    # asked as "Where does my wife work?" — which is not the user's own employer — and, once
    # forgotten, answered as forgotten rather than invented.
    srv = Server(str(fresh_data_dir)).start()
    try:
        c = client(srv)

        def ask(text):
            r = c.chat.completions.create(model="default", max_tokens=24, temperature=0,
                                          messages=[{"role": "user", "content": text}],
                                          extra_body={"memory": {"recall": True, "capture": True}})
            return r.choices[0].message.content

        assert ask("Where does my wife work?") == "I have no memory of your wife's employer."
        for statement in ("I work at Acme.", "My wife Julia works at Airbus.",
                          "My brother lives in Paris.", "My son Tom is 7.",
                          "My sister is a doctor."):
            assert ask(statement) == "Noted.", statement
        for question, said in (("Where does my wife work?", "Airbus"),
                               ("Where do I work?", "Acme"),
                               ("What's my wife's name?", "Julia"),
                               ("Where does my brother live?", "Paris"),
                               ("How old is my son?", "7"),
                               ("What's my son's name?", "Tom"),
                               ("What does my sister do?", "a doctor")):
            answer = ask(question)
            assert said in answer, (question, answer)
        assert "Acme" not in ask("Where does my wife work?")
        assert ask("Forget my wife's employer.") == "I have forgotten your wife's employer."
        gone = ask("Where does my wife work?")
        assert gone == "I no longer know your wife's employer: you asked me to forget it.", gone
    finally:
        srv.stop()


def test_a_turn_that_states_and_asks_keeps_both_apart(fresh_data_dir):
    # "My name is Ada. What is the capital of France?" states the name (captured) and asks
    # about France (not about the name: no abstention, the model answers); a question naming
    # two facts is answered with both, by memory.
    srv = Server(str(fresh_data_dir)).start()
    try:
        c = client(srv)

        def ask(text):
            r = c.chat.completions.create(model="default", max_tokens=24, temperature=0,
                                          messages=[{"role": "user", "content": text}],
                                          extra_body={"memory": {"recall": True, "capture": True}})
            return r.choices[0].message.content, r.usage.prompt_tokens

        france, tokens = ask("My name is Ada. What is the capital of France?")
        assert "France" in france and not france.startswith("I have no memory"), france
        assert tokens > 0, "the model answers the question"
        assert ask("I live in Lyon. Can you recommend a restaurant?")[1] > 0
        both, tokens = ask("What's my name and where do I live?")
        assert both == "Your name is Ada and you live in Lyon.", both
        assert tokens == 0, "answered by memory"
        # A yes/no question is answered yes or no, then with the value.
        assert ask("Do I live in Paris?")[0].startswith("No, you live in Lyon"), "Paris"
        assert ask("Is my name Ada?")[0].startswith("Yes, your name is Ada"), "Ada"
        assert ask("Is my name Eve?")[0].startswith("No, your name is Ada"), "Eve"
    finally:
        srv.stop()


def test_forgetting_one_item_everything_about_someone_or_everything(fresh_data_dir):
    # "Forget that I'm allergic to dogs" erases dogs and keeps cats; "Forget everything about
    # my wife" erases her facts and nothing else; "Forget everything you know about me" erases
    # every fact of the user's.
    srv = Server(str(fresh_data_dir)).start()
    try:
        c = client(srv)

        def ask(text):
            r = c.chat.completions.create(model="default", max_tokens=24, temperature=0,
                                          messages=[{"role": "user", "content": text}],
                                          extra_body={"memory": {"recall": True, "capture": True}})
            return r.choices[0].message.content

        assert ask("My name is Ada. I'm allergic to cats and dogs. "
                   "My wife Julia works at Airbus.") == "Noted."
        assert ask("Forget that I'm allergic to dogs.") == \
            "I have forgotten that you are allergic to dogs."
        allergies = ask("What am I allergic to?")
        assert "cats" in allergies and "dogs" not in allergies, allergies
        assert ask("Forget everything about my wife.") == \
            "I have forgotten your wife's employer and your wife's name."
        known = ask("What do you know about me?")
        assert "Julia" not in known and "Airbus" not in known and "Ada" in known, known
        assert ask("Forget everything you know about me.").startswith("I have forgotten")
        assert ask("What do you know about me?").startswith("I don't know anything about you")
    finally:
        srv.stop()
