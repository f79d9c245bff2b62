from lora_tui.run.logstream import LineSplitter, strip_ansi
from lora_tui.run.progress import ProgressState

TQDM = "steps:  37%|███ | 1110/3000 [10:00<17:00, 1.85it/s, avr_loss=0.0912]"


def test_tqdm_updates_with_cr_give_one_live_line_and_parsed_figures():
    s = LineSplitter()
    state = ProgressState()
    stream = "".join(f"\rsteps:  {n // 30}%|█   | {n}/3000 [00:01<17:00, 1.80it/s, avr_loss=0.1]"
                     for n in range(1, 1110)) + "\r" + TQDM
    lines = s.feed(stream.encode())
    assert lines == []  # no newline yet: everything is the one live line
    assert s.live == TQDM
    state.feed_live(s.live)
    assert (state.step, state.total) == (1110, 3000)
    assert state.it_per_s == 1.85
    assert state.avr_loss == 0.0912
    assert state.eta_s == 17 * 60
    # the bar is closed with "\n": it becomes exactly one completed line, the final state
    assert s.feed(b"\n") == [TQDM]
    assert s.live == ""


def test_crlf_split_across_chunks_and_print_between_bar_updates():
    s = LineSplitter()
    assert s.feed(b"first\r") == []
    assert s.live == "first"
    assert s.feed(b"\nsecond\r\n") == ["first", "second"]
    # a print() while a bar is partial ends the bar line, as on a terminal
    assert s.feed(b"\rsteps: 1/2\rsteps: 2/2hello\n") == ["steps: 2/2hello"]


def test_utf8_character_split_between_chunks_survives():
    data = "Ünïcödé ✓ 日本\n".encode()
    s = LineSplitter()
    out = []
    for i in range(len(data)):
        out += s.feed(data[i:i + 1])
    assert out == ["Ünïcödé ✓ 日本"]
    assert LineSplitter().feed(b"bad \xff byte\n") == ["bad \ufffd byte"]


def test_ansi_and_control_codes_are_stripped():
    s = LineSplitter()
    line = "\x1b[32mINFO\x1b[0m  \x1b]0;title\x07loaded\x1b[A\x07 ok\tdone"
    assert s.feed(line.encode() + b"\n") == ["INFO  loaded ok\tdone"]
    assert strip_ansi("\x1b[1;31mred\x1b[0m") == "red"


def test_close_returns_the_unfinished_line():
    s = LineSplitter()
    assert s.feed(b"a\nno newline at end\r") == ["a"]
    assert s.close() == ["no newline at end"]
    assert s.live == ""


def test_memory_is_bounded_for_hours_of_cr_updates_and_endless_lines():
    s = LineSplitter(max_line_chars=1000)
    for i in range(2000):
        s.feed(f"\rsteps: {i}/2000".encode())
    assert len(s._partial) < 100 and s.live == "steps: 1999/2000"
    pieces = s.feed(b"\n" + b"x" * 2500)
    assert pieces[0] == "steps: 1999/2000"
    assert pieces[1:] == ["x" * 1000, "x" * 1000] and s.live == "x" * 500


def test_overwritten_bar_states_are_kept_on_request_once_each():
    s = LineSplitter(keep_overwritten=True)
    s.feed(b"\rsteps: 1/4 a")
    s.feed(b"\rsteps: 2/4 b\r")
    s.feed(b"\rsteps: 3/4 c\rsteps: 4/4 d\nnext\n")
    assert s.overwritten == ["steps: 1/4 a", "steps: 2/4 b", "steps: 3/4 c"]
    assert LineSplitter().overwritten == []


def test_tqdm_padding_after_a_shorter_status_is_not_kept():
    # tqdm pads a status shorter than the one before with spaces; a folding log pane showed that padding as a
    # blank row after some steps (a trial's "Average key norm" bar at 80 columns).
    long = "steps:   1%|          | 2/320 [00:01<03:31,  1.50it/s, Average key norm=0.00407, avr_loss=0.921]"
    short = "steps:   1%|          | 2/320 [00:01<03:31,  1.50it/s, Average key norm=0.0041, avr_loss=0.921]"
    s = LineSplitter(keep_overwritten=True)
    assert s.feed(f"\r{long}\r{short}  \x1b[0m ".encode()) == []
    assert s.live == short
    assert s.feed(b"\nLORA_TUI_PROGRESS {}\nplain text with blanks \t \n") == [
        short, "LORA_TUI_PROGRESS {}", "plain text with blanks"]
    assert s.overwritten == [long]
