"""A value the model refuses: the message names the field and the fix in a user's words, and shows in full
(wrapped) under the field and in the problems panel."""
from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import Field, TypeAdapter, ValidationError
from textual.widgets import OptionList

from lora_tui.ui.app import LoraApp
from lora_tui.ui.fields import error_message

from ui_helpers import screen_text, type_into


def _error(annotation, value) -> dict:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(annotation).validate_python(value)
    return info.value.errors()[0]


def test_pydantic_error_types_become_sentences_with_a_fix():
    assert error_message("learning_rate", _error(float, "abc")) == \
        "learning_rate: 'abc' is not a number; type a value such as 0.0001"
    msg = error_message("network_dim", _error(int, "1.5"))
    assert msg.startswith("network_dim: '1.5' is not a whole number; type an integer such as ")
    assert error_message("network_dim", _error(Annotated[int, Field(ge=1)], 0)) == \
        "network_dim: '0' is too small; it must be at least 1"
    assert error_message("max_grad_norm", _error(Annotated[int, Field(le=10)], 11)) == \
        "max_grad_norm: '11' is too large; it must be at most 10"
    msg = error_message("mixed_precision", _error(Literal["no", "fp16", "bf16"], "fp9"))
    assert msg.startswith("mixed_precision: 'fp9' is not an allowed value; choose one of ") and "bf16" in msg
    assert error_message("sdxl", _error(bool, "maybe")) == "sdxl: 'maybe' is not on/off; use true or false"
    for kind in ("float_parsing", "int_parsing", "greater_than_equal", "literal_error"):
        assert "Input should be" not in error_message("x", {"type": kind, "input": "?", "msg": "Input should be"})


async def test_refused_number_shows_a_whole_readable_message(settings):
    app = LoraApp(settings=settings)
    async with app.run_test(size=(100, 40)) as pilot:
        await type_into(pilot, app, "learning_rate", "abc")
        expected = "learning_rate: 'abc' is not a number; type a value such as 0.0001"
        label = app.query_one("#msg-learning_rate")
        assert " ".join(str(label.render()).split()) == expected  # folded to the label's width
        # Wrapped, not cut: every word is on screen.
        screen = " ".join(screen_text(app).split())
        assert "type a value such as 0.0001" in screen or all(w in screen for w in expected.split())
        assert label.size.width > 0 and label.size.height >= 1
        problems = app.query_one("#problems", OptionList)
        assert any(expected in str(problems.get_option_at_index(i).prompt) for i in range(problems.option_count))
