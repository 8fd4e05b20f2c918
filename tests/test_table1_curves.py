"""scripts/table1_curves.py: the Table 1 runs' validation PSNR read back from TensorBoard logs,
resumed runs whole, an earlier budget drawn beside them, and one-line errors."""
import importlib.util
import json
import os

import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("table1_curves", os.path.join(REPO, "scripts", "table1_curves.py"))
table1_curves = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table1_curves)


def _write_psnr(log_dir, points):
    """One event file of ``val/psnr`` scalars (a second call adds a second file: a resumed run)."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for step, value in points.items():
            tf.summary.scalar("val/psnr", value, step=step)
    writer.close()


def test_curves_from_logs_with_resume_and_compare(tmp_path, capsys):
    runs = tmp_path / "runs"
    _write_psnr(str(runs / "gan" / "logs"), {250: 22.0, 500: 22.2})
    _write_psnr(str(runs / "gan" / "logs"), {500: 22.25, 750: 22.3, 1000: 22.31})  # resumed: last write wins
    _write_psnr(str(runs / "lsgan" / "logs"), {250: 22.1, 500: 22.4})
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"gan": [{"step": 250, "val_psnr": 21.9}, {"step": 500, "val_psnr": 22.0}]}))
    out = tmp_path / "out"

    assert table1_curves.main(["x", str(runs), str(out), "--compare", str(earlier)]) == 0

    curves = json.loads((out / "val_psnr_curves.json").read_text())
    assert set(curves) == {"gan", "lsgan"}  # no wgan-gp run: left out, not invented
    gan = {p["step"]: p["val_psnr"] for p in curves["gan"]}
    assert sorted(gan) == [250, 500, 750, 1000]
    assert abs(gan[500] - 22.25) < 1e-6
    assert (out / "val_psnr_curves.png").stat().st_size > 0
    printed = capsys.readouterr().out
    # The last tenth and fifth of GAN's 1,000 steps start at step 1,000 itself; LSGAN's at 500.
    assert "GAN: 22.310 dB at step 1,000; +0.000 dB since step 1,000, +0.000 dB since step 1,000" in printed
    assert "LSGAN: 22.400 dB at step 500; +0.000 dB since step 500, +0.000 dB since step 500" in printed


def test_levelling_reports_the_change_over_the_last_tenth_and_fifth(tmp_path, capsys):
    runs = tmp_path / "runs"
    _write_psnr(str(runs / "wgan-gp" / "logs"), {s: 22.0 + s / 10000 for s in range(250, 5001, 250)})
    assert table1_curves.main(["x", str(runs), str(tmp_path / "out")]) == 0
    # From step 4,500 (the first at or past 90% of 5,000): +0.05 dB; from 4,000 (80%): +0.1 dB.
    assert ("WGAN-GP: 22.500 dB at step 5,000; +0.050 dB since step 4,500, +0.100 dB since step 4,000"
            in capsys.readouterr().out)


def test_errors_are_one_line(tmp_path, capsys):
    assert table1_curves.main(["x", str(tmp_path / "none"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    runs = tmp_path / "runs"
    _write_psnr(str(runs / "gan" / "logs"), {250: 22.0})
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert table1_curves.main(["x", str(runs), str(tmp_path / "out"), "--compare", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --compare") and err.count("\n") == 1
