#!/usr/bin/env python3
"""Prefill and decode speed of llama.cpp (through llama-cpp-python) on one GGUF file.

usage: llama_cpp_speed.py MODEL.gguf THREADS N_PROMPT N_DECODE REPEATS
Feeds the same synthetic prompt as `engram bench engine` (token i = 100 + (i*7919) % 10000),
prefills it in one batch, then decodes N_DECODE tokens one at a time (greedy argmax of the
last logits). Prints one JSON object: {"prefill_tok_s": [...], "decode_tok_s": [...]}."""
import json, sys, time
import llama_cpp
from llama_cpp import Llama
import numpy as np

model, threads, n_prompt, n_decode, repeats = sys.argv[1], *map(int, sys.argv[2:6])
llm = Llama(model_path=model, n_ctx=max(512, n_prompt + n_decode + 8), n_threads=threads,
            n_threads_batch=threads, n_batch=max(n_prompt, 32), n_ubatch=max(n_prompt, 32),
            logits_all=False, verbose=False)
prompt = [100 + (i * 7919) % 10000 for i in range(n_prompt)]
prefill, decode = [], []
for _ in range(repeats):
    llm.reset()
    t = time.perf_counter(); llm.eval(prompt); prefill.append(n_prompt / (time.perf_counter() - t))
    tok = 42
    t = time.perf_counter()
    for _ in range(n_decode):
        llm.eval([tok])
        last = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        tok = int(np.argmax(np.ctypeslib.as_array(last, shape=(llm.n_vocab(),))))
    decode.append(n_decode / (time.perf_counter() - t))
print(json.dumps({"prefill_tok_s": prefill, "decode_tok_s": decode}))
