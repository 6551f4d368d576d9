"""Reference ids for the tokenizer package's tests.

usage: reference.py CORPUS.json OUTDIR

Trains small byte-level BPE vocabularies on the corpus with the Hugging Face
`tokenizers` library, one per pre-tokenizer family, writes each as a model
directory (tokenizer.json, tokenizer_config.json) and, from one of them, a
Kimi-style directory (tiktoken.model with its reserved special block) whose
reference is Python `tiktoken` with Kimi's pattern. For every directory it
records what the reference encodes each corpus string to (by default and as
plain text) and what it decodes those ids back to, in OUTDIR/expected.json.
"""
import base64
import json
import os
import sys

import tiktoken
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

KIMI = "|".join([
    r"""[\p{Han}]+""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
CL100K = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
O200K = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
DEEPSEEK = [
    r"""\p{N}{1,3}""",
    "[一-龥\u3040-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]


def split(pattern):
    return pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)


def bytelevel_after(*splits):
    return pre_tokenizers.Sequence(list(splits) + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


# name: (pre-tokenizer, specials, BOS added by the post-processor, ignore_merges, extra added tokens)
CONFIGS = {
    "gpt2": (lambda: pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>"], None, False, []),
    "gpt2-prefix-digits": (lambda: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                            pre_tokenizers.ByteLevel(add_prefix_space=True)]),
                           ["<s>", "</s>"], "<s>", False, []),
    "llama3": (lambda: bytelevel_after(split(CL100K)),
               ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
               "<|begin_of_text|>", True, []),
    "qwen2": (lambda: bytelevel_after(split(QWEN2)), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, False,
              [AddedToken("<tool_call>", special=False, normalized=False)]),
    "o200k": (lambda: bytelevel_after(split(O200K)), ["<|endoftext|>"], None, False, []),
    "deepseek": (lambda: bytelevel_after(*[split(p) for p in DEEPSEEK]),
                 ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"],
                 "<｜begin▁of▁sentence｜>", False, []),
    "kimi-hf": (lambda: bytelevel_after(split(KIMI)), ["[BOS]", "[EOS]", "<|im_end|>"], None, False, []),
    "flags": (lambda: pre_tokenizers.ByteLevel(add_prefix_space=False), ["<mask>"], None, False,
              [AddedToken("<lstrip>", lstrip=True, special=True), AddedToken("<rstrip>", rstrip=True, special=True),
               AddedToken("word", single_word=True, special=False)]),
}


# Normalizers of the layouts that have one (Qwen's tokenizer.json has NFC).
NORMALIZERS = {"qwen2": normalizers.NFC}


def train(name, corpus, vocab_size):
    pre, specials, bos, ignore_merges, extra = CONFIGS[name]
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if name in NORMALIZERS:
        tok.normalizer = NORMALIZERS[name]()
    tok.pre_tokenizer = pre()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # Long strings add nothing to the vocabulary but minutes to the training.
    tok.train_from_iterator([s for s in corpus if len(s) < 1000], trainer)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    if extra:
        tok.add_tokens(extra)
    return tok, specials, bos


SPM = {
    # Llama 2's layout: a Prepend and Replace normalizer, no pre-tokenizer.
    "spm-legacy": lambda: (normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]), None),
    # Newer conversions: a Metaspace pre-tokenizer, here splitting words.
    "spm-metaspace": lambda: (None, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)),
}


def train_spm(name, corpus, vocab_size):
    """A SentencePiece-style BPE with byte fallback: the <0xNN> byte tokens
    are in the model's vocabulary (not added tokens), as in Llama 2's."""
    norm, pre = SPM[name]()
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer, tok.pre_tokenizer = norm, pre
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials + byte_tokens, show_progress=False,
                                  limit_alphabet=300)
    tok.train_from_iterator([s for s in corpus if len(s) < 1000], trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    out = Tokenizer(models.BPE(vocab=model["vocab"], merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    out.normalizer, out.pre_tokenizer = norm, pre
    out.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    out.add_special_tokens(specials)
    out.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", out.token_to_id("<s>"))])
    return out, specials, "<s>"


def hf_expect(tok, corpus):
    enc = [tok.encode(s).ids for s in corpus]
    tok.encode_special_tokens = True
    plain = [tok.encode(s, add_special_tokens=False).ids for s in corpus]
    tok.encode_special_tokens = False
    dec = tok.decode_batch(enc, skip_special_tokens=False)
    return enc, plain, dec


def kimi_chunks(s):
    """Kimi's tokenizer cuts long texts before tiktoken sees them."""
    out = []
    for i in range(0, len(s), 400_000):
        c = s[i:i + 400_000]
        run, space, start = 0, c[0].isspace() if c else False, 0
        for j in range(len(c)):
            now = c[j].isspace()
            if space ^ now:
                run, space = 1, now
            else:
                run += 1
                if run > 25_000:
                    out.append(c[start:j])
                    start, run = j, 1
        out.append(c[start:])
    return out


def kimi_dir(tok, out, corpus):
    """A Kimi-layout directory from a trained byte-level vocabulary."""
    dec = {c: b for b, c in bytes_to_unicode().items()}
    added = {a.content for a in tok.get_added_tokens_decoder().values()}
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    ranks, seen = {}, set()
    for t, _ in vocab:
        if t in added:
            continue
        b = bytes(dec[c] for c in t)
        if b not in seen:
            seen.add(b)
            ranks[b] = len(ranks)
    base = len(ranks)
    named = {base: "[BOS]", base + 1: "[EOS]", base + 2: "<|im_end|>", base + 3: "<|im_user|>",
             base + 4: "<|im_assistant|>", base + 6: "<|im_system|>", base + 7: "<|im_middle|>",
             base + 254: "[UNK]", base + 255: "[PAD]"}
    special = {named.get(i, f"<|reserved_token_{i}|>"): i for i in range(base, base + 256)}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tiktoken.model"), "w") as f:
        for b, r in ranks.items():
            f.write(base64.b64encode(b).decode() + " " + str(r) + "\n")
    cfg = {"tokenizer_class": "TikTokenTokenizer", "bos_token": "[BOS]", "eos_token": "[EOS]",
           "pad_token": "[PAD]", "unk_token": "[UNK]",
           "added_tokens_decoder": {str(i): {"content": c, "special": True, "lstrip": False, "rstrip": False,
                                             "normalized": False, "single_word": False} for i, c in named.items()}}
    json.dump(cfg, open(os.path.join(out, "tokenizer_config.json"), "w"), ensure_ascii=False)
    json.dump({"vocab_size": base + 256, "eos_token_id": base + 1}, open(os.path.join(out, "config.json"), "w"))
    json.dump({"eos_token_id": [base + 1, base + 2]}, open(os.path.join(out, "generation_config.json"), "w"))
    enc = tiktoken.Encoding("kimi-test", pat_str=KIMI, mergeable_ranks=ranks, special_tokens=special)
    ids = [[i for c in kimi_chunks(s) for i in enc.encode(c, allowed_special="all")] for s in corpus]
    plain = [[i for c in kimi_chunks(s) for i in enc.encode_ordinary(c)] for s in corpus]
    return {"dir": out, "encode": ids, "plain": plain, "decode": [enc.decode(x) for x in ids],
            "eos": sorted({base + 1, base + 2}), "bos": base, "vocab_size": base + 256}


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xa1, 0xad)) + list(range(0xae, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def main():
    corpus = json.load(open(sys.argv[1]))
    outdir = sys.argv[2]
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(CONFIGS) + list(SPM) + ["kimi"]
    vocab_size = int(os.environ.get("REFERENCE_VOCAB", "3000"))
    result = {}
    for name in names:
        if name == "kimi":
            tok, _, _ = train("gpt2", corpus, vocab_size)
            result[name] = kimi_dir(tok, os.path.join(outdir, name), corpus)
            continue
        if name in SPM:
            tok, specials, bos = train_spm(name, corpus, vocab_size)
        else:
            tok, specials, bos = train(name, corpus, vocab_size)
        d = os.path.join(outdir, name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": specials[-1 if bos else 0]}
        if bos:
            cfg["bos_token"] = bos
        json.dump(cfg, open(os.path.join(d, "tokenizer_config.json"), "w"), ensure_ascii=False)
        enc, plain, dec = hf_expect(tok, corpus)
        # What mlx-lm calls: transformers' tokenizer on the same directory,
        # on the first strings (it is slow, and only its layer over
        # tokenizers is in question).
        from transformers import AutoTokenizer
        tf = AutoTokenizer.from_pretrained(d)
        result[name] = {"dir": d, "encode": enc, "plain": plain, "decode": dec,
                        "encode_transformers": [tf.encode(s) for s in corpus[:500]],
                        "bos": tok.token_to_id(bos) if bos else -1, "vocab_size": tok.get_vocab_size(),
                        "eos": [tok.token_to_id(cfg["eos_token"])]}
    json.dump(result, open(os.path.join(outdir, "expected.json"), "w"))


if __name__ == "__main__":
    main()
