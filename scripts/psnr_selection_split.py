"""PSNR gain over blurred on the model-selection images and on the rest (a check of selection bias).

Every shipped generator was picked by PSNR on the 200 model-selection images that ``train.py``
validates on (the first 200 readable validation-person images of ``load_split(DATA, 0.25, 0)``).
They are also among the 1,305 images ``evaluate.py --split val`` scores, so this splits the paired
per-image PSNR gain (``evaluate.py``'s ``psnr_gain``, ``eval`` preset, seed 0) into those 200 and
the others.

    python scripts/psnr_selection_split.py ../shared/data/lfw --model default stage5.keras --json out.json
"""
import argparse
import json
import os


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--model", nargs="+", default=["default"])
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    import numpy as np

    import tfdeblur.evaluation as ev
    from tfdeblur.data import load_faces, load_split, split_by_person
    from tfdeblur.inference import load_model

    _, selection = load_faces(load_split(a.data_dir, 0.25, 0).val, 256, limit=200)
    selection = {os.path.realpath(s) for s in selection}
    data = ev.load_data_dir(a.data_dir, split="val")
    found = ev.find_images(a.data_dir)
    _, val = split_by_person([f for f, _ in found], 0.25, 0)
    val = set(val)
    paths = [f for f, _ in found if f in val]  # load_data_dir's order
    if len(paths) != len(data.sharp):
        raise SystemExit("error: some validation images could not be read; the split cannot be matched")
    chosen = np.array([os.path.realpath(f) in selection for f in paths])
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
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
