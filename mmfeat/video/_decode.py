"""Reading videos: frames through OpenCV's bundled FFmpeg, the sound track through PyAV.

Every function raises :class:`~mmfeat.errors.ItemError` with a short cause for a file that
cannot be used, and warns with :class:`PartialDecodeWarning` when only some of the frames (or
only part of the sound) could be decoded and features come from what was.
"""

from __future__ import annotations

import math
import os
import struct
import warnings

import numpy as np

from ..errors import ItemError
from ..io import _open_regular, file_error

#: Forward gaps up to this many frames are skipped by grabbing (no colour conversion) rather
#: than seeking: a seek decodes from the previous keyframe, which can be further back.
_SEEK_GAP = 32

#: Signatures of still-image files, which FFmpeg would otherwise open as a one-frame "video".
_STILL_IMAGES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


class PartialDecodeWarning(UserWarning):
    """Some frames (or part of the sound track) of a video could not be decoded; its features
    come from the rest."""


def check_video_path(item) -> str:
    """The path of a video file that exists, is not empty and is not a still image.

    Raises
    ------
    ItemError
        Not a path, missing, empty, not a regular file, or a still image.
    """
    if isinstance(item, (bytes, bytearray, memoryview)):
        raise ItemError("video bytes are not read: write them to a file and pass its path")
    if isinstance(item, np.ndarray):
        raise ItemError(f"an array of shape {item.shape} is not a video: pass the path of a video file")
    if not isinstance(item, (str, os.PathLike)):
        raise ItemError(f"cannot read a video from {type(item).__name__}; expected a path")
    path = os.fspath(item)
    fd, _ = _open_regular(path)  # a regular, non-empty file, or the row's error
    try:
        with os.fdopen(fd, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise file_error(exc) from None
    for signature, kind in _STILL_IMAGES.items():
        if head.startswith(signature):
            raise ItemError(f"a still image ({kind}), not a video")
    return path


def _mp4_problem(path: str):
    """Why an MP4/MOV file is unusable, read from its top-level boxes; None if they look whole.

    A file cut short (a download or copy interrupted, a recording still being written) has no
    ``moov`` index, or a box that runs past the end: FFmpeg only says "invalid data".
    """
    size = os.path.getsize(path)
    found, at = set(), 0
    with open(path, "rb") as f:
        while at + 8 <= size:
            f.seek(at)
            length, kind = struct.unpack(">I4s", f.read(8))
            if length == 1:
                length = struct.unpack(">Q", f.read(8))[0]
            elif length == 0:
                length = size - at
            if length < 8:
                return "corrupt MP4/MOV file (a box of fewer than 8 bytes)"
            if at + length > size:
                if kind == b"mdat" and b"moov" in found:
                    return None  # the index survived: FFmpeg decodes the frames that are there
                return f"truncated MP4/MOV file (its '{kind.decode('latin-1')}' box runs past the end of the file)"
            found.add(kind)
            at += length
    if b"ftyp" in found and b"moov" not in found:
        return "incomplete MP4/MOV file (no 'moov' index: cut short, or still being written)"
    return None


def _why_unreadable(path: str) -> str:
    """The clearest cause we can give for a file OpenCV could not open as a video."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[4:8] == b"ftyp":
        problem = _mp4_problem(path)
        if problem:
            return problem
    try:
        import av
    except ImportError:
        return "not a readable video (corrupt, truncated, or not a format FFmpeg reads)"
    try:
        with av.open(path) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams})
                holds = f" (it holds only {', '.join(kinds)})" if kinds else ""
                return f"no video stream{holds}"
            codec = container.streams.video[0].codec_context.name
            return f"a video stream that cannot be decoded here (codec {codec})"
    except (av.FFmpegError, OSError, ValueError) as exc:
        return f"not a readable video ({getattr(exc, 'strerror', None) or exc})"


class VideoReader:
    """Frames of one video file by index, read with OpenCV, seeking over long gaps.

    Parameters
    ----------
    path : str
    max_duration : float or None
        Only frames in the first ``max_duration`` seconds are used.
    max_frames : int or None
        Only the first ``max_frames`` frames are used.

    Attributes
    ----------
    seekable : bool
        False for a stream without a frame count (an index), which is read by grabbing only.
    fps : float
        Average frame rate from the container (25 when it gives none).
    n_frames : int
        Frames usable under the bounds: the container's count, or, when it has none, frames
        counted by grabbing up to the bounds.
    """

    def __init__(self, path: str, *, max_duration=None, max_frames=None):
        import cv2

        self.path = path
        self.cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            self.cap.release()
            raise ItemError(_why_unreadable(path))
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 10_000 else 25.0
        limit = math.inf
        if max_duration is not None:
            limit = max(1, math.ceil(max_duration * self.fps))
        if max_frames is not None:
            limit = min(limit, max_frames)
        count = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
        # A stream without an index (a raw H.264 file ...) has no usable count and does not
        # seek: its frames are counted by grabbing (no conversion) within the bounds, and then
        # read from a fresh start by grabbing only.
        self.seekable = math.isfinite(count) and count >= 1
        if self.seekable:
            self.n_frames = int(min(count, limit))
        else:
            n = 0
            while n < limit and self.cap.grab():
                n += 1
            self.n_frames = n
            self.cap.release()
            self.cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        self._next = 0  # index of the frame the next read returns; None when unknown

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cap.release()

    def read(self, indices) -> dict:
        """RGB ``uint8`` frames by index, for the indices that decode.

        Short forward gaps are grabbed through, longer ones and backward steps are sought.
        A frame that does not decode is left out (a corrupt frame, or a file that ends before
        its header says it does), and reading goes on with the next index.
        """
        import cv2

        frames = {}
        for index in sorted(set(int(i) for i in indices)):
            if self._next is None and not self.seekable:
                break  # a frame failed in a stream that cannot seek: the rest is out of reach
            if self._next is None or (self.seekable and index - self._next > _SEEK_GAP):
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                self._next = index
            while self._next < index and self.cap.grab():
                self._next += 1
            ok, frame = self.cap.read() if self._next == index else (False, None)
            if not ok or frame is None:
                self._next = None
                continue
            self._next = index + 1
            frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        return frames


def sample_indices(n_frames: int, fps: float, n: int, sampling) -> list[int]:
    """Indices of the frames to use: ``n`` spread evenly (the middle of ``n`` equal segments,
    never the first or last frame, often a fade), or one every ``sampling`` seconds, at most ``n``."""
    if n_frames <= 0:
        return []
    if sampling == "uniform":
        if n_frames <= n:
            return list(range(n_frames))
        return sorted({int((k + 0.5) * n_frames / n) for k in range(n)})
    step = sampling * fps
    return sorted({int(round(k * step)) for k in range(n) if round(k * step) < n_frames})


def no_frames_error(n_frames: int) -> ItemError:
    """The error of a video none of whose sampled frames decoded."""
    if n_frames == 0:
        return ItemError("no decodable frames (the video stream holds none)")
    return ItemError(f"no decodable frames (of the {n_frames} its header lists: corrupt, or cut short)")


def warn_partial(path: str, got: int, wanted: int, what: str = "frames") -> None:
    if got < wanted:
        warnings.warn(
            f"{path}: {got} of {wanted} {what} decoded (corrupt frames, or the file ends early); "
            "features come from those",
            PartialDecodeWarning,
            stacklevel=2,
        )


def read_sound(path: str, *, sr: int, max_duration=None) -> np.ndarray:
    """The first sound track of a video, mixed to mono float32 at ``sr`` Hz, through PyAV.

    At most ``max_duration`` seconds are decoded. A file without a sound track raises
    ``ItemError("no sound track")``: for this modality it is a missing value.
    """
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, ValueError) as exc:
        with open(path, "rb") as f:
            head = f.read(12)
        problem = _mp4_problem(path) if head[4:8] == b"ftyp" else None
        raise ItemError(problem or f"not a readable video ({getattr(exc, 'strerror', None) or exc})") from None
    with container:
        if not container.streams.audio:
            raise ItemError("no sound track")
        stream = container.streams.audio[0]
        limit = math.inf if max_duration is None else int(math.ceil(max_duration * sr))
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks, total, broken = [], 0, None
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if total >= limit:
                    break
            else:
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        except (av.FFmpegError, OSError, ValueError) as exc:  # corrupt or cut short: keep what decoded
            broken = getattr(exc, "strerror", None) or str(exc)
    wave = np.concatenate(chunks)[: None if limit == math.inf else limit] if chunks else np.zeros(0, np.float32)
    if broken is not None:
        if wave.size == 0:
            raise ItemError(f"sound track does not decode ({broken})")
        warnings.warn(f"{path}: sound track decoded only for its first {wave.size / sr:.2f} s "
                      f"({broken}); features come from that", PartialDecodeWarning, stacklevel=2)
    return np.ascontiguousarray(wave, dtype=np.float32)
