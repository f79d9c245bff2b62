from lora_tui.run.progress import ProgressState, exit_hint, format_duration, parse_duration, parse_line


def test_upstream_transcript_lines():
    u = parse_line("steps:  10%|█         | 19/190 [00:21<03:11,  1.12s/it, avr_loss=0.0912]")
    assert (u.kind, u.step, u.total, u.avr_loss, u.elapsed_s, u.eta_s) == ("steps", 19, 190, 0.0912, 21, 191)
    assert abs(u.it_per_s - 1 / 1.12) < 1e-9
    u = parse_line("steps:   0%|          | 0/190 [00:00<?, ?it/s]")
    assert (u.step, u.total, u.it_per_s, u.eta_s) == (0, 190, None, None)
    u = parse_line("steps: 100%|██████████| 190/190 [1:03:32<00:00,  1.12s/it, Average key norm=0.512, "
                   "Keys Scaled=3, avr_loss=0.0837]")
    assert u.elapsed_s == 3812 and u.avr_loss == 0.0837 and u.extra == {"Average key norm": "0.512",
                                                                          "Keys Scaled": "3"}
    assert parse_line("epoch 2/10").epochs == 10
    assert parse_line("2026-01-01 10:00:00 INFO     epoch 3/10").epoch == 3
    assert parse_line("epoch is incremented. current_epoch: 0, epoch: 2") is None
    assert parse_line("saving checkpoint: /out/my lora-000001.safetensors").saved == "/out/my lora-000001.safetensors"
    assert parse_line("model saved.").kind == "finished"
    # other tqdm bars are not the training progress
    assert parse_line("validation steps:  50%|█| 1/2 [00:01<00:01, 1.00it/s, val_avg_loss=0.1]") is None
    assert parse_line("caching latents...") is None


def test_our_machine_lines():
    u = parse_line('LORA_TUI_PROGRESS {"step": 12, "total": 96, "epoch": 1, "epochs": 6, "loss": 0.12, '
                   '"avr_loss": 0.11, "lr": 0.0001, "it_per_s": 3.2}')
    assert (u.step, u.total, u.epoch, u.epochs, u.loss, u.avr_loss, u.lr, u.it_per_s) == \
        (12, 96, 1, 6, 0.12, 0.11, 0.0001, 3.2)
    u = parse_line('LORA_TUI_SAVED {"path": "/o/x-000001.safetensors", "step": 12}')
    assert (u.kind, u.saved, u.step) == ("saved", "/o/x-000001.safetensors", 12)
    assert parse_line("LORA_TUI_PROGRESS {broken") is None


def test_state_accumulates_and_eta_from_rate():
    st = ProgressState()
    st.feed_lines(["epoch 1/6", 'LORA_TUI_PROGRESS {"step": 10, "total": 100, "loss": 0.5, "it_per_s": 2.0}',
                   "saving checkpoint: /o/a.safetensors", 'LORA_TUI_SAVED {"path": "/o/a.safetensors", "step": 10}'])
    assert (st.step, st.total, st.epoch, st.epochs, st.loss) == (10, 100, 1, 6, 0.5)
    assert st.eta_s == 45.0 and st.fraction == 0.1
    assert st.saved == ["/o/a.safetensors"]
    assert st.loss_history == [(10, 0.5)]
    assert "step 10/100" in st.summary() and "ETA 00:45" in st.summary()


def test_loss_history_is_bounded_and_spans_the_run():
    st = ProgressState(max_points=100)
    for step in range(1, 10_001):
        st.feed_line(f'LORA_TUI_PROGRESS {{"step": {step}, "total": 10000, "avr_loss": {1 / step}}}')
    assert len(st.loss_history) <= 101
    assert st.loss_history[0][0] == 1 and st.loss_history[-1][0] > 9800


def test_exception_line_prefers_the_trainer_over_the_launcher():
    st = ProgressState()
    st.feed_lines([
        "Traceback (most recent call last):", '  File "train_network.py", line 1, in <module>',
        "    main()", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "Traceback (most recent call last):", '  File "accelerate", line 8, in <module>',
        "subprocess.CalledProcessError: Command '['python', 'train_network.py']' returned non-zero exit status 1.",
    ])
    assert st.exception.startswith("torch.OutOfMemoryError: CUDA out of memory")
    assert len(st.tail) == 7


def test_exit_hints():
    assert "out of memory" in exit_hint(137)
    assert "out of memory" in exit_hint(-9)
    assert "interrupted" in exit_hint(-2) and "interrupted" in exit_hint(130)
    assert exit_hint(1, "ValueError: no images") == "failed (exit code 1): ValueError: no images"
    assert exit_hint(0) == "finished"
    assert exit_hint(1, stopped=True) == "interrupted by Stop"  # accelerate --quiet after a stopped trainer
    assert "unknown" in exit_hint(None)


def test_durations():
    assert parse_duration("17:00") == 1020 and parse_duration("1:02:03") == 3723 and parse_duration("?") is None
    assert format_duration(3723) == "1:02:03" and format_duration(59.6) == "01:00"


def test_print_glued_to_an_unfinished_bar_is_split_off():
    from lora_tui.run.progress import split_bar

    bar = "steps:   5%|▌         | 5/96 [00:02<00:40,  2.20it/s, avr_loss=0.3]"
    assert split_bar(bar + 'LORA_TUI_PROGRESS {"step": 5}') == (bar, 'LORA_TUI_PROGRESS {"step": 5}')
    assert split_bar(bar) == (bar, "")
    assert split_bar("epoch 1/2") == (None, "epoch 1/2")
