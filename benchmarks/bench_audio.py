"""MFCCStats and SpectralStats against raw librosa loops, side by side in one process.

~500 one-second 16 kHz WAVs are written to a temporary directory. The raw loop is what a
user would write: ``librosa.load`` at 16 kHz, 20 MFCCs, deltas, mean and std over time;
MFCCStats computes the same 80 numbers with its cache off (one batched STFT, filterbank and
DCT per batch of clips). Then both again in two processes: MFCCStats(n_jobs=2) against the
raw function under ``joblib.Parallel(n_jobs=2)``. Last, SpectralStats against the loop of
librosa's eight spectral features of one STFT per clip.

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


def raw_spectral(path: str) -> np.ndarray:
    import librosa
    from librosa import feature

    wave, _ = librosa.load(path, sr=SR)
    S = np.abs(librosa.stft(wave, n_fft=512, hop_length=160))
    frames = np.concatenate([
        feature.spectral_centroid(S=S, sr=SR, n_fft=512),
        feature.spectral_bandwidth(S=S, sr=SR, n_fft=512),
        feature.spectral_rolloff(S=S, sr=SR, n_fft=512),
        feature.zero_crossing_rate(wave, frame_length=512, hop_length=160),
        feature.rms(S=S, frame_length=512),
        feature.spectral_contrast(S=S, sr=SR, n_fft=512, fmin=200.0, n_bands=6),
        feature.chroma_stft(S=S**2, sr=SR, n_fft=512, tuning=0.0), feature.spectral_flatness(S=S)])
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
    from threadpoolctl import threadpool_limits

    from mmfeat.audio import MFCCStats, SpectralStats

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_clips(Path(tmp), args.n)
        serial = MFCCStats(cache=False).fit([])
        parallel = MFCCStats(cache=False, n_jobs=2).fit([])
        spectral = SpectralStats(cache=False).fit([])

        def raw_serial():
            return np.stack([raw_features(p) for p in paths])

        def raw_one_thread():
            # on a loaded machine librosa's small matrix products lose up to 8x to BLAS
            # threads fighting over the cores: the fair baseline is the same loop at 1 thread
            with threadpool_limits(1):
                return raw_serial()

        def raw_spectral_one_thread():
            with threadpool_limits(1):
                return [raw_spectral(p) for p in paths]

        def raw_parallel():
            return np.stack(Parallel(n_jobs=2)(delayed(raw_features)(p) for p in paths))

        # warm-up (numba, worker processes), and proof that both compute the same numbers
        np.testing.assert_allclose(serial.transform(paths[:20]), raw_serial()[:20], rtol=1e-4,
                                   atol=1e-3)
        np.testing.assert_allclose(parallel.transform(paths), raw_parallel(), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(spectral.transform(paths[:20]),
                                   np.stack([raw_spectral(p) for p in paths[:20]]),
                                   rtol=1e-4, atol=1e-3)
        threads = Parallel(n_jobs=2)(delayed(blas_threads_in_worker)(i) for i in range(2))

        rows = [
            ("audio: MFCCStats vs librosa loop",
             *paired(raw_serial, lambda: serial.transform(paths), args.rounds)),
            ("audio: MFCCStats vs librosa loop with BLAS at 1 thread",
             *paired(raw_one_thread, lambda: serial.transform(paths), args.rounds)),
            ("audio: MFCCStats(n_jobs=2) vs librosa loop under joblib n_jobs=2",
             *paired(raw_parallel, lambda: parallel.transform(paths), args.rounds)),
            ("audio: SpectralStats vs librosa spectral loop",
             *paired(lambda: [raw_spectral(p) for p in paths], lambda: spectral.transform(paths),
                     args.rounds)),
            ("audio: SpectralStats vs librosa spectral loop with BLAS at 1 thread",
             *paired(raw_spectral_one_thread, lambda: spectral.transform(paths), args.rounds)),
        ]
    print(f"\n{args.n} one-second WAVs, 20 MFCCs + deltas (and 8 spectral features), mean/std; "
          f"best of {args.rounds} "
          f"paired rounds; BLAS threads in each joblib worker: {max(threads)}\n")
    print("| family | raw items/s | mmfeat items/s | ratio (median of paired rounds) |")
    print("|---|---|---|---|")
    for family, raw_best, mm_best, ratio in rows:
        print(f"| {family} | {args.n / raw_best:.0f} | {args.n / mm_best:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
