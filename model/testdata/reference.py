"""Reference results from mlx-lm for the model package's parity tests.

    reference.py logits DIR OUT IDS...       full-forward logits, every position
    reference.py generate DIR OUT N IDS      N greedy tokens through generate_step

IDS is a comma-separated list of token ids (logits takes several prompts).
Run under a launcher with more than one rank, the model is sharded with its
own shard() over the group, as mlx-lm's sharded_load does; rank 0 writes OUT.
logits writes a safetensors file with "logits_<i>" [len(IDS_i), vocab] float32
per prompt; generate writes JSON with the ids and, per step, the gap between
the best and second-best logprob.
"""

import json
import sys
from pathlib import Path

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.utils import load_model


def load(path):
    group = mx.distributed.init()
    model, _ = load_model(Path(path), lazy=True, strict=True)
    if group.size() > 1:
        model.shard(group)
    mx.eval(model.parameters())
    return model, group


def main():
    cmd, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
    model, group = load(path)
    if cmd == "logits":
        result = {}
        for i, arg in enumerate(sys.argv[4:]):
            ids = [int(t) for t in arg.split(",")]
            result[f"logits_{i}"] = model(mx.array([ids]))[0].astype(mx.float32)
            mx.eval(result[f"logits_{i}"])
        if group.rank() == 0:
            mx.save_safetensors(out, result)
    elif cmd == "generate":
        n, ids = int(sys.argv[4]), [int(t) for t in sys.argv[5].split(",")]
        tokens, gaps = [], []
        for tok, logprobs in generate_step(
            mx.array(ids), model, max_tokens=n, sampler=lambda x: mx.argmax(x, axis=-1)
        ):
            top = mx.sort(logprobs.astype(mx.float32))[-2:].tolist()
            tokens.append(int(tok))
            gaps.append(top[1] - top[0])
        if group.rank() == 0:
            with open(out, "w") as f:
                json.dump({"ids": tokens, "gaps": gaps}, f)
    else:
        raise SystemExit(f"unknown command {cmd!r}: want logits or generate")


if __name__ == "__main__":
    main()
