#!/usr/bin/env python3
"""Choose the draft head's training set: corpus texts the target reads, and prompts the target
answers greedily (its answers become training sequences), all disjoint from the evaluation sets.

Sources (named corpora under $RASD_CACHE/corpora, as `rasd-index build corpus` fetched them):
  code    pieces of CPython stdlib/test files; completion prompts made of a stdlib function's
          signature and docstring (HumanEval's shape, from other code).
  docs    pieces of the Python documentation, the FAQ excluded (the FAQ is where the DocQA and
          In-domain QA tasks come from); chat questions about glossary terms and library modules;
          chat requests to summarise or explain a documentation section.
  papers  ACLSum papers that are in no evaluation task (train/validation split): abstract and
          aspect-question prompts over the paper, like the Summary and DocQA tasks.

Disjointness from every evaluation prompt ($RASD_CACHE/tasks/*.jsonl), checked here and
reported in the output's `prepare.json`:
  1. source level: FAQ files and evaluation papers (by id) are never read;
  2. exact: a training prompt or question equal to an evaluation question or prompt after
     lower-casing and collapsing white space is dropped;
  3. near-duplicate, long texts: a training text or prompt sharing any 10-word sequence with any
     evaluation prompt (its instruction, document and question, or completion prompt) is dropped;
  4. near-duplicate, short questions: a question whose word set has Jaccard similarity >= 0.5
     with any evaluation question is dropped.
Deterministic for a given --seed. Standard library only.
"""
import argparse, ast, glob, json, os, random, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASPECTS = ["What problem or challenge does this paper address?",
           "What approach or method does this paper propose?",
           "What are the main outcomes or findings of this paper?"]
NGRAM = 10
JACCARD = 0.5


def cache() -> Path:
    c = os.environ.get("RASD_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rasd")
    return Path(c)


def words(text):
    return re.findall(r"\w+", text.lower())


def norm(text):
    return " ".join(text.lower().split())


def ngrams(ws, n=NGRAM):
    return {" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)}


class EvalIndex:
    """Every evaluation prompt's word n-grams, exact texts and question word sets."""

    def __init__(self, task_dir: Path):
        self.grams, self.exact, self.questions, self.papers, self.count = set(), set(), [], set(), 0
        files = sorted(task_dir.glob("*.jsonl"))
        if not files:
            sys.exit(f"prepare: no evaluation task sets in {task_dir}; run scripts/tasks/build_tasks.py first "
                     "(disjointness is checked against them)")
        for f in files:
            for line in f.open(encoding="utf-8"):
                r = json.loads(line)
                self.count += 1
                parts = [r.get(k) or "" for k in ("prompt", "instruction", "document", "question")]
                for p in parts:
                    if p:
                        self.grams |= ngrams(words(p))
                for p in (r.get("prompt"), r.get("question")):
                    if p:
                        self.exact.add(norm(p))
                if r.get("question"):
                    self.questions.append(set(words(r["question"])))
                if r["id"].startswith("aclsum/"):
                    self.papers.add(r["id"].split("/")[1])

    def overlap(self, text):
        return any(g in self.grams for g in ngrams(words(text)))

    def similar_question(self, q):
        w = set(words(q))
        return any(len(w & e) / max(1, len(w | e)) >= JACCARD for e in self.questions)


def manifest_files(name):
    m = json.loads((ROOT / "corpora" / name / "manifest.json").read_text())
    base = cache() / "corpora" / name
    if not (base / "FETCHED").exists():
        sys.exit(f"prepare: corpus {name} is not fetched; run `rasd-index build corpus {name}` (or corpora/{name}/fetch)")
    root = base / m["root"]
    files = set()
    for pattern in m["include"]:
        files |= {Path(p) for p in glob.glob(str(root / pattern), recursive=True) if os.path.isfile(p)}
    return root, sorted(files)


def pieces(text, size):
    """Pieces of about `size` characters, cut at line ends."""
    out, cur = [], []
    n = 0
    for line in text.splitlines(keepends=True):
        cur.append(line)
        n += len(line)
        if n >= size:
            out.append("".join(cur))
            cur, n = [], 0
    if n > size // 4:
        out.append("".join(cur))
    return out


def read(path):
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def code_prompts(files, rng, count):
    """Function signature + docstring, HumanEval-style, from stdlib (non-test) modules."""
    found = []
    for path in files:
        if "/test/" in str(path) or "/tests/" in str(path):
            continue
        src = read(path)
        if not src:
            continue
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError):
            continue
        lines = src.splitlines(keepends=True)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and ast.get_docstring(node) and node.body and len(node.body) > 1:
                doc = node.body[0]
                text = "".join(lines[node.lineno - 1:doc.end_lineno])
                if 80 < len(text) < 1200:
                    found.append(text)
    rng.shuffle(found)
    return found[:count]


def doc_sections(files):
    """(title, body) of documentation sections, headings underlined with =-~^."""
    out = []
    for path in files:
        lines = (read(path) or "").splitlines()
        heads = [i for i in range(len(lines) - 1) if lines[i].strip() and re.fullmatch(r"[-=~^*]{3,}", lines[i + 1].strip() or "x")]
        for k, i in enumerate(heads):
            end = heads[k + 1] if k + 1 < len(heads) else len(lines)
            body = "\n".join(lines[i + 2:end]).strip()
            if 400 < len(body) < 3000:
                out.append((lines[i].strip(), body))
    return out


def glossary_terms(root):
    text = read(root / "glossary.rst.txt") or ""
    return [m.group(1).strip() for m in re.finditer(r"^   ([^\s].*)\n      \S", text, re.M) if len(m.group(1)) < 40]


def modules(root):
    out = []
    for path in sorted((root / "library").glob("*.rst.txt")):
        m = re.search(r"^\.\. module:: (\S+)\s*\n(?:\s+:\w+:.*\n)*?\s+:synopsis: (.+)$", read(path) or "", re.M)
        if m:
            out.append(m.group(1))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", default=[], help="corpus to draw from (code, docs, papers); repeatable")
    ap.add_argument("--tasks", type=Path, default=None, help="evaluation task sets (default: $RASD_CACHE/tasks)")
    ap.add_argument("--out", type=Path, required=True, help="output directory (prepared.jsonl, prepare.json)")
    ap.add_argument("--text-chars", type=int, default=1_000_000, help="characters of corpus text per corpus")
    ap.add_argument("--prompts", type=int, default=150, help="greedy-answer prompts per corpus and kind")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    corpora = a.corpus or ["code", "docs"]
    rng = random.Random(a.seed)
    ev = EvalIndex(a.tasks or cache() / "tasks")
    report = {"seed": a.seed, "corpora": corpora, "evaluationPrompts": ev.count, "ngram": NGRAM, "jaccard": JACCARD,
              "dropped": {"exact": 0, "ngram": 0, "similarQuestion": 0}, "kept": {}, "excludedSources": []}
    records = []

    def keep(record, question=None):
        text = record.get("text") or record.get("prompt")
        if question is not None and norm(question) in ev.exact or norm(text) in ev.exact:
            report["dropped"]["exact"] += 1
            return
        if ev.overlap(text):
            report["dropped"]["ngram"] += 1
            return
        if question is not None and ev.similar_question(question):
            report["dropped"]["similarQuestion"] += 1
            return
        records.append(record)
        report["kept"][record["source"]] = report["kept"].get(record["source"], 0) + 1

    for name in corpora:
        if name == "papers":
            data = cache() / "corpora" / "papers" / "data" / "papers.jsonl"
            if not data.exists():
                sys.exit("prepare: corpus papers is not fetched; run `rasd-index build corpus papers`")
            papers = [json.loads(l) for l in data.open(encoding="utf-8")]
            report["excludedSources"].append(f"papers: {sum(p['id'] in ev.papers for p in papers)} evaluation papers")
            papers = [p for p in papers if p["id"] not in ev.papers]
            rng.shuffle(papers)
            for p in papers[:a.prompts]:
                doc = p["title"] + "\n\n" + p["text"][:2500]
                if rng.random() < 0.5:
                    keep({"source": "answers/papers", "chat": True, "maxTokens": 128,
                          "prompt": "Write the abstract of the following paper.\n\n" + doc + "\n\nAbstract:"})
                else:
                    q = rng.choice(ASPECTS)
                    keep({"source": "answers/papers", "chat": True, "maxTokens": 96,
                          "prompt": "Read the paper and answer the question.\n\n" + doc + "\n\n" + q})
            continue
        root, files = manifest_files(name)
        if name == "docs":
            faq = [f for f in files if "/faq/" in str(f)]
            report["excludedSources"].append(f"docs: {len(faq)} FAQ files")
            files = [f for f in files if "/faq/" not in str(f)]
        chunks = []
        for f in files:
            text = read(f)
            if text:
                chunks += pieces(text, 1800)
        rng.shuffle(chunks)
        total = 0
        for c in chunks:
            if total >= a.text_chars:
                break
            before = len(records)
            keep({"source": name, "text": c})
            total += len(c) if len(records) > before else 0
        if name == "code":
            for p in code_prompts(files, rng, a.prompts):
                keep({"source": "answers/code", "chat": False, "maxTokens": 128, "prompt": p})
        if name == "docs":
            questions = [f"What is {t} in Python?" if rng.random() < 0.5 else f"Explain what {t} means in Python." for t in glossary_terms(root)]
            questions += [f"What is the {m} module used for in Python?" for m in modules(root)]
            rng.shuffle(questions)
            for q in questions[:a.prompts]:
                keep({"source": "answers/qa", "chat": True, "maxTokens": 96, "prompt": "Answer this question about Python.\n\n" + q}, question=q)
            sections = doc_sections(files)
            rng.shuffle(sections)
            for title, body in sections[:a.prompts // 2]:
                kind = rng.random()
                if kind < 0.5:
                    prompt = "Summarize this section of the Python documentation.\n\n" + body
                else:
                    prompt = f"Answer the question using this section of the Python documentation.\n\n{body}\n\nWhat does the section \"{title}\" explain?"
                keep({"source": "answers/docs", "chat": True, "maxTokens": 96, "prompt": prompt})
    # Prompts first inside each source is not needed: shuffle so a partial dump is a fair sample.
    rng.shuffle(records)
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "prepared.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (a.out / "prepare.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"prepare: {len(records)} records {report['kept']}; dropped {report['dropped']}", file=sys.stderr)


if __name__ == "__main__":
    main()
