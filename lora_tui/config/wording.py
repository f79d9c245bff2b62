"""Counts in messages: a number with its noun (and verb) in the number the count takes, so a message says
"1 image is" and "2 images are" rather than "1 images"."""
from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` followed by `noun`, plural unless `n` is 1: ``counted(1, "image") == "1 image"``,
    ``counted(0, "image") == "0 images"``. `plural` gives an irregular plural (default: `noun` + "s"), e.g.
    ``counted(2, "batch", "batches")``."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def agree(n: int, singular: str, plural: str) -> str:
    """The word that goes with a count of `n` (a verb or a pronoun): ``agree(1, "is", "are") == "is"``,
    ``agree(3, "is", "are") == "are"``."""
    return singular if n == 1 else plural
