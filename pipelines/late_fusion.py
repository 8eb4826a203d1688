"""Late fusion: one model per modality, stacked by a meta-learner, and what each contributes.

    python pipelines/late_fusion.py [--manifest data.csv] [--rule stack|mean|product|vote]
                                    [--group-col speaker]

Each modality's features are computed once per fit (the out-of-fold predictions re-fit only the
cheap per-modality estimators, which tune themselves). Rows missing a modality still get a
prediction. With ``--group-col`` the held-out rows are whole groups and the out-of-fold
predictions split by group, so that a group is never both learned from and predicted.
"""

from __future__ import annotations

import argparse
import time

from _common import add_data_arguments, extractors, load_manifest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from mmfeat import save_model
from mmfeat.fusion import LateFusionClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--rule", default="stack", choices=["stack", "mean", "product", "vote"],
                        help="how the modalities' predictions are combined (default: %(default)s)")
    parser.add_argument("--cv", type=int, default=5,
                        help="folds of the out-of-fold predictions (default: %(default)s)")
    parser.add_argument("--group-col", help="column of row groups (speaker, session ...): "
                                            "hold out whole groups and fit with groups=")
    parser.add_argument("--model-out", help="save the fitted model here (mmfeat.save_model)")
    args = parser.parse_args(argv)

    data = load_manifest(args.manifest, args.data_dir, args.n_samples)
    fit_params = {}
    if args.group_col:
        groups = data[args.group_col]
        train_rows, test_rows = next(GroupShuffleSplit(1, test_size=0.3, random_state=0)
                                     .split(data, groups=groups))
        train, test = data.iloc[train_rows], data.iloc[test_rows]
        fit_params["groups"] = train[args.group_col]
    else:
        train, test = train_test_split(data, test_size=0.3, stratify=data["label"], random_state=0)
    model = LateFusionClassifier(extractors(args.quick), final_estimator=LogisticRegression(C=1.0),
                                 rule=args.rule, cv=args.cv, random_state=0)
    start = time.perf_counter()
    model.fit(train, train["label"], **fit_params)
    print(f"fitted in {time.perf_counter() - start:.1f} s; held-out accuracy "
          f"{model.score(test, test['label']):.3f}")
    print(model.modality_report_.to_string(index=False))
    if args.model_out:
        save_model(model, args.model_out)
        print(f"saved {args.model_out}")
    return model


if __name__ == "__main__":
    main()
