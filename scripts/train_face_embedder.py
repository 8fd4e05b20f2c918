"""Train the identity content term's face embedder (issue 18) on the training persons only.

    python scripts/train_face_embedder.py [--data-dir DIR] [--output PATH] [--epochs N] [--seed S]

The person split is training's own (``data.val_fraction`` / ``data.split_seed`` of the default
config), so no validation person is ever seen. Prints and writes (beside the model, as JSON) the
verification AUC on validation persons, for centre crops and for random crops.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfdeblur.files import write_json  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/lfw")
    p.add_argument("--output", default="models/identity/face_embedder.keras")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from tfdeblur import quiet
    from tfdeblur.config import load_config
    from tfdeblur.data import NoImagesError, load_faces, load_split

    dcfg = load_config(None)["data"]
    try:
        split = load_split(args.data_dir, dcfg["val_fraction"], dcfg["split_seed"])
    except NoImagesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    quiet.import_tensorflow()
    import numpy as np

    from tfdeblur import face_embedder as fe
    from tfdeblur.identity import labels_from_paths

    paths, ids = fe.training_set(split.train)
    images, kept = load_faces(paths, 256)
    ids = ids[[paths.index(k) for k in kept]]
    print(f"training persons: {ids.max() + 1} with 2+ photos, {len(images)} photos", file=sys.stderr)
    embedder = fe.train_face_embedder(images, ids, epochs=args.epochs, seed=args.seed)

    val_images, val_kept = load_faces(split.val, 256)
    labels = labels_from_paths(val_kept)
    rng = np.random.default_rng(args.seed)
    report = {"train_persons": int(ids.max() + 1), "train_photos": int(len(images)), "epochs": args.epochs,
              "seed": args.seed, "val_photos": int(len(val_images))}
    for name, emb in (("centre_crop", fe.embed_crops(embedder, val_images)),
                      ("random_crop", np.concatenate([embedder(fe.random_crops(val_images[i:i + 128], rng), training=False).numpy()
                                                      for i in range(0, len(val_images), 128)]))):
        auc, n_pairs = fe.verification_auc(emb, labels, seed=args.seed)
        report[f"val_auc_{name}"] = auc
        report["val_pairs"] = n_pairs
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    embedder.save(args.output)
    write_json(os.path.splitext(args.output)[0] + ".json", report)
    print(json.dumps(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
