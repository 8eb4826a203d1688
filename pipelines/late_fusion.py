"""Late fusion: one model per modality, stacked by a meta-learner, and what each contributes.

    python pipelines/late_fusion.py [--manifest data.csv] [--rule stack|mean|product|vote]

Each modality's features are computed once per fit (the out-of-fold predictions re-fit only the
cheap per-modality estimators). Rows missing a modality still get a prediction.
"""

from __future__ import annotations

import argparse
import time

from _common import add_data_arguments, extractors, load_manifest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from mmfeat import save_model
from mmfeat.fusion import LateFusionClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--rule", default="stack", choices=["stack", "mean", "product", "vote"])
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--model-out", help="save the fitted model here (mmfeat.save_model)")
    args = parser.parse_args(argv)

    data = load_manifest(args.manifest, args.data_dir, args.n_samples)
    train, test = train_test_split(data, test_size=0.3, stratify=data["label"], random_state=0)
    model = LateFusionClassifier(extractors(args.quick), final_estimator=LogisticRegression(C=1.0),
                                 rule=args.rule, cv=args.cv, random_state=0)
    start = time.perf_counter()
    model.fit(train, train["label"])
    print(f"fitted in {time.perf_counter() - start:.1f} s; held-out accuracy "
          f"{model.score(test, test['label']):.3f}")
    print(model.modality_report_.to_string(index=False))
    if args.model_out:
        save_model(model, args.model_out)
        print(f"saved {args.model_out}")
    return model


if __name__ == "__main__":
    main()
