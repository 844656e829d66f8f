#!/usr/bin/env python3
"""Datastore and retrieval benchmark: rasd against infini-gram 2.6.0 and REST, in one run.

Run it through `scripts/bench/retrieval` (which prepares the build and the Python environment).

Corpus (~95 M SmolLM2 tokens, three domains; Debian bookworm packages, versions pinned below):
  python  CPython 3.11 standard library and test suite, every *.py
          (libpython3.11-stdlib, libpython3.11-testsuite: usr/lib/python3.11/**/*.py)
  java    OpenJDK 17 class library sources, every *.java (openjdk-17-source: lib/src.zip)
  docs    Python 3.11 documentation sources (python3.11-doc: _sources/**/*.rst.txt), the Debian
          Reference (debian-reference-en: *.en.html) and the Debian Administrator's Handbook
          in its 25 languages (debian-handbook: html/**/*.html), as shipped (HTML markup kept)
A document is one file; its domain is the first component of its path in the corpus.

Steps, each cached under ~/.cache/rasd/bench-retrieval/ and skipped when already done:
  1. fetch the .deb files with `apt-get download`, extract them with `dpkg-deb -x`;
  2. assemble the corpus tree (hard links), tokenize it with rasd's own tokenizer
     (`rasd-index corpus tokenize --output`, the reference model's tokenizer);
  3. hold out every 50th document and draw 2,000 queries (16 context tokens, the 10 true next
     tokens) from the held-out ones (scripts/bench/split_heldout.py, seed 2026).
Then, every time:
  4. rasd: `rasd-index bench retrieval --build-tokens ...` (build wall time and peak RSS of the
     build process, bytes per token on disk, per-query latency single thread, median of --runs
     passes, oracle acceptance per domain), --build-repeats times;
  5. infini-gram 2.6.0: its index of the same ids (u16), its own `build_sa` timed (peak RSS of
     its process tree) --build-repeats times, alternating with rasd's builds; then its "full
     task" per query timed in Python like rasd's (longest suffix <= 16 by bisection with
     `count`, then the same top-64 trie from exact `ntd` next-token distributions);
  6. exactness: every query answered by rasd (`rasd-index query --queries --json`) against
     infini-gram as the oracle (scripts/bench/retrieval_oracle.py), whose first 200 answers are
     themselves checked against brute force over every occurrence;
  7. REST: its acceptance by emulating DraftRetriever's rule on the same index
     (scripts/bench/rest_emulation.py); its build, size and latency are the design brief's
     figures (REST cannot be installed here), labelled as such;
  8. one side-by-side table, printed and written with the raw figures to results/retrieval/.

Oracle acceptance: 1 + the longest prefix of the 10 true next tokens that is a path of the trie
(the bonus token counts, as in Spec-Bench), 64-node trie.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import infinigram_index  # noqa: E402
import rest_emulation  # noqa: E402
import retrieval_oracle  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCABULARY = 49152

#: Debian bookworm packages and the versions the figures were measured with. A newer version
#: from apt's lists is used (and recorded) when a pinned one is no longer offered.
PACKAGES = {
    "libpython3.11-stdlib": "3.11.2-6+deb12u9",
    "libpython3.11-testsuite": "3.11.2-6+deb12u9",
    "openjdk-17-source": "17.0.21.1+2-1~deb12u1",
    "python3.11-doc": "3.11.2-6+deb12u9",
    "debian-reference-en": "2.100",
    "debian-handbook": "11.20220922",
}

#: (corpus directory, package, directory inside the package, file name suffix). The JDK
#: sources are inside a zip in their package.
COMPOSITION = [
    ("python/cpython-3.11", "libpython3.11-stdlib", "usr/lib/python3.11", ".py"),
    ("python/cpython-3.11", "libpython3.11-testsuite", "usr/lib/python3.11", ".py"),
    ("java/openjdk-17", "openjdk-17-source", "usr/lib/jvm/openjdk-17/lib/src.zip", ".java"),
    ("docs/python-3.11-doc", "python3.11-doc", "usr/share/doc/python3.11/html/_sources", ".rst.txt"),
    ("docs/debian-reference", "debian-reference-en", "usr/share/debian-reference", ".en.html"),
    ("docs/debian-handbook", "debian-handbook", "usr/share/doc/debian-handbook/html", ".html"),
]

#: The issue's figures to reach.
TARGETS = {"build_seconds": 16.5, "peak_bytes_per_token": 12.0, "disk_bytes_per_token": 4.0,
           "p50": 50.0, "p99": 500.0, "mismatches": 0}

#: REST DraftRetriever on this machine, from the design brief (not rerun: REST needs crates.io).
REST_BRIEF = {"build_seconds": 16.5, "peak_bytes": 1.16 * 2**30, "brief_tokens": 100e6, "disk_bytes_per_token": 8.0,
              "p50": 165.0}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command, **kwargs):
    """Runs a command, failing with its output when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr.strip()}")
    return result.stdout


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Stage:
    """A cached step: its output directory is written as DIR.partial and renamed when complete,
    with a hidden .recipe file naming its inputs (hidden: the corpus reader skips it); a
    directory with the same recipe is reused."""

    def __init__(self, cache, name, recipe):
        self.path = os.path.join(cache, name)
        self.recipe = json.dumps(recipe, sort_keys=True, indent=1)
        self.partial = self.path + ".partial"

    def done(self):
        try:
            with open(os.path.join(self.path, ".recipe")) as f:
                return f.read() == self.recipe
        except OSError:
            return False

    def begin(self):
        shutil.rmtree(self.partial, ignore_errors=True)
        os.makedirs(self.partial)
        return self.partial

    def commit(self):
        with open(os.path.join(self.partial, ".recipe"), "w") as f:
            f.write(self.recipe)
        shutil.rmtree(self.path, ignore_errors=True)
        os.rename(self.partial, self.path)


# MARK: corpus

def fetch_packages(cache):
    """Downloads the packages (idempotent); returns {package: (path, version, sha256)}."""
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    out = {}
    for package, version in PACKAGES.items():
        found = sorted(f for f in os.listdir(debs) if f.startswith(package + "_") and f.endswith(".deb"))
        if not found:
            log(f"apt-get download {package}={version}")
            pinned = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=debs, capture_output=True, text=True)
            if pinned.returncode != 0:
                log(f"  {package}={version} is not offered; taking apt's candidate version")
                run(["apt-get", "download", package], cwd=debs)
            found = sorted(f for f in os.listdir(debs) if f.startswith(package + "_") and f.endswith(".deb"))
        path = os.path.join(debs, found[-1])
        actual = run(["dpkg-deb", "-f", path, "Version"]).strip()  # also checks the archive
        out[package] = (path, actual, sha256(path))
    return out


def extract_packages(cache, packages):
    recipe = {p: sha for p, (_, _, sha) in packages.items()}
    stage = Stage(cache, "extract", recipe)
    if not stage.done():
        log("extracting the packages")
        root = stage.begin()
        for package, (path, _, _) in packages.items():
            run(["dpkg-deb", "-x", path, os.path.join(root, package)])
        stage.commit()
    return stage.path


def assemble_corpus(cache, extracted, packages):
    """The corpus tree: domain/source/relative path, hard links into the extracted packages."""
    recipe = {"composition": COMPOSITION, "packages": {p: sha for p, (_, _, sha) in packages.items()}}
    stage = Stage(cache, "corpus", recipe)
    if stage.done():
        return stage.path
    log("assembling the corpus")
    root = stage.begin()
    skipped_links = 0
    for target, package, inside, suffix in COMPOSITION:
        source = os.path.join(extracted, package, inside)
        if source.endswith(".zip"):
            with zipfile.ZipFile(source) as z:
                for member in z.infolist():
                    if member.filename.endswith(suffix) and not member.is_dir():
                        z.extract(member, os.path.join(root, target))
            continue
        for directory, _, files in os.walk(source):
            for name in files:
                if not name.endswith(suffix):
                    continue
                path = os.path.join(directory, name)
                if os.path.islink(path):
                    skipped_links += 1
                    continue
                destination = os.path.join(root, target, os.path.relpath(path, source))
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                try:
                    os.link(path, destination)
                except OSError:
                    shutil.copy2(path, destination)
    if skipped_links:
        log(f"  left out {skipped_links} symbolic links")
    stage.commit()
    return stage.path


def tokenize_corpus(cache, corpus, rasd_index):
    """rasd's tokenizer over the corpus: tokens.u32, documents.u64, manifest.jsonl, domains.txt."""
    with open(os.path.join(corpus, ".recipe")) as f:
        corpus_recipe = f.read()
    stage = Stage(cache, "tokens", {"corpus": hashlib.sha256(corpus_recipe.encode()).hexdigest(),
                                    "rasd-index": sha256(rasd_index)})
    if stage.done():
        return stage.path
    log("tokenizing the corpus with rasd-index corpus tokenize")
    out = stage.begin()
    summary = run([rasd_index, "corpus", "tokenize", corpus, "--output", out])
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(summary)
    with open(os.path.join(out, "manifest.jsonl")) as f, open(os.path.join(out, "domains.txt"), "w") as d:
        d.write("\n".join(json.loads(line)["path"].split("/", 1)[0] for line in f))
    stage.commit()
    return stage.path


def split_corpus(cache, tokens, every, queries, seed):
    stage = Stage(cache, "split", {"tokens": open(os.path.join(tokens, ".recipe")).read(), "every": every,
                                   "queries": queries, "seed": seed, "script": sha256(os.path.join(REPO, "scripts/bench/split_heldout.py"))})
    if not stage.done():
        log("holding out documents and drawing queries")
        out = stage.begin()
        run([sys.executable, os.path.join(REPO, "scripts/bench/split_heldout.py"),
             os.path.join(tokens, "tokens.u32"), os.path.join(tokens, "documents.u64"),
             "--domains", os.path.join(tokens, "domains.txt"), "--out-prefix", os.path.join(out, "indexed"),
             "--every", str(every), "--queries", str(queries), "--seed", str(seed)])
        stage.commit()
    return os.path.join(stage.path, "indexed")


def corpus_composition(tokens, every):
    """Documents and tokens per domain and source, in all and indexed (split_heldout's rule)."""
    rows = {}
    with open(os.path.join(tokens, "manifest.jsonl")) as f:
        for d, line in enumerate(f):
            entry = json.loads(line)
            key = "/".join(entry["path"].split("/")[:2])
            row = rows.setdefault(key, {"documents": 0, "tokens": 0, "bytes": 0, "indexedTokens": 0, "heldOutDocuments": 0})
            row["documents"] += 1
            row["tokens"] += entry["tokenCount"]
            row["bytes"] += entry["byteCount"]
            if d % every == every // 2:
                row["heldOutDocuments"] += 1
            else:
                row["indexedTokens"] += entry["tokenCount"]
    return rows


# MARK: measuring

def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    memory = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    os_name = next((line.split("=", 1)[1].strip().strip('"') for line in open("/etc/os-release") if line.startswith("PRETTY_NAME")), "?")
    swift = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {"cpu": cpu, "cores": os.cpu_count(), "memoryGiB": round(memory / 2**30, 1), "os": os_name,
            "kernel": platform.release(), "swift": swift[0] if swift else "?", "python": platform.python_version()}


def load_average():
    return [round(x, 2) for x in os.getloadavg()]


def quantile(sorted_values, q):
    """The same quantile rule as rasd's LatencySummary (nearest rank, halves rounded up)."""
    return sorted_values[min(len(sorted_values) - 1, int((len(sorted_values) - 1) * q + 0.5))]


def latency_summary(samples):
    s = sorted(samples)
    return {"p50": quantile(s, 0.5), "p90": quantile(s, 0.9), "p99": quantile(s, 0.99),
            "mean": sum(s) / len(s), "max": s[-1]}


def per_domain_mean(queries, values):
    sums = {}
    for q, v in zip(queries, values):
        for key in ("all", q.get("domain", "all")):
            total, n = sums.get(key, (0.0, 0))
            sums[key] = (total + v, n + 1)
    return {k: t / n for k, (t, n) in sums.items()}


def rasd_bench(rasd_index, datastore, split, runs):
    out = run([rasd_index, "bench", "retrieval", "--datastore", datastore, "--queries", split + ".queries.jsonl",
               "--build-tokens", split + ".u32", "--build-documents", split + ".starts.u64",
               "--vocab-size", str(VOCABULARY), "--runs", str(runs), "--json"])
    return json.loads(out)


def time_infinigram(oracle, queries, runs):
    """Per-query latency (µs, median of `runs` interleaved passes) of infini-gram's full task."""
    times = [[] for _ in queries]
    answers = []
    for r in range(runs):
        for i, q in enumerate(queries):
            context = q["context"]
            start = time.perf_counter_ns()
            answer = oracle.answer(context, binary=True)
            times[i].append((time.perf_counter_ns() - start) / 1000)
            if r == 0:
                answers.append(answer)
    return [statistics.median(t) for t in times], answers


def rest_acceptance(sa, oracle, queries, answers, seeds):
    """Per seed: REST's per-query acceptance and tree sizes."""
    per_seed = [([], []) for _ in seeds]
    start = time.time()
    for i, (q, a) in enumerate(zip(queries, answers)):
        results = rest_emulation.emulate(sa, oracle.engine, q["context"], a["matchLength"], q["next"],
                                         [seed * 1_000_003 + i for seed in seeds])
        for (acc, nodes), (accs, sizes) in zip(results, per_seed):
            accs.append(acc)
            sizes.append(nodes)
        if (i + 1) % 500 == 0:
            log(f"  REST emulation {i + 1}/{len(queries)} ({time.time() - start:.0f} s)")
    return per_seed


# MARK: report

def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def verdict(value, target):
    return "met" if value <= target else "missed"


def composition_table(result):
    lines = ["| domain / source | documents | held out | tokens | indexed tokens |", "|---|---:|---:|---:|---:|"]
    rows = result["composition"]
    for key in sorted(rows):
        r = rows[key]
        lines.append(f"| {key} | {r['documents']:,} | {r['heldOutDocuments']:,} | {r['tokens']:,} | {r['indexedTokens']:,} |")
    total = {k: sum(r[k] for r in rows.values()) for k in ("documents", "heldOutDocuments", "tokens", "indexedTokens")}
    lines.append(f"| all | {total['documents']:,} | {total['heldOutDocuments']:,} | {total['tokens']:,} | {total['indexedTokens']:,} |")
    return "\n".join(lines)


def table(result):
    r, ig, rest = result["rasd"], result["infinigram"], result["rest"]
    domains = [d for d in ("java", "python", "docs", "all") if d in r["acceptance"]]
    n = result["queries"]["byDomain"]

    def f(x, digits=1):
        return "—" if x is None else f"{x:,.{digits}f}"

    def build(s):
        return f"{f(s['median'])} s ({f(s['min'])}–{f(s['max'])})" if len(s["all"]) > 1 else f"{f(s['median'])} s"

    lines = [
        "| | rasd | infini-gram 2.6.0 | REST DraftRetriever | target (rasd) |",
        "|---|---:|---:|---:|---|",
        f"| build, median of {len(r['buildSeconds']['all'])} (min–max) | {build(r['buildSeconds'])} | "
        f"{build(ig['buildSeconds'])} (SA only) | {f(rest['buildSeconds'])} s ‡ | ≤ 16.5 s: {r['verdicts']['build']} |",
        f"| build CPU time (user + sys), median (min–max) | {build(r['buildCPUSeconds'])} | {build(ig['buildCPUSeconds'])} | — | |",
        f"| peak memory, bytes/token | {f(r['peakBytesPerToken'], 2)} | {f(ig['peakBytesPerToken'], 2)} | "
        f"{f(rest['peakBytesPerToken'], 2)} ‡ | ≤ 12: {r['verdicts']['peak']} |",
        f"| on disk, bytes/token | {f(r['diskBytesPerToken'], 2)} | {f(ig['diskBytesPerToken'], 2)} | "
        f"{f(rest['diskBytesPerToken'], 2)} ‡ | ≤ 4.0: {r['verdicts']['disk']} |",
        f"| query p50, µs | {f(r['latency']['p50'])} | {f(ig['latency']['p50'])} | {f(rest['p50'])} ‡ | ≤ 50: {r['verdicts']['p50']} |",
        f"| query p99, µs | {f(r['latency']['p99'])} | {f(ig['latency']['p99'])} | — | ≤ 500: {r['verdicts']['p99']} |",
        f"| query mean, µs | {f(r['latency']['mean'])} | {f(ig['latency']['mean'])} | — | |",
    ]
    for d in domains:
        lines.append(f"| oracle acceptance, {d} ({n[d]} queries) | {f(r['acceptance'][d], 3)} | "
                     f"{f(ig['acceptance'][d], 3)} | {f(rest['acceptance'][d], 3)} † | |")
    lines.append(f"| mean trie nodes | {f(r['meanNodes'])} | {f(ig['meanNodes'])} | {f(rest['meanNodes'])} † | |")
    ex = result["exactness"]
    lines.append(f"| answers ≠ exact oracle | {ex['mismatches']} of {ex['queries']} | (the oracle) | — | 0: {r['verdicts']['exact']} |")
    lines.append("")
    sm = ig["sampled"]
    lines.append(f"infini-gram with its default max_support=1000 (ntd samples above 1,000 occurrences; not the exact trie, "
                 f"{sm['answersDifferingFromOracle']} of {ex['queries']} answers differ): query p50 {f(sm['latency']['p50'])} µs, "
                 f"p99 {f(sm['latency']['p99'])} µs, mean {f(sm['latency']['mean'])} µs; acceptance {f(sm['acceptance']['all'], 3)} overall.")
    lines.append("")
    lines.append("‡ from the design brief (REST measured on this machine earlier), not rerun: REST cannot be installed here. "
                 f"Peak: 1.16 GiB over 100 M tokens.  † emulated on the same index, mean over {len(rest['seeds'])} "
                 f"hash-order seeds (range {f(rest['acceptanceRange'][0], 3)}–{f(rest['acceptanceRange'][1], 3)} overall).")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rasd-index", required=True, help="the release rasd-index executable")
    ap.add_argument("--cache", default=os.path.join(os.environ.get("RASD_CACHE", os.path.expanduser("~/.cache/rasd")), "bench-retrieval"))
    ap.add_argument("--results", default=os.path.join(REPO, "results", "retrieval"))
    ap.add_argument("--runs", type=int, default=5, help="timed passes over the queries (per-query median)")
    ap.add_argument("--build-repeats", type=int, default=3, help="timed builds per system, alternating")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--every", type=int, default=50, help="hold out every N-th document")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--rest-seeds", type=int, default=3, help="hash-order seeds of the REST emulation")
    ap.add_argument("--oracle-self-check", type=int, default=200, metavar="N",
                    help="check the oracle's first N answers against brute force over every occurrence")
    ap.add_argument("--infinigram-mem", type=int, default=16, help="GiB given to infini-gram's build_sa (its batching)")
    a = ap.parse_args()
    rasd_index = os.path.abspath(a.rasd_index)
    os.makedirs(a.cache, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    results_dir = os.path.join(a.results, stamp)
    os.makedirs(results_dir)
    result = {"date": stamp, "machine": machine(), "load": [("start", load_average())],
              "command": "scripts/bench/retrieval " + " ".join(sys.argv[3:])}

    packages = fetch_packages(a.cache)
    result["packages"] = {p: {"version": v, "sha256": s} for p, (_, v, s) in packages.items()}
    corpus = assemble_corpus(a.cache, extract_packages(a.cache, packages), packages)
    tokens = tokenize_corpus(a.cache, corpus, rasd_index)
    result["tokenizer"] = open(os.path.join(tokens, "summary.txt")).read().strip()
    result["composition"] = corpus_composition(tokens, a.every)
    split = split_corpus(a.cache, tokens, a.every, a.queries, a.seed)
    queries = retrieval_oracle.load_queries(split + ".queries.jsonl")
    indexed_tokens = os.path.getsize(split + ".u32") // 4
    by_domain = {}
    for q in queries:
        by_domain[q["domain"]] = by_domain.get(q["domain"], 0) + 1
    by_domain["all"] = len(queries)
    result["queries"] = {"count": len(queries), "byDomain": by_domain, "indexedTokens": indexed_tokens}
    log(f"corpus: {sum(r['tokens'] for r in result['composition'].values()):,} tokens; "
        f"indexed {indexed_tokens:,}; {len(queries)} queries {by_domain}")

    # Builds, alternating so that both systems see the same background load.
    datastore = os.path.join(a.cache, "indexes", "rasd")
    ig_dir = os.path.join(a.cache, "indexes", "infini-gram")
    shutil.rmtree(ig_dir, ignore_errors=True)
    infinigram_index.write_tokenized(split + ".u32", split + ".starts.u64", ig_dir)
    rasd_runs, ig_builds = [], []
    for k in range(a.build_repeats):
        log(f"rasd: build and queries ({k + 1}/{a.build_repeats}), load {load_average()}")
        rasd_runs.append(rasd_bench(rasd_index, datastore, split, a.runs))
        result["load"].append((f"after rasd build {k + 1}", load_average()))
        log(f"  {rasd_runs[-1]['buildSeconds']:.1f} s ({rasd_runs[-1]['buildCPUSeconds']:.1f} s CPU), "
            f"p50 {rasd_runs[-1]['result']['latency']['p50']:.1f} µs")
        log(f"infini-gram: build_sa ({k + 1}/{a.build_repeats}), load {load_average()}")
        ig_builds.append(infinigram_index.build_suffix_array(ig_dir, os.cpu_count(), a.infinigram_mem,
                                                            os.path.join(results_dir, f"infini-gram-build-{k + 1}.log")))
        result["load"].append((f"after infini-gram build {k + 1}", load_average()))
        log(f"  {ig_builds[-1].seconds:.1f} s ({ig_builds[-1].cpu_seconds:.1f} s CPU)")

    log("infini-gram: timed queries (full task)")
    engine = infinigram_index.open_engine(ig_dir)
    oracle = retrieval_oracle.Oracle(engine)
    ig_latencies, ig_answers = time_infinigram(oracle, queries, a.runs)
    log("infini-gram: timed queries with its default max_support=1000 (sampled counts)")
    sampled_latencies, sampled_answers = time_infinigram(retrieval_oracle.Oracle(engine, max_support=1000), queries, a.runs)
    result["load"].append(("after infini-gram queries", load_average()))

    log("exactness: oracle answers and rasd's")
    expected = retrieval_oracle.oracle_answers(oracle, queries)
    suffix_array = infinigram_index.SuffixArray(ig_dir)
    self_check = retrieval_oracle.self_check(oracle, suffix_array, queries[:a.oracle_self_check], expected)
    log(self_check)
    actual = retrieval_oracle.rasd_answers(rasd_index, datastore, split + ".queries.jsonl")
    mismatches = retrieval_oracle.compare(queries, expected, actual)
    with open(os.path.join(results_dir, "exactness.txt"), "w") as f:
        retrieval_oracle.report(queries, expected, actual, mismatches, file=f)
    retrieval_oracle.report(queries, expected, actual, mismatches, file=sys.stderr)
    timed_differs = sum(1 for x, y in zip(ig_answers, expected) if x != y)
    if timed_differs:
        log(f"warning: the timed infini-gram answers differ from the oracle's on {timed_differs} queries")

    log("REST: emulated acceptance")
    seeds = list(range(1, a.rest_seeds + 1))
    rest_runs = rest_acceptance(suffix_array, oracle, queries, expected, seeds)
    result["load"].append(("end", load_average()))

    # Figures.
    rasd_disk = rasd_runs[-1]["bytesPerToken"]
    rasd_peak = statistics.median(r["buildPeakBytes"] for r in rasd_runs)
    rasd_latency = {k: statistics.median(r["result"]["latency"][k] for r in rasd_runs) for k in ("p50", "p90", "p99", "mean", "max")}
    rasd = {
        "buildSeconds": spread([r["buildSeconds"] for r in rasd_runs]),
        "buildCPUSeconds": spread([r["buildCPUSeconds"] for r in rasd_runs]),
        "peakBytes": rasd_peak, "peakBytesPerToken": rasd_peak / indexed_tokens,
        "diskBytesPerToken": rasd_disk, "latency": rasd_latency,
        "latencyPerBuild": [r["result"]["latency"] for r in rasd_runs],
        "acceptance": rasd_runs[-1]["result"]["acceptance"], "meanNodes": rasd_runs[-1]["result"]["meanNodes"],
        "meanMatchLength": rasd_runs[-1]["result"]["meanMatchLength"], "raw": rasd_runs,
    }
    rasd["verdicts"] = {
        "build": verdict(rasd["buildSeconds"]["median"], TARGETS["build_seconds"]),
        "peak": verdict(rasd["peakBytesPerToken"], TARGETS["peak_bytes_per_token"]),
        "disk": verdict(rasd_disk, TARGETS["disk_bytes_per_token"]),
        "p50": verdict(rasd_latency["p50"], TARGETS["p50"]),
        "p99": verdict(rasd_latency["p99"], TARGETS["p99"]),
        "exact": verdict(len(mismatches), TARGETS["mismatches"]),
    }
    ig_peak = statistics.median(b.peak_bytes for b in ig_builds)
    ig = {
        "buildSeconds": spread([b.seconds for b in ig_builds]),
        "buildCPUSeconds": spread([b.cpu_seconds for b in ig_builds]),
        "peakBytes": ig_peak, "peakBytesPerToken": ig_peak / indexed_tokens,
        "peakSingleProcessBytes": statistics.median(b.peak_single_process_bytes for b in ig_builds),
        "diskBytesPerToken": infinigram_index.disk_bytes(ig_dir) / indexed_tokens,
        "latency": latency_summary(ig_latencies),
        "acceptance": per_domain_mean(queries, [retrieval_oracle.acceptance(x, q["next"]) for x, q in zip(expected, queries)]),
        "meanNodes": sum(len(x["tokens"]) for x in expected) / len(expected),
        "timedAnswersDifferingFromOracle": timed_differs,
        "sampled": {
            "maxSupport": 1000, "latency": latency_summary(sampled_latencies),
            "acceptance": per_domain_mean(queries, [retrieval_oracle.acceptance(x, q["next"]) for x, q in zip(sampled_answers, queries)]),
            "answersDifferingFromOracle": sum(1 for x, y in zip(sampled_answers, expected) if x != y),
        },
    }
    per_seed_acceptance = [per_domain_mean(queries, accs) for accs, _ in rest_runs]
    rest = {
        "buildSeconds": REST_BRIEF["build_seconds"],
        "peakBytesPerToken": REST_BRIEF["peak_bytes"] / REST_BRIEF["brief_tokens"],
        "diskBytesPerToken": REST_BRIEF["disk_bytes_per_token"], "p50": REST_BRIEF["p50"],
        "seeds": seeds,
        "acceptance": {d: statistics.mean(s[d] for s in per_seed_acceptance) for d in per_seed_acceptance[0]},
        "acceptanceBySeed": per_seed_acceptance,
        "acceptanceRange": (min(s["all"] for s in per_seed_acceptance), max(s["all"] for s in per_seed_acceptance)),
        "meanNodes": statistics.mean(sum(sizes) / len(sizes) for _, sizes in rest_runs),
        "treesOverChoices": sum(sum(1 for n in sizes if n > 64) for _, sizes in rest_runs),
    }
    result.update({"rasd": rasd, "infinigram": ig, "rest": rest,
                   "exactness": {"queries": len(queries), "mismatches": len(mismatches), "oracleSelfCheck": self_check,
                                 "first": [{"query": i, "fields": fl} for i, fl in mismatches[:10]]}})

    text = table(result)
    with open(os.path.join(results_dir, "table.md"), "w") as f:
        f.write(composition_table(result) + "\n\n" + text + "\n")
    with open(os.path.join(results_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"machine  {result['machine']['cpu']}, {result['machine']['cores']} cores, {result['machine']['memoryGiB']} GiB")
    print(f"load     {result['load']}")
    print(f"queries  {len(queries)} {by_domain}\n")
    print(composition_table(result) + "\n")
    print(text)
    print(f"\nwritten to {results_dir}/ (table.md, result.json, exactness.txt)")


if __name__ == "__main__":
    main()
