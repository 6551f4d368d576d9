"""Reference results from mlx-lm for the model package's parity tests.

    reference.py logits DIR OUT IDS...       full-forward logits, every position
    reference.py generate DIR OUT N IDS [STEP]
                                             N greedy tokens through generate_step,
                                             prefilling STEP tokens at a time
    reference.py sample DIR OUT N IDS SEED TEMP TOP_P MIN_P TOP_K
                                             N tokens from make_sampler's sampler
                                             after mx.random.seed(SEED)
    reference.py penalized DIR OUT N IDS JSON
                                             N greedy tokens with the logits
                                             processors make_logits_processors
                                             makes of the JSON object's keywords

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
from mlx_lm.sample_utils import make_logits_processors, make_sampler
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
        step = int(sys.argv[6]) if len(sys.argv) > 6 else 2048
        tokens, gaps = [], []
        for tok, logprobs in generate_step(
            mx.array(ids),
            model,
            max_tokens=n,
            sampler=lambda x: mx.argmax(x, axis=-1),
            prefill_step_size=step,
        ):
            top = mx.sort(logprobs.astype(mx.float32))[-2:].tolist()
            tokens.append(int(tok))
            gaps.append(top[1] - top[0])
        if group.rank() == 0:
            with open(out, "w") as f:
                json.dump({"ids": tokens, "gaps": gaps}, f)
    elif cmd == "sample":
        n, ids = int(sys.argv[4]), [int(t) for t in sys.argv[5].split(",")]
        seed, temp, top_p, min_p, top_k = sys.argv[6:11]
        sampler = make_sampler(temp=float(temp), top_p=float(top_p), min_p=float(min_p), top_k=int(top_k))
        mx.random.seed(int(seed))
        tokens = [int(tok) for tok, _ in generate_step(mx.array(ids), model, max_tokens=n, sampler=sampler)]
        if group.rank() == 0:
            with open(out, "w") as f:
                json.dump({"ids": tokens}, f)
    elif cmd == "penalized":
        n, ids = int(sys.argv[4]), [int(t) for t in sys.argv[5].split(",")]
        kw = json.loads(sys.argv[6])
        if "logit_bias" in kw:
            kw["logit_bias"] = {int(k): v for k, v in kw["logit_bias"].items()}
        tokens, logprobs = [], []
        for tok, lp in generate_step(
            mx.array(ids),
            model,
            max_tokens=n,
            sampler=lambda x: mx.argmax(x, axis=-1),
            logits_processors=make_logits_processors(**kw),
        ):
            tokens.append(int(tok))
            logprobs.append(lp[int(tok)].astype(mx.float32).item())
        if group.rank() == 0:
            with open(out, "w") as f:
                json.dump({"ids": tokens, "logprobs": logprobs}, f)
    else:
        raise SystemExit(f"unknown command {cmd!r}: want logits, generate, sample or penalized")


if __name__ == "__main__":
    main()
