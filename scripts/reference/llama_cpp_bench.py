#!/usr/bin/env python3
"""One llama.cpp (llama-cpp-python) speed sample for `rasd-index bench engine`.

Greedy-decodes --decode-tokens tokens after --decode-prompt, one token per eval (as rasd's
decodeStep), and evaluates --prompt in one batch; prints JSON with tokens per second.
"""
import argparse
import json
import sys
import time

import numpy as np
import llama_cpp
from llama_cpp import Llama


def last_logits(llm):
    """The logits of the last evaluated token, read from the context (with logits_all=False
    llama-cpp-python 0.3.36 does not copy them into llm.scores)."""
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))


def ids(text):
    return [int(t) for t in text.split(",") if t]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--decode-prompt", required=True)
    p.add_argument("--decode-tokens", type=int, default=128)
    p.add_argument("--prompt", required=True)
    a = p.parse_args()
    decode_prompt, prompt = ids(a.decode_prompt), ids(a.prompt)
    n_ctx = max(len(prompt), len(decode_prompt) + a.decode_tokens) + 16
    llm = Llama(model_path=a.model, n_ctx=n_ctx, n_batch=max(512, len(prompt)), n_ubatch=max(512, len(prompt)),
                n_threads=a.threads, n_threads_batch=a.threads, logits_all=False, verbose=False)

    # Warm-up (first evals allocate buffers).
    llm.reset()
    llm.eval(decode_prompt[:8])

    llm.reset()
    llm.eval(decode_prompt)
    token = int(np.argmax(last_logits(llm)))
    decoded = [token]
    start = time.perf_counter()
    for _ in range(a.decode_tokens):
        llm.eval([token])
        token = int(np.argmax(last_logits(llm)))
        decoded.append(token)
    decode_seconds = time.perf_counter() - start

    llm.reset()
    start = time.perf_counter()
    llm.eval(prompt)
    prompt_seconds = time.perf_counter() - start

    json.dump({
        "version": llama_cpp.__version__,
        "decode_tokens_per_second": a.decode_tokens / decode_seconds,
        "prompt_tokens_per_second": len(prompt) / prompt_seconds,
        "decoded_tokens": decoded[:-1],
    }, sys.stdout)


if __name__ == "__main__":
    main()
