#!/usr/bin/env python3
"""Golden outputs of the shipped draft head from the training framework (JAX), for the Swift
tests (Tests/RASDDraftHeadTests/Resources/golden-draft-head.json). Run once by hand after the
head changes (never in CI):

    $(scripts/draft-head/setup) scripts/draft-head/make_golden.py

Inputs are fixed: a chain of token ids and pseudo-random features (seed 1234, the typical scale
of the target's normalized hidden states), stored in the file. The head's weights are read
back from its GGUF and dequantized, so JAX runs exactly the weights the engine holds. Two sets
of outputs (the predicted feature of every node, the top draft tokens with their
probabilities): "float", the model as trained, and "engine", with every matrix product's input
rounded to 8 bits per 32 values as the engine's integer kernels do (head.engine_activations).
"""
import argparse, hashlib, json, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export, head  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--head", type=Path, default=ROOT / "heads" / "SmolLM2-135M-Instruct.Q4_1.draft-head.gguf")
    ap.add_argument("--model", type=Path, default=Path.home() / ".cache/rasd/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", type=Path, default=ROOT / "Tests/RASDDraftHeadTests/Resources/golden-draft-head.json")
    a = ap.parse_args()
    import jax.numpy as jnp

    params, vocab, config = export.read_head(a.head)
    embed, _, _ = head.load_target(str(a.model))
    rng = np.random.default_rng(1234)
    tokens = [504, 3937, 314, 260, 1029, 30, 378, 2683]  # a chain of 8 nodes
    n = len(tokens)
    features = (rng.standard_normal((n, head.D)) * 1.5).astype(np.float32)
    features = features.astype(np.float16).astype(np.float32)  # exactly representable in the JSON round trip
    jp = {k: jnp.asarray(v) for k, v in params.items()}
    w_out = jnp.asarray(embed[vocab])

    def run(act):
        pred = head.forward(jp, jnp.asarray(embed[tokens])[None], jnp.asarray(features)[None], jnp.arange(n)[None],
                            head.causal_mask(jnp.ones((1, n), bool)), config, act)[0]
        logits = np.asarray(act(pred) @ w_out.T, np.float64)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        top = [np.argsort(-p, kind="stable")[:10] for p in probs]
        return {"predicted": [[round(float(x), 6) for x in row] for row in np.asarray(pred)],
                "topTokens": [[int(vocab[i]) for i in t] for t in top],
                "topProbabilities": [[round(float(p[i]), 7) for i in t] for p, t in zip(probs, top)]}

    out = {
        "head": a.head.name, "headSHA256": hashlib.sha256(a.head.read_bytes()).hexdigest(),
        "tokens": tokens, "features": [[float(x) for x in row] for row in features],
        # The model as trained (float activations), and with the engine's 8-bit activations.
        "float": run(lambda x: x), "engine": run(head.engine_activations),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out) + "\n")
    print(f"golden: {a.out} ({a.out.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
