#!/usr/bin/env python3
"""Train rasd's EAGLE-style draft head on features dumped by `rasd-index draft-head features`.

Reads tokens.u32, features.f16 and sequences.jsonl from --features; writes to --out:
params.npz (float weights), vocabulary.json (the draft vocabulary: the most frequent tokens of
the training data), loss.csv (the loss curve) and train.json (data, steps, seed, figures).
scripts/draft-head/export.py turns them into the GGUF the Swift engine loads.

Objective (EAGLE): for every pair (f[j], x[j+1]) predict f[j+1]: smooth-L1 on the feature plus
`--cls-weight` x the cross-entropy between the target's distribution over the draft vocabulary
(its own output rows applied to the true f[j+1]) and the head's. Input features get uniform
noise (`--noise`, EAGLE's robustness to its own predicted features). Tokens the target
generated itself (its greedy answers) weigh `--answer-weight`.
"""
import argparse, json, math, os, sys, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import head  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True, help="the target GGUF (embeddings, output norm, shape)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--vocabulary", type=int, default=8192, help="draft vocabulary size")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16, help="windows per step")
    ap.add_argument("--window", type=int, default=256, help="pairs per window")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--cls-weight", type=float, default=0.1)
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--answer-weight", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=None, help="stop early (and say so) after this long")
    ap.add_argument("--validate-every", type=int, default=100)
    a = ap.parse_args()
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    import jax
    import jax.numpy as jnp
    import optax

    t0 = time.time()
    d = head.D
    sequences = [json.loads(l) for l in open(a.features / "sequences.jsonl")]
    extent = sequences[-1]["offset"] + sequences[-1]["length"] if sequences else 0
    tokens = np.fromfile(a.features / "tokens.u32", dtype="<u4")[:extent]
    features = np.memmap(a.features / "features.f16", dtype="<f2", mode="r")[:extent * d].reshape(-1, d)
    if not sequences or len(tokens) != extent or len(features) != extent:
        raise SystemExit(f"{a.features}: no sequences, or fewer tokens or features than sequences.jsonl lists; dump the features again")
    embed, out_norm, config = head.load_target(str(a.model))

    # The draft vocabulary: the most frequent tokens of the training data (ties: smaller id),
    # always with the end-of-sequence token.
    counts = np.bincount(tokens, minlength=embed.shape[0])
    counts[config["eos"]] = counts.max() + 1
    order = np.lexsort((np.arange(len(counts)), -counts))
    vocab = order[:a.vocabulary].astype(np.int64)  # most frequent first: a prefix is a smaller draft vocabulary
    in_vocab = np.zeros(len(counts), bool)
    in_vocab[vocab] = True
    w_draft = jnp.asarray(embed[vocab])  # [V, D], frozen

    # Windows of `window + 1` tokens (window pairs) over each sequence; a split by sequence.
    rng = np.random.default_rng(a.seed)
    order_seq = rng.permutation(len(sequences))
    n_val = max(1, len(sequences) // 50)
    val_ids, train_ids = set(order_seq[:n_val].tolist()), order_seq[n_val:]
    L = a.window

    def windows(ids):
        out = []
        for i in ids:
            s = sequences[i]
            for start in range(0, max(1, s["length"] - 1), L):
                n = min(L, s["length"] - 1 - start)
                if n >= 1:
                    out.append((s["offset"] + start, n, s["offset"] + s["promptLength"] if s["promptLength"] else None))
        return out

    train_windows, val_windows = windows(train_ids), windows(sorted(val_ids))

    def batch(ws):
        B = len(ws)
        x_next = np.zeros((B, L), np.int64)
        f_in = np.zeros((B, L, d), np.float32)
        f_out = np.zeros((B, L, d), np.float32)
        valid = np.zeros((B, L), bool)
        weight = np.zeros((B, L), np.float32)
        greedy = np.zeros((B, L), bool)
        for b, (off, n, answer_start) in enumerate(ws):
            x_next[b, :n] = tokens[off + 1:off + 1 + n]
            f_in[b, :n] = features[off:off + n]
            f_out[b, :n] = features[off + 1:off + 1 + n]
            valid[b, :n] = True
            weight[b, :n] = 1.0
            if answer_start is not None:
                # Pair j predicts token off + j + 2; it is the target's own greedy token from the answer on.
                idx = off + np.arange(n) + 2
                gen = idx >= answer_start
                weight[b, :n][gen] = a.answer_weight
                greedy[b, :n] = gen
        return x_next, f_in, f_out, valid, weight, greedy

    config_j = {"eps": config["eps"], "rope_base": config["rope_base"]}
    tables = (jnp.asarray(embed), w_draft)

    # The target's tables go into the compiled steps as arguments: as closure constants XLA
    # spends minutes constant-folding them.
    def losses(params, tables, x_next, f_in, f_out, valid, weight, key):
        embed_j, w_draft = tables
        noise = (jax.random.uniform(key, f_in.shape) - 0.5) * a.noise
        positions = jnp.broadcast_to(jnp.arange(L), valid.shape)
        pred = head.forward(params, embed_j[x_next], f_in + noise, positions, head.causal_mask(valid), config_j)
        diff = jnp.abs(pred - f_out)
        reg = jnp.mean(jnp.where(diff < 1, 0.5 * diff * diff, diff - 0.5), axis=-1)
        target_logits = f_out @ w_draft.T
        pred_logits = pred @ w_draft.T
        ce = -jnp.sum(jax.nn.softmax(target_logits) * jax.nn.log_softmax(pred_logits), axis=-1)
        top1 = (jnp.argmax(pred_logits, -1) == jnp.argmax(target_logits, -1)).astype(jnp.float32)
        w = weight * valid
        total = jnp.sum(w * (reg + a.cls_weight * ce)) / jnp.sum(w)
        mean = lambda v: jnp.sum(v * valid) / jnp.sum(valid)
        return total, {"reg": mean(reg), "ce": mean(ce), "top1": mean(top1), "pred_logits": pred_logits}

    # Linear warm-up, then cosine decay to 2% over the planned steps. The rate is fed in per
    # step, so that with --max-minutes the plan can follow the machine's pace (re-measured every
    # 50 steps: it is shared) up to --steps, and still end decayed.
    planned = a.steps

    def schedule(s):
        if s <= a.warmup:
            return a.lr * s / a.warmup
        t = min(1.0, (s - a.warmup) / max(1, planned - a.warmup))
        return a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    opt = optax.chain(optax.clip_by_global_norm(1.0),
                      optax.inject_hyperparams(optax.adamw)(learning_rate=a.lr, b1=0.9, b2=0.95, weight_decay=0.01))
    key = jax.random.PRNGKey(a.seed)
    key, init_key = jax.random.split(key)
    params = head.init(init_key, out_norm)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, lr, tables, key, x_next, f_in, f_out, valid, weight):
        def f(p):
            total, aux = losses(p, tables, x_next, f_in, f_out, valid, weight, key)
            aux.pop("pred_logits")
            return total, aux
        (total, aux), grads = jax.value_and_grad(f, has_aux=True)(params)
        opt_state[1].hyperparams["learning_rate"] = lr
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, total, aux

    @jax.jit
    def evaluate(params, tables, x_next, f_in, f_out, valid):
        # No noise at validation.
        embed_j, w_draft = tables
        positions = jnp.broadcast_to(jnp.arange(L), valid.shape)
        pred = head.forward(params, embed_j[x_next], f_in, positions, head.causal_mask(valid), config_j)
        pred_logits = pred @ w_draft.T
        target_logits = f_out @ w_draft.T
        top1 = (jnp.argmax(pred_logits, -1) == jnp.argmax(target_logits, -1)) & valid
        return jnp.sum(top1), jnp.sum(valid), jnp.argmax(pred_logits, -1)

    val_batches = [val_windows[i:i + a.batch] for i in range(0, min(len(val_windows), 8 * a.batch), a.batch)]

    def validate(params):
        hit = n = g_hit = g_n = 0
        for ws in val_batches:
            ws = ws + [ws[-1]] * (a.batch - len(ws))
            x_next, f_in, f_out, valid, weight, greedy = batch(ws)
            h, c, am = evaluate(params, tables, x_next, f_in, f_out, valid)
            hit += int(h)
            n += int(c)
            # Against the target's real greedy tokens (answers): the draft's top-1 is the next token.
            am = np.asarray(am)
            for b, (off, cnt, answer_start) in enumerate(ws):
                if answer_start is None:
                    continue
                for j in range(cnt):
                    t = off + j + 2
                    if answer_start <= t < len(tokens) and t < off + cnt + 1:
                        g_n += 1
                        g_hit += int(vocab[am[b, j]] == tokens[t])
        return hit / max(1, n), (g_hit / g_n if g_n else float("nan"))

    a.out.mkdir(parents=True, exist_ok=True)
    curve = open(a.out / "loss.csv", "w")
    curve.write("step,seconds,lr,loss,reg,ce,top1,val_top1,val_greedy_top1\n")
    stopped_early = None
    order_w = rng.permutation(len(train_windows))
    cursor = 0
    last = {}
    print(f"train: {len(tokens)} tokens, {len(train_windows)} training windows, {len(val_windows)} validation; "
          f"vocabulary {len(vocab)} covers {in_vocab[tokens].mean():.1%} of tokens", file=sys.stderr)
    s = 0
    while s < planned:
        s += 1
        if a.max_minutes and s > 2 and (s - 2) % 50 == 0:
            # Re-plan from the last 50 steps' pace (the machine is shared: it changes).
            per_step = (time.time() - t_steps) / 50
            t_steps = time.time()
            fits = max(s + 1, min(a.steps, s + int((60 * a.max_minutes - (time.time() - t0) - 60) / (per_step * 1.05))))
            if fits != planned and (fits < planned or fits > planned * 1.1):
                print(f"train: {per_step:.1f} s per step; planning {fits} of the {a.steps} steps asked for, "
                      f"to end within --max-minutes {a.max_minutes}", file=sys.stderr)
                planned = fits
        if s == 2:
            t_steps = time.time()  # after the first step's compilation
        if cursor + a.batch > len(order_w):
            order_w = rng.permutation(len(train_windows))
            cursor = 0
        ws = [train_windows[i] for i in order_w[cursor:cursor + a.batch]]
        cursor += a.batch
        x_next, f_in, f_out, valid, weight, _ = batch(ws)
        key, sub = jax.random.split(key)
        params, opt_state, total, aux = step(params, opt_state, jnp.float32(schedule(s)), tables, sub, x_next, f_in, f_out, valid, weight)
        if s % 10 == 0 or s == 1:
            last = {"loss": float(total), "reg": float(aux["reg"]), "ce": float(aux["ce"]), "top1": float(aux["top1"])}
            vt = vg = ""
            if s % a.validate_every == 0 or s == planned:
                v1, v2 = validate(params)
                vt, vg = f"{v1:.4f}", f"{v2:.4f}"
                last.update(val_top1=v1, val_greedy_top1=v2)
            elapsed = time.time() - t0
            curve.write(f"{s},{elapsed:.1f},{schedule(s):.2e},{last['loss']:.5f},{last['reg']:.5f},{last['ce']:.5f},{last['top1']:.4f},{vt},{vg}\n")
            curve.flush()
            print(f"step {s}/{planned} {elapsed:.0f}s loss {last['loss']:.4f} reg {last['reg']:.4f} ce {last['ce']:.3f} "
                  f"top1 {last['top1']:.3f} {('val ' + vt + ' greedy ' + vg) if vt else ''}", file=sys.stderr)
            if a.max_minutes and elapsed > 60 * a.max_minutes and s < planned:
                stopped_early = s
                print(f"train: stopping at step {s}: over --max-minutes {a.max_minutes}", file=sys.stderr)
                break
    if "val_top1" not in last or stopped_early:
        v1, v2 = validate(params)
        last.update(val_top1=v1, val_greedy_top1=v2)
    np.savez(a.out / "params.npz", **{k: np.asarray(v) for k, v in params.items()})
    (a.out / "vocabulary.json").write_text(json.dumps(vocab.tolist()))
    by_source = {}
    for s in sequences:
        by_source[s["source"]] = by_source.get(s["source"], 0) + s["length"]
    report = {
        "data": {"features": str(a.features), "tokens": int(len(tokens)), "sequences": len(sequences), "tokensBySource": by_source,
                 "trainingWindows": len(train_windows), "validationWindows": len(val_windows),
                 "vocabularyCoverage": float(in_vocab[tokens].mean())},
        "steps": stopped_early or planned, "requestedSteps": a.steps, "plannedSteps": planned, "stoppedEarly": stopped_early is not None,
        "seed": a.seed, "batch": a.batch, "window": L, "lr": a.lr, "warmup": a.warmup, "clsWeight": a.cls_weight,
        "noise": a.noise, "answerWeight": a.answer_weight, "vocabulary": len(vocab), "seconds": time.time() - t0,
        "final": last, "jax": jax.__version__, "optax": optax.__version__,
    }
    (a.out / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"train: done in {report['seconds']:.0f} s; validation top-1 {last['val_top1']:.3f}, "
          f"on the target's greedy answers {last['val_greedy_top1']:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
