"""The draft head's model in JAX: what scripts/draft-head/train.py trains, export.py writes and
make_golden.py runs on fixed inputs for the Swift tests.

An EAGLE-style head over the target's features. For context position j it reads the target's
final hidden state f[j] (normalized: the output head's input) and the embedding of the next
token x[j+1] (the target's own embedding table), and predicts f[j+1], the target's feature one
token later; the draft distribution is the target's own output rows over a reduced draft
vocabulary applied to that prediction:

    h  = fc([embed(x[j+1]); f[j]]) + b                      (1152 -> 576)
    h += attention(rmsnorm(h))      causal, RoPE at position j, 9 query / 3 KV heads of 64
    h += swiglu(rmsnorm(h))         576 -> 1536 -> 576
    f' = rmsnorm(h) * out_norm      the predicted feature
    logits = W_out[draft vocabulary] . f'

RoPE turns pairs (2i, 2i+1) by position * base^(-2i/64), as rasd's engine does.
"""
import jax
import jax.numpy as jnp
import numpy as np

D, HEADS, KV_HEADS, HEAD_DIM, FFN = 576, 9, 3, 64, 1536
MATRICES = {  # name: (inputs, outputs)
    "fc": (2 * D, D),
    "q": (D, HEADS * HEAD_DIM), "k": (D, KV_HEADS * HEAD_DIM), "v": (D, KV_HEADS * HEAD_DIM), "o": (HEADS * HEAD_DIM, D),
    "gate": (D, FFN), "up": (D, FFN), "down": (FFN, D),
}
VECTORS = {"fc_bias": D, "attn_norm": D, "ffn_norm": D, "out_norm": D}


def init(key, out_norm):
    """Random weights (normal, 0.02; output projections scaled down), norms at 1, the output
    norm at the target's own."""
    params = {}
    keys = jax.random.split(key, len(MATRICES))
    for k, (name, (i, o)) in zip(keys, MATRICES.items()):
        scale = 0.02 / (2 ** 0.5) if name in ("o", "down") else 0.02
        params[name] = jax.random.normal(k, (i, o), jnp.float32) * scale
    params["fc_bias"] = jnp.zeros(D, jnp.float32)
    params["attn_norm"] = jnp.ones(D, jnp.float32)
    params["ffn_norm"] = jnp.ones(D, jnp.float32)
    params["out_norm"] = jnp.asarray(out_norm, jnp.float32)
    return params


def rmsnorm(x, w, eps):
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, positions, base):
    """x: [..., L, heads, 64]; positions: [..., L]."""
    inv = base ** (-jnp.arange(0, HEAD_DIM, 2, dtype=jnp.float32) / HEAD_DIM)
    angle = positions[..., None].astype(jnp.float32) * inv  # [..., L, 32]
    cos, sin = jnp.cos(angle)[..., None, :], jnp.sin(angle)[..., None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    return jnp.stack([a * cos - b * sin, a * sin + b * cos], axis=-1).reshape(x.shape)


def engine_activations(x):
    """x as rasd's engine feeds it to a quantized matrix product: per 32 values, q = round(x / s)
    (half away from zero) with s = max|x| / 127, times s rounded to F16."""
    shape = x.shape
    b = x.reshape(shape[:-1] + (shape[-1] // 32, 32))
    scale = jnp.max(jnp.abs(b), axis=-1, keepdims=True) / 127
    y = b * jnp.where(scale != 0, 1 / jnp.where(scale != 0, scale, 1), 0)
    q = jnp.sign(y) * jnp.floor(jnp.abs(y) + 0.5)
    return (q * scale.astype(jnp.float16).astype(jnp.float32)).reshape(shape)


def forward(params, embeddings, features, positions, mask, config, act=lambda x: x):
    """Predicted features for a batch of windows.

    embeddings: [B, L, D] embeddings of x[j+1]; features: [B, L, D] f[j]; positions: [B, L];
    mask: [B, L, L] (True where query i may attend key j); `act` is applied to every matrix
    product's input (``engine_activations`` reproduces the engine). Returns [B, L, D]."""
    eps, base = config["eps"], config["rope_base"]
    h = act(jnp.concatenate([embeddings, features], axis=-1)) @ params["fc"] + params["fc_bias"]
    B, L, _ = h.shape
    x = act(rmsnorm(h, params["attn_norm"], eps))
    q = (x @ params["q"]).reshape(B, L, HEADS, HEAD_DIM)
    k = (x @ params["k"]).reshape(B, L, KV_HEADS, HEAD_DIM)
    v = (x @ params["v"]).reshape(B, L, KV_HEADS, HEAD_DIM)
    q, k = rope(q, positions, base), rope(k, positions, base)
    group = HEADS // KV_HEADS
    k = jnp.repeat(k, group, axis=2)
    v = jnp.repeat(v, group, axis=2)
    scores = jnp.einsum("bihd,bjhd->bhij", q, k) / (HEAD_DIM ** 0.5)
    scores = jnp.where(mask[:, None], scores, -1e30)
    attn = jnp.einsum("bhij,bjhd->bihd", jax.nn.softmax(scores, axis=-1), v).reshape(B, L, HEADS * HEAD_DIM)
    h = h + act(attn) @ params["o"]
    x = act(rmsnorm(h, params["ffn_norm"], eps))
    h = h + act(jax.nn.silu(x @ params["gate"]) * (x @ params["up"])) @ params["down"]
    return rmsnorm(h, params["out_norm"], eps)


def causal_mask(valid):
    """[B, L] validity -> [B, L, L] causal mask within the valid prefix."""
    L = valid.shape[1]
    tri = jnp.tril(jnp.ones((L, L), bool))
    return tri[None] & valid[:, None, :] & valid[:, :, None]


def load_target(path):
    """The target's embedding table (dequantized), output norm and shape, from its GGUF."""
    import gguf
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}

    def field(name):
        f = reader.fields[name]
        return f.parts[f.data[0]][0]

    t = tensors["token_embd.weight"]
    embed = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
    out_norm = np.asarray(tensors["output_norm.weight"].data, np.float32)
    config = {
        "eps": float(field("llama.attention.layer_norm_rms_epsilon")),
        "rope_base": float(field("llama.rope.freq_base")),
        "embedding_length": int(field("llama.embedding_length")),
        "head_count": int(field("llama.attention.head_count")),
        "head_count_kv": int(field("llama.attention.head_count_kv")),
        "eos": int(field("tokenizer.ggml.eos_token_id")),
    }
    if (config["embedding_length"], config["head_count"], config["head_count_kv"]) != (D, HEADS, KV_HEADS):
        raise SystemExit(f"{path}: the head is sized for SmolLM2-135M (d={D}, {HEADS}/{KV_HEADS} heads); this model differs")
    if "output.weight" in tensors:
        raise SystemExit(f"{path}: the head reuses tied output rows; this model has a separate output head")
    return embed, out_norm, config
