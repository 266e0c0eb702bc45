"""``genreg plot`` (genreg.plots.run): the three PNGs of a run, a clear error on an empty directory."""

from __future__ import annotations

from genreg.cli import main as cli
from helpers import determinism_runs


# --------------------------------------------------------------------------
# genreg plot
# --------------------------------------------------------------------------


def test_plot_writes_three_pngs(determinism_runs, tmp_path, capsys):
    assert cli.main(["plot", str(determinism_runs["a"]), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("trust_accuracy.png", "per_digit.png", "tracked_weights.png"):
        data = (tmp_path / name).read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"wrote {tmp_path / name}" in out


def test_plot_on_empty_dir_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genreg: error:") and "metrics.csv" in err
    assert not list(tmp_path.iterdir())
