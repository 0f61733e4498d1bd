"""Smoke test: examples/char_rnn.py trains both runs for a few steps, samples text and saves
its plot."""
import math
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def char_rnn(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import char_rnn
    yield char_rnn
    sys.modules.pop("char_rnn", None)


def test_char_rnn_smoke(char_rnn, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    runs = char_rnn.main(["--steps", "4", "--hidden", "16", "--seq-len", "16",
                          "--batch-size", "4", "--sample-every", "2", "--sample-len", "24",
                          "--lr", "1", "--clip", "0.1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    clipped, plain = runs["clip 0.1"], runs["no clip"]
    assert len(clipped["norms"]) == len(plain["losses"]) == 4
    # Same initial weights and batches: the first step's gradient is the same in both runs;
    # afterwards the clipped run has taken smaller steps.
    assert clipped["norms"][0] == pytest.approx(plain["norms"][0])
    assert clipped["norms"][0] > 0.1 and clipped["losses"][1] != plain["losses"][1]
    assert all(math.isfinite(v) for run in runs.values() for v in run["losses"])
    assert plain["losses"][0] == pytest.approx(math.log(len(set(char_rnn.load_text(None)))),
                                               rel=0.2)  # near-uniform predictions at first
    assert out.count("    The ") == 4  # two samples per run, each continuing the prime
    assert (tmp_path / "char_rnn_grad_norm.png").stat().st_size > 10_000


def test_char_rnn_rejects_a_text_shorter_than_a_window(char_rnn, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("tiny", encoding="utf-8")
    with pytest.raises(SystemExit):
        char_rnn.main(["--text", str(short), "--steps", "1", "--out", str(tmp_path)])
