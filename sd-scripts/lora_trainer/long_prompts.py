"""Captions longer than 75 tokens (`max_token_length` 150 / 225), encoded the way sd-scripts does it
(spec sd_scripts_interface.md §2.6, §4.8).

A caption is tokenised to `max_token_length + 2` ids (BOS, up to 150/225 tokens, EOS/padding), then cut into
`max_token_length / 75` windows of 77 ids: the caption's BOS, 75 ids of the middle, and the caption's last id.
Each window goes through the text encoder on its own; the hidden states are stitched back to
`1 + 75·n + 1` positions (BOS of the first window, the 75 middle positions of every window, the last position
of the last window). SDXL's pooled output comes from the first window.

For tokenizers whose padding id is not EOS (SD2, SDXL's second encoder), sd-scripts repairs each window so that
it still reads like a caption: a window whose last real token is cut gets EOS in its final slot, and an empty
window (BOS then padding) gets EOS right after BOS.
"""
from __future__ import annotations

WINDOW = 77
MIDDLE = WINDOW - 2


def window_count(max_token_length: int | None) -> int:
    """1 for None/75 (one ordinary 77-id window), else `max_token_length // 75` (2 for 150, 3 for 225).
    Raises ValueError for another value (sd-scripts allows only None, 75, 150, 225)."""
    if max_token_length in (None, 75):
        return 1
    if max_token_length not in (150, 225):
        raise ValueError(f"max_token_length {max_token_length!r}: use 75, 150 or 225")
    return max_token_length // MIDDLE


def token_windows(tok, captions: list[str], max_token_length: int | None):
    """Input ids of shape (B·n, 77) for `captions`, n = `window_count(max_token_length)`; rows of one caption
    are consecutive. With n = 1 this is exactly the ordinary padded, truncated 77-id tokenisation."""
    import torch

    n = window_count(max_token_length)
    length = MIDDLE * n + 2
    ids = tok(captions, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids
    return windows_of(ids, n, tok)


def windows_of(ids, n: int, tok):
    """Full-length id rows (B, 75·n + 2) → (B·n, 77) windows, repaired as described above; identity for n = 1."""
    import torch

    if n == 1:
        return ids
    eos, pad = tok.eos_token_id, tok.pad_token_id
    rows = []
    for row in ids:
        for w in range(n):
            chunk = torch.cat([row[:1], row[1 + MIDDLE * w:1 + MIDDLE * (w + 1)], row[-1:]])
            if pad != eos:
                if chunk[-2] != eos and chunk[-2] != pad:
                    chunk[-1] = eos
                if chunk[1] == pad:
                    chunk[1] = eos
            rows.append(chunk)
    return torch.stack(rows)


def stitch(hidden, batch: int):
    """Hidden states (B·n, 77, D) of the windows → (B, 1 + 75·n + 1, D). Identity for n = 1."""
    import torch

    n = hidden.shape[0] // batch
    if n == 1:
        return hidden
    h = hidden.reshape(batch, n, hidden.shape[1], hidden.shape[2])
    parts = [h[:, 0, :1]] + [h[:, w, 1:1 + MIDDLE] for w in range(n)] + [h[:, n - 1, -1:]]
    return torch.cat(parts, dim=1)


def first_window(pooled, batch: int):
    """Pooled outputs (B·n, D) → (B, D), keeping each caption's first window (sd-scripts' SDXL pooling)."""
    n = pooled.shape[0] // batch
    return pooled if n == 1 else pooled.reshape(batch, n, -1)[:, 0]
