"""`weighted_captions`: A1111-style attention weights in captions — `(word)` ×1.1, `[word]` ÷1.1, `(word:1.5)`
×1.5, nested brackets multiply, `\\(` `\\)` `\\[` `\\]` `\\\\` literal — read as sd-scripts' `TokenizeStrategy`
does (`parse_prompt_attention`, `get_prompts_with_weights`, `pad_tokens_and_weights`): the caption is tokenised
piece by piece without the brackets, each token carries its piece's weight, BOS/EOS/padding weigh 1.0, and the
text encoder's hidden states are multiplied position by position by those weights (no rescaling; the pooled SDXL
output is not weighted).
"""
from __future__ import annotations

import re

from .long_prompts import MIDDLE, window_count, windows_of

# one token of the attention syntax: an escape, a bracket, ":<number>)" closing a weighted group, plain text, ":"
_TOKEN = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:([+-]?[.\d]+)\)|\)|]|[^\\()\[\]:]+|:")
ROUND, SQUARE = 1.1, 1 / 1.1


def parse_attention(text: str) -> list[list]:
    """[[piece, weight], ...] of a caption: `"a (b:1.3) [c]"` → [["a ", 1.0], ["b", 1.3], [" ", 1.0],
    ["c", 1/1.1]]. Unclosed brackets apply to the rest; neighbours of equal weight are merged; "" → [["", 1.0]]."""
    res: list[list] = []
    rounds: list[int] = []
    squares: list[int] = []

    def scale(start: int, k: float) -> None:
        for p in range(start, len(res)):
            res[p][1] *= k

    for m in _TOKEN.finditer(text):
        tok, weight = m.group(0), m.group(1)
        if tok.startswith("\\"):
            res.append([tok[1:], 1.0])
        elif tok == "(":
            rounds.append(len(res))
        elif tok == "[":
            squares.append(len(res))
        elif weight is not None and rounds:
            scale(rounds.pop(), float(weight))
        elif tok == ")" and rounds:
            scale(rounds.pop(), ROUND)
        elif tok == "]" and squares:
            scale(squares.pop(), SQUARE)
        else:
            res.append([tok, 1.0])
    for start in rounds:
        scale(start, ROUND)
    for start in squares:
        scale(start, SQUARE)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


def weighted_ids(tok, captions: list[str], max_token_length: int | None):
    """(ids (B·n, 77) in windows as `long_prompts.token_windows`, weights (B, 75·n + 2) per stitched position)."""
    import torch

    n = window_count(max_token_length)
    room = MIDDLE * n
    rows, weights = [], []
    for caption in captions:
        ids: list[int] = []
        ws: list[float] = []
        for piece, w in parse_attention(caption):
            t = tok(piece).input_ids[1:-1]
            ids += t
            ws += [w] * len(t)
            if len(ids) > room:
                break
        ids, ws = ids[:room], ws[:room]
        rows.append([tok.bos_token_id] + ids + [tok.eos_token_id] + [tok.pad_token_id] * (room - len(ids)))
        weights.append([1.0] + ws + [1.0] * (room + 1 - len(ws)))
    return windows_of(torch.tensor(rows), n, tok), torch.tensor(weights)
