#!/usr/bin/env python3
"""Export a trained draft head (train.py's params.npz and vocabulary.json) as the GGUF that
rasd's Swift engine loads (DraftHead in RASDModel): architecture `rasd-draft-head`, the layer's
matrices in Q8_0, norms and the fc bias in F32, the draft vocabulary and a fingerprint of the
target's embeddings (sums of a few rows) in the metadata. The output rows are not stored: the
engine gathers them from the target.

`--provenance` writes a JSON beside the head: data, steps, seed, the loss curve, sizes.
"""
import argparse, hashlib, json, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import head  # noqa: E402

ARCH = "rasd-draft-head"
# tensor name in the GGUF: parameter name
MATRIX_NAMES = {"fc.weight": "fc", "attn_q.weight": "q", "attn_k.weight": "k", "attn_v.weight": "v",
                "attn_output.weight": "o", "ffn_gate.weight": "gate", "ffn_up.weight": "up", "ffn_down.weight": "down"}
VECTOR_NAMES = {"fc.bias": "fc_bias", "attn_norm.weight": "attn_norm", "ffn_norm.weight": "ffn_norm", "output_norm.weight": "out_norm"}
FINGERPRINT_ROWS = [0, 1, 2, 100, 1000, 5000, 10000, 20000, 30000, 49151]


def load_params(path):
    """Float parameters from a params.npz (as train.py saves them)."""
    with np.load(path) as z:
        return {k: np.asarray(z[k], np.float32) for k in z.files}


def read_head(path):
    """(params with the Q8_0 matrices dequantized, vocabulary, config) of an exported head: the
    weights exactly as the engine uses them."""
    import gguf
    r = gguf.GGUFReader(str(path))
    t = {x.name: x for x in r.tensors}

    def field(name):
        f = r.fields[name]
        return f.parts[f.data[0]][0]

    params = {}
    for name, p in MATRIX_NAMES.items():
        w = gguf.quants.dequantize(t[name].data, t[name].tensor_type)  # [outputs, inputs]
        params[p] = np.asarray(w, np.float32).T
    for name, p in VECTOR_NAMES.items():
        params[p] = np.asarray(t[name].data, np.float32)
    f = r.fields[ARCH + ".vocabulary"]
    vocab = np.array([f.parts[i][0] for i in f.data], np.int64)
    config = {"eps": float(field(ARCH + ".attention.layer_norm_rms_epsilon")), "rope_base": float(field(ARCH + ".rope.freq_base"))}
    return params, vocab, config


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trained", type=Path, required=True, help="train.py's output directory")
    ap.add_argument("--model", type=Path, required=True, help="the target GGUF")
    ap.add_argument("--out", type=Path, required=True, help="the head's GGUF")
    ap.add_argument("--provenance", type=Path, default=None, help="provenance JSON (default: <out without .gguf>.json)")
    a = ap.parse_args()
    import gguf

    params = load_params(a.trained / "params.npz")
    vocab = json.loads((a.trained / "vocabulary.json").read_text())
    embed, _, config = head.load_target(str(a.model))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".partial")
    w = gguf.GGUFWriter(str(tmp), ARCH)
    w.add_string("general.name", "rasd draft head for " + a.model.name)
    w.add_uint32(ARCH + ".embedding_length", head.D)
    w.add_uint32(ARCH + ".feed_forward_length", head.FFN)
    w.add_uint32(ARCH + ".attention.head_count", head.HEADS)
    w.add_uint32(ARCH + ".attention.head_count_kv", head.KV_HEADS)
    w.add_float32(ARCH + ".rope.freq_base", config["rope_base"])
    w.add_float32(ARCH + ".attention.layer_norm_rms_epsilon", config["eps"])
    w.add_array(ARCH + ".vocabulary", [int(v) for v in vocab])
    w.add_string(ARCH + ".target.name", a.model.name)
    w.add_array(ARCH + ".target.fingerprint_rows", FINGERPRINT_ROWS)
    w.add_array(ARCH + ".target.fingerprint", [float(embed[r].astype(np.float64).sum()) for r in FINGERPRINT_ROWS])
    for name, p in MATRIX_NAMES.items():
        m = np.ascontiguousarray(params[p].T)  # [outputs, inputs]: GGUF's row-major weight
        w.add_tensor(name, gguf.quants.quantize(m, gguf.GGMLQuantizationType.Q8_0), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    for name, p in VECTOR_NAMES.items():
        w.add_tensor(name, np.ascontiguousarray(params[p], np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(a.out)

    train = json.loads((a.trained / "train.json").read_text())
    curve = [l.strip() for l in open(a.trained / "loss.csv")]
    prov = {
        "head": a.out.name, "bytes": a.out.stat().st_size, "sha256": hashlib.sha256(a.out.read_bytes()).hexdigest(),
        "target": a.model.name, "architecture": f"EAGLE-style: fc(2x{head.D}->{head.D}) + one Llama layer "
        f"({head.HEADS}/{head.KV_HEADS} heads, FFN {head.FFN}) + the target's output rows over {len(vocab)} tokens; Q8_0 matrices",
        "training": train, "lossCurve": curve,
    }
    # The data choice and its disjointness from the evaluation sets (prepare.py), when beside.
    prepared = a.trained.parent / "prepare.json"
    if prepared.exists():
        prov["dataChoice"] = json.loads(prepared.read_text())
    (a.provenance or a.out.with_suffix(".json")).write_text(json.dumps(prov, indent=1) + "\n")
    print(f"export: {a.out} ({a.out.stat().st_size / 2**20:.2f} MiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
