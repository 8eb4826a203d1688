"""``mmfeat compare``: the comparison from the command line (its arguments: :mod:`mmfeat.cli`)."""

from __future__ import annotations

from pathlib import Path


def _modalities(args) -> dict:
    from ..registry import DEFAULT_BY_MODALITY, make_extractor

    modalities = {}
    for modality, default in DEFAULT_BY_MODALITY.items():
        value = getattr(args, modality)
        if value:
            column, _, name = value.partition(":")
            modalities[modality] = (column, make_extractor(name or default))
    if args.video:
        from ..audio import MFCCStats
        from ..image import CNNEmbedder
        from ..video import MotionStats, VideoAudio, VideoFrames

        modalities.update({
            "video_frames": (args.video, VideoFrames(CNNEmbedder())),
            "video_motion": (args.video, MotionStats()),
            "video_audio": (args.video, VideoAudio(MFCCStats())),
        })
    return modalities


def cmd_compare(args) -> int:
    from ..manifest import read_manifest
    from . import compare

    modalities = _modalities(args)
    if not modalities:
        raise ValueError("name at least one modality column: --image, --text, --audio or --video")
    table = read_manifest(args.manifest)
    missing = [c for c in [args.target, args.groups, *(c for c, _ in modalities.values())]
               if c is not None and c not in table.columns]
    if missing:
        raise ValueError(f"{args.manifest} has no column {missing[0]!r}; its columns are "
                         f"{list(table.columns)}")
    result = compare(table, target=args.target, modalities=modalities, groups=args.groups,
                     cv=args.cv, rank_by=args.rank_by, class_weight=args.class_weight,
                     interactions=not args.no_interactions, robustness=args.robustness,
                     refit=bool(args.refit), report_dir=args.report_dir,
                     random_state=args.random_state)
    print(result)
    if args.refit and result.best_estimator is not None:
        from ..modelfile import save_model

        save_model(result.best_estimator, args.refit)
        print(f"\nbest model ({result.best}) refitted on all {len(table)} rows: {args.refit}")
    print(f"\nreport written to {Path(args.report_dir).resolve()}/")
    return 0 if result.best is not None else 1
