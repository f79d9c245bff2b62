"""Offline CLIP tokenizers built from the bundled BPE vocabulary (no hub access).

sd-scripts fetches `openai/clip-vit-large-patch14` (SD1, SDXL tokenizer 1) and
`laion/CLIP-ViT-bigG-14-laion2B-39B-b160k` (SDXL tokenizer 2, pad id forced to 0) from the hub
(spec sd_scripts_interface.md §3.7). Both use the same 49408-token OpenAI BPE vocabulary, which we ship as data
(`data/clip_bpe/`, MIT, see LICENSE.txt) and turn into a `transformers.CLIPTokenizer` here.
"""
from __future__ import annotations

import functools
import gzip
from pathlib import Path

BPE_PATH = Path(__file__).parent / "data" / "clip_bpe" / "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
# OpenAI's tokenizer keeps the first 48894 merges of the file (49408 - 256 bytes - 256 "</w>" forms - 2 specials).
_N_MERGES = VOCAB_SIZE - 512 - 2


def _byte_alphabet() -> list[str]:
    """The 256 stand-in characters of byte-level BPE in CLIP's vocabulary order: the 188 printable bytes as
    themselves (in byte order), then the other 68 bytes mapped to chr(256 + n) (in byte order)."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(ord("¡"), ord("¬") + 1)) | \
        set(range(ord("®"), ord("ÿ") + 1))
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in sorted(printable)] + [chr(256 + n) for n in range(len(others))]


@functools.lru_cache(maxsize=1)
def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return (token → id with 49408 entries, merge pairs in rank order) read from the bundled gz file."""
    lines = gzip.decompress(BPE_PATH.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:1 + _N_MERGES]]
    alphabet = _byte_alphabet()
    tokens = alphabet + [t + "</w>" for t in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def clip_tokenizer(pad_with_zero: bool = False, model_max_length: int = 77):
    """A `transformers.CLIPTokenizer` for CLIP ViT-L/14 (pad = `<|endoftext|>`, id 49407) or, with
    `pad_with_zero`, SDXL's bigG tokenizer 2 (pad = `!`, id 0, as open_clip pads; spec §2.6)."""
    from transformers import CLIPTokenizer

    vocab, merges = vocab_and_merges()
    pad = "!" if pad_with_zero else "<|endoftext|>"
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token=pad,
                         model_max_length=model_max_length)
