"""Reference chat prompts for the tokenizer package's tests.

usage: chat_reference.py FIXTURES OUTDIR CASES.json

For each fixture directory under FIXTURES (a tokenizer_config.json holding
a chat template), writes OUTDIR/NAME with that config and a small byte-level
tokenizer.json, loads it with transformers' AutoTokenizer and renders every
case ({"messages": [...], "add_generation_prompt": bool}) with
apply_chat_template. Writes {NAME: {"dir": ..., "rendered": [...], "ids": [...]}}
to OUTDIR/expected.json.
"""
import json
import os
import shutil
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xa1, 0xad)) + list(range(0xae, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def main():
    fixtures, outdir, cases = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
    result = {}
    for name in sorted(os.listdir(fixtures)):
        d = os.path.join(outdir, name)
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(fixtures, name, "tokenizer_config.json")
        shutil.copy(cfg, d)
        conf = json.load(open(cfg))
        tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(bytes_to_unicode())}, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([t for t in (conf.get("bos_token"), conf.get("eos_token")) if t])
        tok.save(os.path.join(d, "tokenizer.json"))
        hf = AutoTokenizer.from_pretrained(d)
        rendered, ids = [], []
        for c in cases:
            try:
                text = hf.apply_chat_template(c["messages"], tokenize=False,
                                              add_generation_prompt=c["add_generation_prompt"])
            except Exception as e:  # the Go side must refuse the same case
                text = None
                print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
            rendered.append(text)
            ids.append(hf.encode(text, add_special_tokens=False) if text is not None else None)
        result[name] = {"dir": d, "rendered": rendered, "ids": ids}
    json.dump(result, open(os.path.join(outdir, "expected.json"), "w"), ensure_ascii=False)


if __name__ == "__main__":
    main()
