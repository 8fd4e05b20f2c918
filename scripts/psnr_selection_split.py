"""PSNR gain over blurred on the model-selection images and on the rest (a check of selection bias).

Every shipped generator was picked by PSNR on the 200 model-selection images that ``train.py``
validates on (the first 200 readable validation-person images of ``load_split(DATA, 0.25, 0)``).
They are also among the 1,305 images ``evaluate.py --split val`` scores, so this splits the paired
per-image PSNR gain (``evaluate.py``'s ``psnr_gain``, ``eval`` preset, seed 0) into those 200 and
the others.

    python scripts/psnr_selection_split.py ../shared/data/lfw --model default stage5.keras --json out.json
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--model", nargs="+", default=["default"])
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    import numpy as np

    import tfdeblur.evaluation as ev
    from tfdeblur.config import DEFAULTS
    from tfdeblur.data import load_faces, load_split
    from tfdeblur.inference import load_model

    split = load_split(a.data_dir, DEFAULTS["data"]["val_fraction"], DEFAULTS["data"]["split_seed"])
    _, selection = load_faces(split.val, 256, limit=DEFAULTS["data"]["val_images"])
    # evaluate.py names each image by its path under data_dir without the extension
    selection = {ev.stem_key(os.path.relpath(s, a.data_dir)) for s in selection}
    data = ev.load_data_dir(a.data_dir, split="val")
    chosen = np.array([name in selection for name in data.names])
    if chosen.sum() != len(selection):
        raise SystemExit(f"error: only {chosen.sum()} of the {len(selection)} model-selection images are among the evaluated ones")
    blurred_psnr = ev.image_quality(data.blurred, data.sharp)[0]
    out = {"n_selection": int(chosen.sum()), "n_other": int((~chosen).sum()), "models": {}}
    for name in a.model:
        restored, _ = ev.deblur_images(load_model(None if name == "default" else name), data.blurred, 16, None)
        psnr = ev.image_quality(restored, data.sharp)[0]
        out["models"][name] = {part: ev.paired_difference(blurred_psnr[mask], psnr[mask])
                               for part, mask in (("selection", chosen), ("other", ~chosen), ("all", chosen | ~chosen))}
        for part, d in out["models"][name].items():
            print(f"{name:>24} {part:>9}: PSNR gain {d['mean']:+.2f} dB [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}], n = {d['n']}")
    if a.json:
        write_json(a.json, out)


if __name__ == "__main__":
    main()
