"""The batched front end of the audio extractors: many clips' frames laid end to end.

librosa computes one clip per call, and for clips of a few seconds its per-call overhead
(validation, padding, window set-up, numba dispatch) costs more than the arithmetic. Here the
frames of every clip of a batch are stacked into one matrix, so that one FFT, one filterbank
product and one DCT serve them all. The numbers are librosa's (same window, centring, padding,
filterbanks and conventions; ``tests/test_audio.py`` holds the comparison): every step that
looks at one frame at a time is exact on the stacked frames; the steps that look across a clip
(the dB ceiling of an MFCC, deltas, the summaries) are done per clip, by its frame range.
"""

from __future__ import annotations

import functools

import numpy as np

#: Frames computed at once; a longer clip runs alone. 32 k frames of a 512-point FFT are about
#: 70 MB of complex spectrum: memory stays bounded whatever the batch size and clip lengths.
MAX_FRAMES = 32_768


def n_frames(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT (librosa's ``center=True``) of ``n_samples`` >= ``n_fft``."""
    return 1 + n_samples // hop_length


def chunks(waves: list, hop_length: int):
    """Consecutive runs of ``waves`` whose frames add up to at most :data:`MAX_FRAMES` (a clip
    longer than that is a run of its own): yields ``slice`` objects."""
    max_frames = MAX_FRAMES
    start, total = 0, 0
    for i, wave in enumerate(waves):
        count = n_frames(wave.size, hop_length)
        if i > start and total + count > max_frames:
            yield slice(start, i)
            start, total = i, 0
        total += count
    if start < len(waves):
        yield slice(start, len(waves))


def bounds(waves: list, hop_length: int) -> np.ndarray:
    """Where each clip's frames start in the stacked matrix, and the end: shape (n_clips + 1,)."""
    counts = [n_frames(w.size, hop_length) for w in waves]
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)


def _padded(waves: list, n_fft: int, hop_length: int, mode: str):
    """Every clip padded by ``n_fft // 2`` on each side (``"constant"``: zeros, as librosa's
    STFT; ``"edge"``: its end values, as its zero-crossing rate), laid end to end in one
    buffer: ``(signal, starts)``, ``starts`` where each frame begins in it, every clip's
    frames in order."""
    half = n_fft // 2
    sizes = [w.size for w in waves]
    offsets = np.concatenate([[0], np.cumsum([size + 2 * half for size in sizes])])
    signal = np.empty(offsets[-1], dtype=np.float32)
    for wave, at in zip(waves, offsets):
        end = at + half + wave.size
        signal[at:at + half] = 0.0 if mode == "constant" else wave[0]
        signal[at + half:end] = wave
        signal[end:end + half] = 0.0 if mode == "constant" else wave[-1]
    starts = np.concatenate([at + np.arange(n_frames(size, hop_length)) * hop_length
                             for at, size in zip(offsets, sizes)])
    return signal, starts


def _framed(waves: list, n_fft: int, hop_length: int, mode: str) -> np.ndarray:
    """The padded clips (see :func:`_padded`) cut into frames of ``n_fft`` samples every
    ``hop_length``: shape (total_frames, n_fft). Every frame is gathered from the one buffer
    in one copy (three times faster than padding and framing clip by clip)."""
    from numpy.lib.stride_tricks import sliding_window_view

    signal, starts = _padded(waves, n_fft, hop_length, mode)
    return sliding_window_view(signal, n_fft)[starts]


@functools.lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
    from scipy.signal import get_window

    # librosa's window: periodic Hann (fftbins=True)
    return get_window("hann", n_fft, fftbins=True).astype(np.float32)


def magnitude(waves: list, n_fft: int, hop_length: int) -> np.ndarray:
    """``|librosa.stft(wave, n_fft, hop_length)|`` of every clip, frames stacked along time:
    shape (1 + n_fft // 2, total_frames), float32."""
    from scipy import fft

    frames = _framed(waves, n_fft, hop_length, "constant")  # librosa 0.10+: zero padding
    frames *= _hann(n_fft)
    return np.abs(fft.rfft(frames, axis=1)).T


def zero_crossing_rate(waves: list, n_fft: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate(wave, frame_length=n_fft, hop_length=hop_length)``
    of every clip, frames stacked: shape (1, total_frames).

    Counted from a running sum of sign changes rather than per frame: the same integers, in
    one pass over all clips' samples instead of ``n_fft`` per frame. A frame never crosses
    from one clip's padded samples into the next's, so one running sum serves every clip.
    """
    signal, starts = _padded(waves, n_fft, hop_length, "edge")
    # librosa: |x| <= 1e-10 counts as zero and zero as positive, so negative means < -1e-10
    negative = signal < -1e-10
    running = np.zeros(signal.size, dtype=np.int32)
    np.cumsum(negative[1:] != negative[:-1], dtype=np.int32, out=running[1:])
    return ((running[starts + n_fft - 1] - running[starts]) / n_fft)[None, :]


@functools.lru_cache(maxsize=16)
def fft_frequencies(sr: int, n_fft: int) -> np.ndarray:
    """``librosa.fft_frequencies``, computed once per setting (read-only)."""
    import librosa

    freq = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    freq.setflags(write=False)
    return freq


@functools.lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's default mel filterbank (Slaney scale and norm), built once per setting."""
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)


@functools.lru_cache(maxsize=16)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """The orthonormal DCT-II librosa's MFCC applies along the mel axis, as a matrix."""
    from scipy import fft

    return fft.dct(np.eye(n_mels, dtype=np.float32), type=2, norm="ortho", axis=0)[:n_mfcc]


def power_to_db(power: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``librosa.power_to_db(clip)`` (ref 1, amin 1e-10, top_db 80) of each clip's frames."""
    db = 10.0 * np.log10(np.maximum(1e-10, power))
    floor = np.maximum.reduceat(db.max(axis=0), edges[:-1]) - 80.0
    return np.maximum(db, np.repeat(floor, np.diff(edges))[None, :])


def spectral_contrast(magnitude: np.ndarray, edges: np.ndarray, *, sr: int, n_fft: int,
                      fmin: float, n_bands: int, quantile: float = 0.02) -> np.ndarray:
    """``librosa.feature.spectral_contrast(S=clip, ...)`` of every clip, frames stacked.

    librosa's octave bands, peaks and valleys are per frame, but its dB conversion floors each
    clip 80 dB under that clip's loudest peak (and valley): done here per clip, by frame range.
    """

    freq = fft_frequencies(sr, n_fft)
    octaves = np.zeros(n_bands + 2)
    octaves[1:] = fmin * 2.0 ** np.arange(n_bands + 1)
    valley = np.zeros((n_bands + 1, magnitude.shape[1]))
    peak = np.zeros_like(valley)
    for k, (low, high) in enumerate(zip(octaves[:-1], octaves[1:])):
        idx = np.flatnonzero((freq >= low) & (freq <= high))  # a run of bins: freq ascends
        first = idx[0] - 1 if k > 0 else idx[0]  # librosa's bands overlap by one bin below ...
        stop = freq.size if k == n_bands else idx[-1] + 1  # ... and the last runs to Nyquist
        count = max(int(np.rint(quantile * (stop - first))), 1)
        sub_band = magnitude[first:stop if k == n_bands else stop - 1]
        if count == 1:  # most bands at this resolution: the extremes, without a sort
            valley[k], peak[k] = sub_band.min(axis=0), sub_band.max(axis=0)
        else:
            ranked = np.sort(sub_band, axis=0)
            valley[k] = ranked[:count].mean(axis=0)
            peak[k] = ranked[-count:].mean(axis=0)
    return power_to_db(peak, edges) - power_to_db(valley, edges)


_DELTA_WIDTH = 9  # librosa.feature.delta's default window (frames)


@functools.lru_cache(maxsize=4)
def _delta_edges(order: int) -> np.ndarray:
    """The linear map from a clip's first (or last) 9 frames to its first (or last) 4 deltas
    under savgol "interp" (a polynomial fit over the edge window), as a 9 x 9 matrix."""
    from scipy.signal import savgol_filter

    width = _DELTA_WIDTH
    return savgol_filter(np.eye(width), width, order, deriv=order, axis=0, mode="interp")


def deltas(frames: np.ndarray, edges: np.ndarray, order: int) -> np.ndarray:
    """``librosa.feature.delta(clip, order=order)`` of each clip, frames stacked; clips of
    fewer than 9 frames (too short for its "interp" fit) use ``mode="nearest"``.

    One Savitzky-Golay pass over the stacked frames gives every clip's inner deltas; the 4
    frames at each end of a clip, which librosa fits from that clip's edge window alone, are
    then recomputed from their own clip.
    """
    import librosa
    from scipy.signal import savgol_filter

    w, half = _DELTA_WIDTH, _DELTA_WIDTH // 2
    mode = "interp" if frames.shape[1] >= w else "nearest"
    out = savgol_filter(frames, w, order, deriv=order, axis=1, mode=mode)
    starts, stops = edges[:-1], edges[1:]
    fit = stops - starts >= w
    if fit.any():
        edge_map = _delta_edges(order).astype(frames.dtype)
        window = np.arange(w)
        head = starts[fit][:, None] + window  # (clips, 9) frame indices
        tail = stops[fit][:, None] - w + window
        out[:, head[:, :half]] = np.einsum("rcj,ij->rci", frames[:, head], edge_map[:half])
        out[:, tail[:, -half:]] = np.einsum("rcj,ij->rci", frames[:, tail], edge_map[-half:])
    for a, b in zip(starts[~fit], stops[~fit]):
        out[:, a:b] = librosa.feature.delta(frames[:, a:b], order=order, width=w, mode="nearest")
    return out


def _column_sums(values: np.ndarray, ord) -> np.ndarray:
    """``librosa.util.normalize``'s divisor: each frame's norm, 1 where it is below the
    smallest normal float (a silent frame stays zero rather than dividing by zero)."""
    norms = values.sum(axis=0) if ord == 1 else values.max(axis=0)
    return np.where(norms < np.finfo(values.dtype).tiny, 1.0, norms).astype(values.dtype)


def centroid_and_bandwidth(magnitude: np.ndarray, *, sr: int, n_fft: int):
    """``librosa.feature.spectral_centroid`` and ``spectral_bandwidth`` (p=2) of the stacked
    frames, each (1, total_frames), from three shared moments (librosa normalises twice)."""

    freq = fft_frequencies(sr, n_fft)
    # The three moments sum(S), sum(f S), sum(f**2 S) of every frame in one matrix product,
    # in float64 so that the difference below loses nothing that float32 features would keep;
    # librosa's weights are S / sum(S), or S itself where a frame is silent (sum under the
    # smallest normal float32).
    total, first, second = np.stack([np.ones_like(freq), freq, freq**2]) @ magnitude.astype(
        np.float64)
    norm = np.where(total < np.finfo(magnitude.dtype).tiny, 1.0, total)
    centroid = first / norm
    # sum(w * (f - c)**2) = sum(w * f**2) - c**2 * sum(w): no (bins x frames) deviations
    spread = second / norm - centroid**2 * (total / norm)
    return centroid[None, :], np.sqrt(np.maximum(spread, 0.0))[None, :]


def rolloff(magnitude: np.ndarray, *, sr: int, n_fft: int, roll_percent: float = 0.85):
    """``librosa.feature.spectral_rolloff``: the first frequency whose cumulative energy
    reaches ``roll_percent`` of the frame's, shape (1, total_frames)."""

    freq = fft_frequencies(sr, n_fft)
    total = np.cumsum(magnitude, axis=0)
    return freq[np.argmax(total >= roll_percent * total[-1], axis=0)][None, :]


@functools.lru_cache(maxsize=16)
def _chroma_filterbank(sr: int, n_fft: int) -> np.ndarray:
    import librosa

    return librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0, n_chroma=12)


def rms(power: np.ndarray, *, n_fft: int) -> np.ndarray:
    """``librosa.feature.rms(S=magnitude, frame_length=n_fft)`` from the power spectrum:
    the DC bin (and Nyquist's for an even ``n_fft``) counted half, shape (1, total_frames)."""
    ends = 0.5 * (power[0] + power[-1]) if n_fft % 2 == 0 else 0.5 * power[0]
    return np.sqrt(2 * (power.sum(axis=0) - ends) / n_fft**2)[None, :]


def flatness(power: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """``librosa.feature.spectral_flatness(S=magnitude)`` (power 2) from the power spectrum:
    geometric over arithmetic mean of each frame, shape (1, total_frames)."""
    floored = np.maximum(amin, power)
    return (np.exp(np.log(floored).mean(axis=0)) / floored.mean(axis=0))[None, :]


def chroma(power: np.ndarray, *, sr: int, n_fft: int) -> np.ndarray:
    """``librosa.feature.chroma_stft(S=power, tuning=0)``: 12 pitch classes per frame, each
    frame scaled to a maximum of 1, shape (12, total_frames)."""
    raw = _chroma_filterbank(sr, n_fft) @ power
    return raw / _column_sums(np.abs(raw), np.inf)
