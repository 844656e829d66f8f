#!/usr/bin/env python3
"""Reference tokenizer for rasd, built from a GGUF's own vocabulary and merges.

The reference is the Hugging Face `tokenizers` library configured the way SmolLM2's tokenizer is:
byte-level BPE over the GGUF's `tokenizer.ggml.tokens` / `tokenizer.ggml.merges`, the GGUF's
control tokens as special tokens (matched before pre-tokenization), and the pre-tokenizer
`Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False)])`. (The
tokenizer.json that transformers exports from a GGUF lacks the digit split and is wrong.) No
unknown token: like llama.cpp, bytes without a token of their own are dropped.

Run it with the reference virtualenv (`scripts/reference/setup` prints its python):

  tokenizer_reference.py golden --out Tests/RASDTokenizerTests/Golden
      writes the committed golden files (token ids of a sample of real texts and edge cases,
      and jinja2's rendering of chat templates). Run once by hand, never in CI.
  tokenizer_reference.py compare --rasd .build/release/rasd-index DIR...
      tokenizes every UTF-8 text file under the directories with both implementations and
      prints the mismatch count.
  tokenizer_reference.py bench --files-from LIST --runs 5
      times the reference on one thread over the files and prints JSON (used by
      `rasd-index bench tokenizer`, which runs it as the peer in the same run).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from gguf import GGUFReader  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

CONTROL, USER_DEFINED = 3, 4
DEFAULT_MODEL = Path(
    os.environ.get("RASD_MODEL")
    or Path(os.environ.get("RASD_CACHE") or Path.home() / ".cache/rasd") / "models/SmolLM2-135M-Instruct.Q4_1.gguf"
)
CORPORA = Path(os.environ.get("RASD_CACHE") or Path.home() / ".cache/rasd") / "corpora"


def load_gguf(path):
    r = GGUFReader(str(path))
    f = r.fields
    meta = {
        "tokens": f["tokenizer.ggml.tokens"].contents(),
        "types": f["tokenizer.ggml.token_type"].contents(),
        "merges": f["tokenizer.ggml.merges"].contents(),
        "pre": f["tokenizer.ggml.pre"].contents(),
        "template": f["tokenizer.chat_template"].contents() if "tokenizer.chat_template" in f else None,
    }
    return meta


def build_reference(meta):
    if meta["pre"] != "smollm":
        sys.exit(f"reference: pre-tokenizer {meta['pre']!r} is not the one this script models (smollm)")
    vocab = {t: i for i, t in enumerate(meta["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in meta["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(meta["tokens"], meta["types"]) if ty in (CONTROL, USER_DEFINED)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tok


def byte_decoder():
    """GPT-2's byte-level alphabet, character -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def fingerprint(meta):
    """The tokenizer fingerprint, computed independently of rasd from docs/tokenizer.md."""
    import hashlib
    import struct

    dec = byte_decoder()
    special = [ty in (CONTROL, USER_DEFINED) for ty in meta["types"]]
    raw = [t.encode("utf-8") if sp else bytes(dec[c] for c in t) for t, sp in zip(meta["tokens"], special)]
    ids = {t: i for i, t in reversed(list(enumerate(meta["tokens"])))}  # first id of a string wins
    out = bytearray()
    out += b"rasd-tokenizer-fingerprint/1\nmodel byte-level-bpe\npre-tokenizer digits+gpt2\nunknown none\n"
    out += f"tokens {len(raw)}\n".encode()
    for r, sp in zip(raw, special):
        out += (b"s" if sp else b"n") + struct.pack("<I", len(r)) + r
    out += b"\n" + f"merges {len(meta['merges'])}\n".encode()
    for m in meta["merges"]:
        a, b = m.split(" ", 1)
        out += struct.pack("<II", ids[a], ids[b])
    return hashlib.sha256(bytes(out)).hexdigest()


def encode(tok, text):
    return tok.encode(text, add_special_tokens=False).ids


def text_files(dirs):
    """Every regular file under dirs that is non-empty UTF-8 text without NUL bytes, sorted."""
    out = []
    for d in dirs:
        for p in sorted(Path(d).rglob("*")):
            if not p.is_file() or p.is_symlink():
                continue
            data = p.read_bytes()
            if not data or b"\0" in data[:8192]:
                continue
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append(p)
    return out


# Edge cases beyond what real files exercise: digits, contractions, whitespace runs, Unicode
# classes, special tokens, bytes without a token (U+0004, U+001D, planes 4-11), long words.
EDGE_CASES = [
    "",
    " ",
    "hello world",
    "x = 12345 +  6\n\n  def f(a, b):\n\treturn a**2",
    "3.14159e-10, 0x1F, 1_000_000, ½ ² ٣ Ⅻ",
    "don't I'M they're we've I'll he'd it's 'S 're 'x ''s",
    "  leading\n\n\n   trailing   \n\t\t\n  ",
    " \u3000 x\u00a0y\u2028z\u0085w",
    "tab\tsep\r\nwindows\rmac",
    "naïve café façade Ångström Ελληνικά русский 中文字符 日本語のテキスト 한국어",
    "combining e\u0301 a\u0308 emoji 👍🏽 🇫🇷 👨‍👩‍👧 flags",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|endoftext|>x<|im_end|>y<repo_name>z<filename>a.py<|im_start",
    "<|im_start|> leading space<|im_end|>",
    "control \x04\x06\x13\x14\x16\x1d bytes and \U00040000 \U00080000 planes",
    "!\U00040000!",
    "a" * 300 + " " + "=" * 200 + " " + "ab" * 150,
    "    " * 40 + "x",
    "\n" * 50,
    "https://example.com/path?q=1&r=2#frag user@example.org",
    "CamelCaseIdentifier snake_case_identifier SCREAMING_CASE __dunder__",
    "¿Qué? ¡Sí! «guillemets» „quotes“ — dash – en … ellipsis",
    "math: ∀x∈ℝ, x²≥0; ∑ᵢ aᵢ; ∫₀^∞ e^{-x} dx = 1",
]


def golden(args):
    meta = load_gguf(args.model)
    tok = build_reference(meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    samples = [{"name": f"edge-{i}", "text": t} for i, t in enumerate(EDGE_CASES)]
    # Excerpts of real files: every k-th file of each corpus, the first ~1.5 KB (cut at a line end).
    for corpus, root, pattern, count in [
        ("code", CORPORA / "code/data/usr/lib/python3.11", "**/*.py", 40),
        ("docs", CORPORA / "docs/data/usr/share/doc/python3.11/html/_sources", "**/*.rst.txt", 25),
    ]:
        files = [p for p in sorted(root.glob(pattern)) if p.is_file()]
        step = max(1, len(files) // count)
        for p in files[::step][:count]:
            try:
                text = p.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue
            cut = text.find("\n", 1500)
            samples.append({"name": f"{corpus}:{p.relative_to(root)}", "text": text if cut < 0 else text[: cut + 1]})
    with open(out / "encode.jsonl", "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps({**s, "ids": encode(tok, s["text"])}, ensure_ascii=False) + "\n")

    (out / "fingerprint.txt").write_text(fingerprint(meta) + "\n")
    (out / "classes.json").write_text(json.dumps(character_classes(tok)) + "\n")
    chat = chat_golden(meta["template"])
    (out / "chat.json").write_text(json.dumps(chat, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"golden: {len(samples)} texts, {len(chat['cases'])} chat renderings -> {out}")


def character_classes(tok):
    """The reference pre-tokenizer's class of every non-ASCII scalar, run-length encoded.

    Probes: c is a letter when "a"+c is one word; other (punctuation, symbol, mark, ...) when
    "!"+c is one word; whitespace when c+c is one word; else a number (isolated by Digits).
    Returns [[first scalar, class], ...] with classes L, O, S, N, from U+0080 to U+10FFFF.
    """
    pre = tok.pre_tokenizer

    def words(s):
        return [w for w, _ in pre.pre_tokenize_str(s)]

    runs = []
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            cls = "O"  # surrogates cannot occur in text; keep the run going
        else:
            c = chr(cp)
            if len(words("a" + c)) == 1:
                cls = "L"
            elif len(words("!" + c)) == 1:
                cls = "O"
            elif len(words(c + c)) == 1:
                cls = "S"
            else:
                cls = "N"
        if not runs or runs[-1][1] != cls:
            runs.append([cp, cls])
    return runs


CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
    [
        {"role": "user", "content": "Write a haiku."},
        {"role": "assistant", "content": "Leaves fall\nquietly."},
        {"role": "user", "content": "Another, with ünïcode ✓ and <tags>."},
    ],
    [{"role": "user", "content": ""}],
    [{"role": "system", "content": "  padded  \n"}, {"role": "user", "content": "{{ not a tag }} {% neither %}"}],
]

# Templates exercising more of Jinja than ChatML does, in the styles chat templates use.
EXTRA_TEMPLATES = {
    "features": (
        "{%- set sep = '\\n' -%}\n"
        "{%- for m in messages -%}\n"
        "  {%- if m.role == 'system' %}[SYS]{{ m['content'] | trim }}[/SYS]{{ sep }}\n"
        "  {%- elif m.role == 'user' and not loop.last %}U{{ loop.index }}/{{ loop.length }}: {{ m.content }}{{ sep }}\n"
        "  {%- elif m.role == 'user' %}LAST{{ loop.index0 }}: {{ m.content | upper }}{{ sep }}\n"
        "  {%- else %}A: {{ m.content ~ '!' }}{{ sep }}\n"
        "  {%- endif -%}\n"
        "{%- endfor -%}\n"
        "{%- if add_generation_prompt is defined and add_generation_prompt %}GEN{% endif %}\n"
        "{{ messages | length }} {{ bos_token }}{{ 'x' if messages[0].role != 'system' else 'y' }}\n"
    ),
    "blocks": (
        "{% for message in messages %}\n"
        "    {% if loop.first %}<s>{% endif %}\n"
        "{{ message.role | capitalize }}: {{ message.content }}\n"
        "{% endfor %}\n"
        "{% if add_generation_prompt %}Assistant:{% endif %}\n"
    ),
}


def chat_golden(template):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # The environment transformers' apply_chat_template uses (llama.cpp's minja matches it).
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    cases = []
    for name, tpl in [("gguf", template)] + list(EXTRA_TEMPLATES.items()):
        compiled = env.from_string(tpl)
        for i, conv in enumerate(CONVERSATIONS):
            for gen in (False, True):
                text = compiled.render(messages=conv, add_generation_prompt=gen, bos_token="<s>", eos_token="</s>")
                cases.append(
                    {"template": name, "messages": conv, "addGenerationPrompt": gen, "rendered": text}
                )
    return {"templates": {"gguf": template, **EXTRA_TEMPLATES}, "cases": cases}


def compare(args):
    meta = load_gguf(args.model)
    tok = build_reference(meta)
    files = text_files(args.dirs)
    if args.jsonl:
        # Records of JSON-lines corpora become files of their own (the papers' text).
        import tempfile
        tmp = Path(tempfile.mkdtemp(prefix="rasd-compare-"))
        for spec in args.jsonl:
            path, field = spec.rsplit(":", 1)
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                text = json.loads(line).get(field) if line.strip() else None
                if text:
                    out = tmp / f"{Path(path).stem}-{n:05d}.txt"
                    out.write_bytes(text.encode("utf-8"))
                    files.append(out)
    print(f"compare: {len(files)} UTF-8 texts under {', '.join(map(str, args.dirs + args.jsonl))}", file=sys.stderr)
    listing = "".join(f"{p}\n" for p in files)
    proc = subprocess.run(
        [args.rasd, "tokenize", "--model", str(args.model), "--files-from", "-", "--jsonl"],
        input=listing.encode(), stdout=subprocess.PIPE, check=True,
    )
    ours = {}
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        ours[rec["path"]] = rec["ids"]
    mismatches, tokens = 0, 0
    for p in files:
        ref = encode(tok, p.read_bytes().decode("utf-8"))
        tokens += len(ref)
        got = ours.get(str(p))
        if got != ref:
            mismatches += 1
            if got is None:
                print(f"MISMATCH {p}: missing from rasd's output", file=sys.stderr)
                continue
            at = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
            print(f"MISMATCH {p} at token {at}: reference {ref[at:at+8]} rasd {got[at:at+8]}", file=sys.stderr)
    print(f"files {len(files)}  tokens {tokens}  mismatches {mismatches}")
    return 1 if mismatches else 0


def bench(args):
    meta = load_gguf(args.model)
    tok = build_reference(meta)
    paths = [line.strip() for line in open(args.files_from) if line.strip()]
    texts = [Path(p).read_bytes().decode("utf-8") for p in paths]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    times, tokens = [], 0
    for run in range(args.runs + 1):  # run 0 warms the library's word cache, as rasd's bench does
        t0 = time.perf_counter()
        n = 0
        for t in texts:
            n += len(tok.encode(t, add_special_tokens=False).ids)
        dt = time.perf_counter() - t0
        if run:
            times.append(dt)
        tokens = n
    print(json.dumps({"files": len(texts), "bytes": nbytes, "tokens": tokens, "seconds": times,
                      "median": statistics.median(times)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("golden")
    g.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--rasd", required=True, help="path of the rasd-index executable")
    c.add_argument("--jsonl", action="append", default=[], metavar="FILE:FIELD",
                   help="also compare each record's FIELD of a JSON-lines file")
    c.add_argument("dirs", nargs="+", type=Path)
    b = sub.add_parser("bench")
    b.add_argument("--files-from", required=True)
    b.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    return {"golden": golden, "compare": compare, "bench": bench}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
