#!/usr/bin/env python3
"""Writes Tests/RASDModelTests/Resources/golden-llama-cpp.json: llama.cpp's top-k logits at every
prompt position and its greedy continuation, for ~20 fixed prompts (code, prose, chat), as token
ids tokenized by llama.cpp itself. Run once by hand (needs scripts/reference/setup-llama-cpp);
the JSON is committed and the tests read it without llama.cpp.

    ~/.cache/rasd/llama-venv/bin/python scripts/reference/make_golden.py [--model PATH]

Notes on llama-cpp-python 0.3.36 (see the design brief): prompt logits come from one batched
eval with logits_all=True; greedy continuations are single-token evals. Batched and single-token
logits of llama.cpp differ slightly at near-ties, which is why the tests use tolerances.
"""
import argparse
import hashlib
import json
import os

import numpy as np
import llama_cpp
from llama_cpp import Llama

TOP_K = 8
GREEDY = 32

SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def chat(user):
    return SYSTEM + "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n"


PROMPTS = [
    ("code-fib", "code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("code-sort", "code", "def quicksort(items):\n    if len(items) <= 1:\n        return items\n    pivot = items[0]\n"),
    ("code-class", "code", "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n"),
    ("code-json", "code", "import json\n\n\ndef load_config(path):\n    with open(path) as f:\n"),
    ("code-c", "code", "#include <stdio.h>\n\nint main(int argc, char **argv) {\n    for (int i = 0; i < argc; i++) {\n"),
    ("code-sql", "code", "SELECT customers.name, COUNT(orders.id) AS order_count\nFROM customers\n"),
    ("prose-history", "prose", "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg"),
    ("prose-science", "prose", "Photosynthesis is the process by which green plants convert light energy into"),
    ("prose-numbers", "prose", "In 1969, 3 astronauts flew 384,400 kilometres to the Moon; the mission lasted 8 days, 3 hours and"),
    ("prose-story", "prose", "Once upon a time, in a small village at the edge of a dark forest, there lived an old clockmaker who"),
    ("prose-news", "prose", "The central bank announced on Tuesday that interest rates would remain unchanged, citing"),
    ("prose-recipe", "prose", "To make a simple tomato sauce, first heat two tablespoons of olive oil in a pan, then"),
    ("chat-capital", "chat", chat("What is the capital of France?")),
    ("chat-python", "chat", chat("How do I reverse a list in Python?")),
    ("chat-explain", "chat", chat("Explain what a hash table is in two sentences.")),
    ("chat-poem", "chat", chat("Write a short poem about the sea.")),
    ("chat-math", "chat", chat("What is 17 times 23?")),
    ("chat-advice", "chat", chat("Give me three tips for learning a new language.")),
    ("chat-summary", "chat", chat("Summarize the plot of Romeo and Juliet in one paragraph.")),
    ("chat-code", "chat", chat("Write a Python function that checks whether a string is a palindrome.")),
]


def top(row):
    ids = np.argsort(-row, kind="stable")[:TOP_K]
    return [int(i) for i in ids], [round(float(row[i]), 4) for i in ids]


def noise_floor(model, prompts):
    """How far llama.cpp moves from its own golden rows when only its KV cache precision changes
    (F32 instead of the default F16): the scale of disagreement any other correct implementation
    must expect, since this model amplifies tiny differences through its 30 layers."""
    llm = Llama(model_path=model, n_ctx=512, n_batch=512, n_threads=2, n_threads_batch=2,
                logits_all=True, verbose=False, type_k=0, type_v=0)
    positions = agree = identical = 0
    diffs = []
    for p in prompts:
        tokens = p["ids"] + p["greedy"]
        llm.reset()
        llm.eval(tokens)
        ids, logits = p["top_ids"] + p["greedy_top_ids"], p["top_logits"] + p["greedy_top_logits"]
        for pos in range(len(tokens)):
            row = np.array(llm.scores[pos])
            positions += 1
            agree += int(np.argmax(row)) == ids[pos][0]
            diffs += [abs(float(row[i]) - v) for i, v in zip(ids[pos], logits[pos])]
        llm.reset()
        llm.eval(p["ids"])
        token, same = int(np.argmax(llm.scores[len(p["ids"]) - 1])), 0
        while same < GREEDY and token == p["greedy"][same]:
            same += 1
            llm.eval([token])
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        identical += same == GREEDY
    diffs.sort()
    return {
        "settings": "the same llama.cpp with type_k=type_v=F32, teacher-forced on the golden tokens",
        "top1_agreement": agree / positions,
        "mean_abs_logit_diff": sum(diffs) / len(diffs),
        "p99_abs_logit_diff": diffs[len(diffs) * 99 // 100],
        "max_abs_logit_diff": diffs[-1],
        "greedy_identical_prompts": identical,
    }


def main():
    default_model = os.path.join(os.environ.get("RASD_CACHE", os.path.expanduser("~/.cache/rasd")),
                                 "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=default_model)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "RASDModelTests",
                                                 "Resources", "golden-llama-cpp.json"))
    a = p.parse_args()
    with open(a.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    llm = Llama(model_path=a.model, n_ctx=512, n_batch=512, n_threads=2, n_threads_batch=2,
                logits_all=True, verbose=False)
    out = {
        "generator": "scripts/reference/make_golden.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model_sha256": sha,
        "top_k": TOP_K,
        "settings": "logits_all=True, n_ctx=512, n_batch=512, 2 threads, default KV type; prompt logits from one batched eval, greedy continuation by single-token evals",
        "prompts": [],
    }
    for name, kind, text in PROMPTS:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        positions = [top(np.array(llm.scores[i])) for i in range(len(ids))]
        greedy, greedy_top = [], []
        token = int(np.argmax(llm.scores[len(ids) - 1]))
        for _ in range(GREEDY):
            greedy.append(token)
            llm.eval([token])
            row = np.array(llm.scores[llm.n_tokens - 1])
            greedy_top.append(top(row))
            token = int(np.argmax(row))
        out["prompts"].append({
            "name": name, "kind": kind, "text": text, "ids": [int(t) for t in ids],
            "top_ids": [t[0] for t in positions], "top_logits": [t[1] for t in positions],
            "greedy": greedy,
            "greedy_top_ids": [t[0] for t in greedy_top], "greedy_top_logits": [t[1] for t in greedy_top],
        })
        print(f"{name}: {len(ids)} prompt tokens", flush=True)
    out["noise_floor"] = noise_floor(a.model, out["prompts"])
    print("noise floor:", out["noise_floor"])
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.abspath(a.out))


if __name__ == "__main__":
    main()
