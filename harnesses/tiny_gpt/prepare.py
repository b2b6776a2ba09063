"""
Data and metric for the tiny_gpt example. IMMUTABLE: the operator never edits this file.

The corpus is generated, never downloaded, by a small probabilistic grammar:
text is a sequence of independent units `word + separator`, where the word is
drawn from a fixed random lexicon of English-like words with Zipf frequencies
and the separator is one of " ", ", ", ". ", ".\\n". A word after "." starts
with a capital letter. The units form a prefix-free code (a word is letters
only, a separator starts with a non-letter) and capitalisation is a function of
the previous unit, so the entropy rate of the text is exactly

    ENTROPY_RATE_BPC = (H(word) + H(separator)) / (E[len word] + E[len separator])

bits per character: no model can have an expected val_bpb below it.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

# ---------------------------------------------------------------------------
# Constants (the metric depends on all of these: never change them)

VERSION = 1  # bump when the corpus changes, so caches are not reused
LEXICON_SEED = 1234  # seed for building the lexicon and its probabilities
TRAIN_SEED = 1  # seed for sampling the training text
VAL_SEED = 2  # seed for sampling the validation text
LEXICON_SIZE = 400  # distinct words
ZIPF_EXPONENT = 1.1  # p(word of rank r) ~ 1 / (r + ZIPF_OFFSET) ** ZIPF_EXPONENT
ZIPF_OFFSET = 2.7
TRAIN_CHARS = 1_000_000  # characters of training text
VAL_CHARS = 100_000  # characters of validation text
EVAL_CHARS = 32_768  # characters scored by evaluate_bpb (a fixed prefix of val)

SEPARATORS = {" ": 0.80, ", ": 0.08, ". ": 0.10, ".\n": 0.02}  # separator -> probability
ONSETS = "b c d f g h j k l m n p r s t v w y z bl br ch cl cr dr fl fr gr pl pr sh sl sp st str th tr"
NUCLEI = "a e i o u a e i o u ai ea ee oo ou"
CODAS = "- - - - n r s t l m nd st ng ck"  # "-" means no coda
SYLLABLE_WEIGHTS = (0.35, 0.4, 0.2, 0.05)  # probability of 1, 2, 3, 4 syllables

VOCAB = " ,.\n" + "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
STOI = {ch: i for i, ch in enumerate(VOCAB)}
VOCAB_SIZE = len(VOCAB)  # 56; uniform guessing scores log2(56) = 5.81 bpc

# ---------------------------------------------------------------------------
# The source


def _make_word(rng: random.Random) -> str:
    n = rng.choices((1, 2, 3, 4), weights=SYLLABLE_WEIGHTS)[0]
    parts = []
    for _ in range(n):
        coda = rng.choice(CODAS.split())
        parts.append(rng.choice(ONSETS.split()) + rng.choice(NUCLEI.split()) + coda.strip("-"))
    return "".join(parts)


def build_lexicon() -> tuple[list[str], list[float]]:
    """Distinct words, shorter ones more frequent, and their probabilities."""
    rng = random.Random(LEXICON_SEED)
    words: set[str] = set()
    while len(words) < LEXICON_SIZE:
        words.add(_make_word(rng))
    # Sort by length with a random tie-break, like English: frequent words are short.
    ordered = sorted(sorted(words), key=lambda w: len(w) + 2 * rng.random())
    weights = [1.0 / (r + ZIPF_OFFSET) ** ZIPF_EXPONENT for r in range(len(ordered))]
    total = sum(weights)
    return ordered, [w / total for w in weights]


def _entropy_bits(probs: list[float]) -> float:
    return -sum(p * math.log2(p) for p in probs if p > 0)


def unit_stats() -> tuple[float, float]:
    """(entropy in bits, expected length in characters) of one `word + separator` unit."""
    words, probs = build_lexicon()
    seps, sep_probs = list(SEPARATORS), list(SEPARATORS.values())
    bits = _entropy_bits(probs) + _entropy_bits(sep_probs)
    chars = sum(p * len(w) for w, p in zip(words, probs, strict=True))
    chars += sum(p * len(s) for s, p in zip(seps, sep_probs, strict=True))
    return bits, chars


UNIT_BITS, UNIT_CHARS = unit_stats()
ENTROPY_RATE_BPC = UNIT_BITS / UNIT_CHARS  # the floor for val_bpb


def generate_text(num_chars: int, seed: int) -> str:
    """num_chars characters of the source, sampled with the given seed."""
    words, probs = build_lexicon()
    n_units = int(num_chars / UNIT_CHARS * 1.1) + 100  # enough with overwhelming probability
    # Two streams, so a shorter text is a prefix of a longer one with the same seed.
    chosen = random.Random(f"{seed}/words").choices(words, weights=probs, k=n_units)
    seps = random.Random(f"{seed}/seps").choices(
        list(SEPARATORS), weights=list(SEPARATORS.values()), k=n_units
    )
    out, capital = [], True
    for word, sep in zip(chosen, seps, strict=True):
        out.append(word.capitalize() if capital else word)
        out.append(sep)
        capital = sep[0] == "."
    text = "".join(out)
    assert len(text) >= num_chars, "sampled too few units"
    return text[:num_chars]


# ---------------------------------------------------------------------------
# Data loading


def encode(text: str) -> list[int]:
    return [STOI[ch] for ch in text]


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def load_split(split: str) -> str:
    """The 'train' or 'val' text; cached under $METAEXP_CACHE_DIR if set, else regenerated."""
    num_chars, seed = {"train": (TRAIN_CHARS, TRAIN_SEED), "val": (VAL_CHARS, VAL_SEED)}[split]
    cache_dir = os.environ.get("METAEXP_CACHE_DIR")
    if not cache_dir:
        return generate_text(num_chars, seed)
    path = Path(cache_dir) / f"tiny_gpt_v{VERSION}_{split}.txt"
    if path.exists():
        return path.read_text()
    text = generate_text(num_chars, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # write-then-rename: safe with parallel runs
    tmp.write_text(text)
    os.replace(tmp, path)
    return text


def load_tensor(split: str, device: str):  # -> torch.Tensor (int64, 1-D)
    """The split encoded as token ids, on `device`."""
    import torch

    table = torch.zeros(256, dtype=torch.long)  # byte -> token id; the text is ASCII
    table[list(VOCAB.encode())] = torch.arange(VOCAB_SIZE)
    raw = bytearray(load_split(split).encode("ascii"))
    return table[torch.frombuffer(raw, dtype=torch.uint8).long()].to(device)


# ---------------------------------------------------------------------------
# The metric


def evaluate_bpb(model, block_size: int, device: str, val=None) -> float:
    """Bits per character of `model` on the first EVAL_CHARS predictions of val.

    `model(idx)` maps a (B, T) int64 tensor with T <= block_size to (B, T, VOCAB_SIZE)
    logits. The val text is cut into consecutive windows of block_size characters;
    every window predicts its next block_size characters, so each of the EVAL_CHARS
    targets is scored exactly once whatever block_size is.
    """
    import torch
    import torch.nn.functional as F

    if val is None:
        val = load_tensor("val", device)
    n = EVAL_CHARS
    rows = n // block_size
    total_nats = 0.0
    model.eval()
    with torch.no_grad():
        if rows:
            x = val[: rows * block_size].view(rows, block_size)
            y = val[1 : rows * block_size + 1].view(rows, block_size)
            for i in range(0, rows, 64):  # 64 windows at a time bounds the memory
                logits = model(x[i : i + 64]).float()
                total_nats += F.cross_entropy(
                    logits.reshape(-1, logits.size(-1)), y[i : i + 64].reshape(-1), reduction="sum"
                ).item()
        rest = n - rows * block_size
        if rest:
            start = rows * block_size
            logits = model(val[start : start + rest].view(1, rest)).float()
            target = val[start + 1 : start + rest + 1]
            total_nats += F.cross_entropy(logits.view(rest, -1), target, reduction="sum").item()
    model.train()
    return total_nats / (n * math.log(2))
