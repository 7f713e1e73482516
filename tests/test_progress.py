"""Progress bars in logs (issue 17): whole lines, sparse, no carriage-return frames."""
from bayesprune.progress import progress_bar


def test_a_bar_in_a_log_writes_few_whole_lines(capsys):
    bar = progress_bar(total=500, desc="fine-tune", unit="step")
    for step in range(500):
        bar.set_postfix(loss=f"{1 / (step + 1):.3f}", refresh=False)
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err  # pytest's stderr is not a terminal
    lines = err.splitlines()
    assert "\r" not in err and 1 <= len(lines) <= 3, lines
    assert lines[-1].startswith("fine-tune: 100%") and "500/500" in lines[-1] and "loss=0.002" in lines[-1]


def test_a_disabled_bar_writes_nothing(capsys):
    for _ in progress_bar(range(10), desc="quiet", enabled=False):
        pass
    assert capsys.readouterr().err == ""
