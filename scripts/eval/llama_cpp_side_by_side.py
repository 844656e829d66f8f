#!/usr/bin/env python3
"""llama.cpp beside rasd on the same evaluation prompts: plain greedy and prompt lookup.

Reads the directory written by `rasd-index eval` (prompts.jsonl: the token ids rasd fed the
model; eval.json: rasd's results), decodes every prompt with llama-cpp-python==0.3.36 twice —
plain greedy, and with its prompt-lookup drafting (LlamaPromptLookupDecoding, 10 draft tokens)
— and prints one table: tokens/s per task for llama.cpp's two modes next to every rasd method,
with each method's ratio to rasd's own `ar` from eval.json. Tokens/s counts generated tokens
over decode time (the prompt pass excluded, as in rasd's table). Writes eval-with-llama-cpp.md
and adds the peers to eval.json.

When llama-cpp-python is not importable (it builds from source, ~16 minutes:
scripts/reference/setup-llama-cpp), prints a note and exits 0, so the evaluation still stands.
Known quirks of 0.3.36 (design brief): with a draft model it needs logits_all=True for prompts
over 512 tokens, and its prompt-lookup output can differ from its own plain greedy output at
near-ties; the table reports how many outputs matched.
"""
import argparse
import json
import os
import sys
import time


def decode(llm, tokens, max_tokens, stops):
    """Greedy tokens after `tokens` and the decode seconds (first to last generated token)."""
    out, first, last = [], None, None
    llm.reset()
    for t in llm.generate(tokens, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
        now = time.perf_counter()
        if first is None:
            first = now
        if t in stops or len(out) >= max_tokens:
            break
        out.append(int(t))
        last = now
        if len(out) >= max_tokens:
            break
    seconds = (last - first) if first is not None and last is not None and last > first else 0.0
    return out, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="directory written by rasd-index eval")
    ap.add_argument("--model", default=os.environ.get("RASD_MODEL") or os.path.join(
        os.environ.get("RASD_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rasd"),
        "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    try:
        import llama_cpp
        from llama_cpp import Llama
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding
    except ImportError:
        print("llama.cpp side by side: skipped (llama-cpp-python is not installed here; "
              "scripts/reference/setup-llama-cpp builds it, ~16 minutes)")
        return 0

    prompts = [json.loads(l) for l in open(os.path.join(a.results, "prompts.jsonl")) if l.strip()]
    report = json.load(open(os.path.join(a.results, "eval.json")))
    n_ctx = max(len(p["tokens"]) + p["maxTokens"] for p in prompts) + 32
    plain = Llama(model_path=a.model, n_ctx=n_ctx, n_threads=a.threads, n_threads_batch=a.threads,
                  n_batch=1024, logits_all=False, verbose=False)
    lookup = Llama(model_path=a.model, n_ctx=n_ctx, n_threads=a.threads, n_threads_batch=a.threads, n_batch=1024,
                   logits_all=True, verbose=False, draft_model=LlamaPromptLookupDecoding(num_pred_tokens=10))
    totals = {}
    for p in prompts:
        stops = set(p["stopTokens"])
        for name, llm in (("llama.cpp", plain), ("llama.cpp-pld", lookup)):
            out, seconds = decode(llm, p["tokens"], p["maxTokens"], stops)
            t = totals.setdefault((p["task"], name), {"tokens": 0, "seconds": 0.0, "prompts": 0, "outputs": []})
            t["tokens"] += max(0, len(out) - 1)  # the first token comes with the prompt pass
            t["seconds"] += seconds
            t["prompts"] += 1
            t["outputs"].append(out)
        same = totals[(p["task"], "llama.cpp")]["outputs"][-1] == totals[(p["task"], "llama.cpp-pld")]["outputs"][-1]
        print(f"{p['task']} {p['id']}: llama.cpp plain and prompt lookup {'agree' if same else 'DIFFER'}", file=sys.stderr)

    ar = {r["task"]: r for r in report["results"] if r["method"] == "ar"}
    def rate(r):
        return r["tokens"] / r["seconds"] if r["seconds"] > 0 else 0.0
    peers = []
    for (task, name), t in totals.items():
        tps = t["tokens"] / t["seconds"] if t["seconds"] > 0 else 0.0
        base = rate(ar[task]) if task in ar else 0.0
        agree = sum(x == y for x, y in zip(totals[(task, "llama.cpp")]["outputs"], totals[(task, "llama.cpp-pld")]["outputs"]))
        peers.append({"task": task, "method": name, "prompts": t["prompts"], "tokensPerSecond": tps,
                      "speedupOverRASDAR": tps / base if base > 0 else None, "matchesPlain": agree})
    report["peers"] = [{k: v for k, v in p.items() if k != "matchesPlain"} for p in peers]
    json.dump(report, open(os.path.join(a.results, "eval.json"), "w"), indent=2, sort_keys=True)

    lines = [f"llama-cpp-python {llama_cpp.__version__}, {a.threads} threads, same prompt token ids; tokens/s exclude the prompt pass.", "",
             "| task | method | prompts | tokens/s | vs rasd ar |", "|---|---|---:|---:|---:|"]
    for task in dict.fromkeys(r["task"] for r in report["results"]):
        for r in report["results"]:
            if r["task"] == task:
                ratio = rate(r) / rate(ar[task]) if rate(ar[task]) > 0 else 0
                lines.append(f"| {task} | rasd {r['method']} | {r['prompts']} | {rate(r):.1f} | {ratio:.2f}× |")
        for p in peers:
            if p["task"] == task:
                note = "" if p["method"] == "llama.cpp" else f" (output = plain on {p['matchesPlain']}/{p['prompts']})"
                s = f"{p['speedupOverRASDAR']:.2f}×" if p["speedupOverRASDAR"] else "—"
                lines.append(f"| {task} | {p['method']}{note} | {p['prompts']} | {p['tokensPerSecond']:.1f} | {s} |")
    table = "\n".join(lines)
    open(os.path.join(a.results, "eval-with-llama-cpp.md"), "w").write(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
