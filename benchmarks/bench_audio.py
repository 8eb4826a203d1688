"""MFCCStats against a raw librosa loop, side by side in one process.

~500 one-second 16 kHz WAVs are written to a temporary directory. The raw loop is what a
user would write: ``librosa.load`` at 16 kHz, 20 MFCCs, deltas, mean and std over time;
MFCCStats computes the same 80 numbers with its cache off. Then both again in two
processes: MFCCStats(n_jobs=2) against the raw function under ``joblib.Parallel(n_jobs=2)``.

    .venv/bin/python benchmarks/bench_audio.py [--n 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _timing import paired

SR = 16_000


def write_clips(directory: Path, n: int) -> list[str]:
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    paths = []
    for i in range(n):
        wave = 0.4 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.05 * rng.standard_normal(SR)
        path = directory / f"clip{i:04d}.wav"
        sf.write(path, wave.astype(np.float32), SR)
        paths.append(str(path))
    return paths


def raw_features(path: str) -> np.ndarray:
    import librosa

    wave, _ = librosa.load(path, sr=SR)
    mfcc = librosa.feature.mfcc(y=wave, sr=SR, n_mfcc=20, n_fft=512, hop_length=160, n_mels=40)
    frames = np.concatenate([mfcc, librosa.feature.delta(mfcc)])
    return np.stack([frames.mean(axis=1), frames.std(axis=1)], axis=1).ravel()


def blas_threads_in_worker(_) -> int:
    from threadpoolctl import threadpool_info

    return max(pool["num_threads"] for pool in threadpool_info())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from joblib import Parallel, delayed

    from mmfeat.audio import MFCCStats

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_clips(Path(tmp), args.n)
        serial = MFCCStats(cache=False).fit([])
        parallel = MFCCStats(cache=False, n_jobs=2).fit([])

        def raw_serial():
            return np.stack([raw_features(p) for p in paths])

        def raw_parallel():
            return np.stack(Parallel(n_jobs=2)(delayed(raw_features)(p) for p in paths))

        # warm-up (numba, worker processes), and proof that both compute the same numbers
        np.testing.assert_allclose(serial.transform(paths[:20]), raw_serial()[:20], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(parallel.transform(paths), raw_parallel(), rtol=1e-4, atol=1e-3)
        threads = Parallel(n_jobs=2)(delayed(blas_threads_in_worker)(i) for i in range(2))

        rows = [
            ("audio: MFCCStats vs librosa loop",
             *paired(raw_serial, lambda: serial.transform(paths), args.rounds)),
            ("audio: MFCCStats(n_jobs=2) vs librosa loop under joblib n_jobs=2",
             *paired(raw_parallel, lambda: parallel.transform(paths), args.rounds)),
        ]
    print(f"\n{args.n} one-second WAVs, 20 MFCCs + deltas, mean/std; best of {args.rounds} "
          f"paired rounds; BLAS threads in each joblib worker: {max(threads)}\n")
    print("| family | raw items/s | mmfeat items/s | ratio (median of paired rounds) |")
    print("|---|---|---|---|")
    for family, raw_best, mm_best, ratio in rows:
        print(f"| {family} | {args.n / raw_best:.0f} | {args.n / mm_best:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
