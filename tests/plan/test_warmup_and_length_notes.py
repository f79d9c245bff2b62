"""Warm-up and run-length findings a new user hit (issue 14): both warm-up settings set (which one wins), a warm-up as
long as the run, and a file's max_train_epochs that silently beats the Minimal form's Epochs."""
from __future__ import annotations

from plan_helpers import make_cfg, write_images

from lora_tui.plan import make_plan


def _data(tmp_path):
    write_images(tmp_path / "img" / "2_x", 4, (64, 64), caption_ext=".txt")
    return str(tmp_path / "img")


def _warm(problems):
    return {p.field: p for p in problems if p.field in ("lr_warmup", "lr_warmup_steps")}


def test_both_warmup_settings_say_which_wins(tmp_path, settings):
    cfg = make_cfg(train_data_dir=_data(tmp_path), lr_scheduler="cosine", lr_warmup=10, lr_warmup_steps=2, epoch=4)
    plan = make_plan(cfg, settings)
    found = _warm(plan.problems)
    assert set(found) == {"lr_warmup"} and found["lr_warmup"].severity == "warning"
    assert "lr_warmup_steps 2 is set too and wins" in found["lr_warmup"].message
    assert plan.steps.lr_warmup_steps == 2  # what the message says is what the plan (and the TOML) use
    # one of them alone: nothing to say
    assert not _warm(make_plan(make_cfg(train_data_dir=_data(tmp_path), lr_scheduler="cosine", lr_warmup=10,
                                        epoch=4), settings).problems)


def test_a_warmup_as_long_as_the_run_is_a_warning(tmp_path, settings):
    # 4 images × 2 repeats, batch 1 → 8 steps per epoch × 2 epochs = 16 steps
    cfg = make_cfg(train_data_dir=_data(tmp_path), lr_scheduler="cosine", lr_warmup_steps=40, epoch=2)
    plan = make_plan(cfg, settings)
    assert plan.steps.max_train_steps == 16
    found = _warm(plan.problems)
    assert list(found) == ["lr_warmup_steps"]
    assert "the warm-up (40 steps) is as long as the whole run (16 steps)" in found["lr_warmup_steps"].message
    assert not _warm(make_plan(cfg.model_copy(update={"lr_warmup_steps": 4}), settings).problems)
    # a percentage of 100 is the whole run too
    full = make_plan(cfg.model_copy(update={"lr_warmup_steps": 0, "lr_warmup": 100}), settings)
    assert list(_warm(full.problems)) == ["lr_warmup"]


def test_max_train_epochs_over_the_epochs_field_is_explained(tmp_path, settings):
    cfg = make_cfg(train_data_dir=_data(tmp_path), epoch=2, max_train_epochs=10)
    steps = make_plan(cfg, settings).steps
    assert steps.epochs == 10
    assert any("max_train_epochs 10 (Advanced form) sets the length, so Epochs 2 is not used" in n
               for n in steps.notes), steps.notes
    assert not make_plan(cfg.model_copy(update={"max_train_epochs": None}), settings).steps.notes
