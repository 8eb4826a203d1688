"""Decoding videos with PyAV: frames by index (exact, or the keyframes before them), and the
sound track. The file itself is checked and opened by ``_files.py``.

Every function raises :class:`~mmfeat.errors.ItemError` with a short cause for a file that
cannot be used, and warns with :class:`PartialDecodeWarning` when only some of the frames (or
only part of the sound) could be decoded and features come from what was.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings

import numpy as np

from ..errors import ItemError, PartialDecodeWarning
from ..io import DEFAULT_MAX_PIXELS
from ._files import open_media, too_slow

#: Forward gaps up to this many frames (at most the spacing of the stream's keyframes) are
#: decoded through rather than sought: a seek decodes from the keyframe before the frame asked
#: for, so it pays off once the gap spans a keyframe.
_SEEK_GAP = 32

class Deadline:
    """The time a row may take to open and decode (``timeout`` seconds; None: no bound)."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.at = math.inf if timeout is None else time.monotonic() + timeout

    def check(self):
        if time.monotonic() > self.at:
            raise too_slow(self.timeout)


_REFORMATTERS = threading.local()


def _rgb(frame) -> np.ndarray:
    """A decoded frame as an RGB ``uint8`` array (``frame.to_ndarray(format="rgb24")``), through
    one reformatter per thread: a frame's own would build a new swscale context for every frame
    sampled, which at 480p costs four times the conversion itself."""
    reformatter = getattr(_REFORMATTERS, "reformatter", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = _REFORMATTERS.reformatter = VideoReformatter()
    return reformatter.reformat(frame, format="rgb24").to_ndarray()


def _too_large(width: int, height: int, max_pixels) -> ItemError:
    return ItemError(f"video frames of {width}x{height} pixels exceed max_pixels={max_pixels} "
                     "(possible decompression bomb)")


class VideoReader:
    """Frames of one video file by index, decoded with PyAV, seeking over long gaps.

    No frame larger than ``max_pixels`` is ever allocated: a stream whose header gives larger
    frames is refused before anything is decoded, and the decoder itself is bounded (FFmpeg's
    ``max_pixels``), since a header can lie and a stream can change size midway.

    Parameters
    ----------
    path : str
    max_duration : float or None
        Only frames in the first ``max_duration`` seconds are used.
    max_frames : int or None
        Only the first ``max_frames`` frames are used.
    max_pixels : int or None
        Frames with more pixels than this are refused (the row's error).
    timeout : float or None
        Seconds the file may take to open and decode, from the start (the row's error after).

    Attributes
    ----------
    seekable : bool
        False for a stream without a frame count (an index), which is read forward only.
    fps : float
        Frame rate from the container (25 when it gives none).
    n_frames : int
        Frames usable under the bounds: the container's count, or, when it has none, frames
        counted by decoding up to the bounds.
    """

    def __init__(self, path: str, *, max_duration=None, max_frames=None,
                 max_pixels=DEFAULT_MAX_PIXELS, timeout=None):
        self.path, self.max_pixels = path, max_pixels
        self._key_gap = None   # the longest distance between keyframes decoded one after another
        self._last_key = None  # index of the last keyframe decoded (None after a seek)
        self._sought = None    # (position before, index) of the last seek, until it lands
        self.deadline = Deadline(timeout)
        self.container = open_media(path, max_pixels=max_pixels, deadline=self.deadline)
        try:
            self._start(max_duration, max_frames)
        except BaseException:
            self.container.close()
            raise

    def _start(self, max_duration, max_frames):
        self.deadline.check()
        container = self.container
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            holds = f" (it holds only {', '.join(kinds)})" if kinds else ""
            raise ItemError(f"no video stream{holds}")
        self.stream = stream = container.streams.video[0]
        context = stream.codec_context
        if context is None:
            codec = stream.codec_tag or "unknown"
            raise ItemError(f"a video stream that cannot be decoded here (codec {codec})")
        self._check_size(context.width, context.height)  # the header: before the first decode
        if self.max_pixels is not None:
            context.options = {**context.options, "max_pixels": str(int(self.max_pixels))}
        rate = stream.guessed_rate or stream.average_rate
        fps = float(rate) if rate else 0.0
        self.fps = fps if math.isfinite(fps) and 0 < fps < 10_000 else 25.0
        self._time_base = float(stream.time_base) if stream.time_base else 1.0 / self.fps
        self._origin = stream.start_time or 0
        limit = math.inf
        if max_duration is not None:
            limit = max(1, math.ceil(max_duration * self.fps))
        if max_frames is not None:
            limit = min(limit, max_frames)
        if container.duration:
            seconds = container.duration / 1_000_000
        else:
            seconds = (stream.duration or 0) * self._time_base
        # as OpenCV counts: the header's count, else from the duration
        count = stream.frames or math.floor(seconds * self.fps + 0.5)
        # More frames than the file has bytes is a lie (an AVI claiming 2^31-1 frames, and as
        # long a duration): such a stream's frames are counted by decoding, as without a count.
        if count > os.path.getsize(self.path):
            count = 0
        # A stream without an index (a raw H.264 file ...) has no usable count and does not
        # seek: its frames are counted by decoding within the bounds, then read from a fresh start.
        self.seekable = count >= 1
        if self.seekable:
            self.n_frames = int(min(count, limit))
        else:
            n = 0
            for _ in self._decoded():
                n += 1
                if n >= limit:
                    break
            self.n_frames = n
            self.container.close()
            self.container = open_media(self.path, max_pixels=self.max_pixels,
                                        deadline=self.deadline)
            self.stream = self.container.streams.video[0]
            if self.max_pixels is not None:
                self.stream.codec_context.options = {"max_pixels": str(int(self.max_pixels))}
        self._frames = None    # the decoding generator: (index, frame) from the current position
        self._pending = None   # a frame decoded past the index asked for, kept for a later one
        self._next = 0         # index of the next frame the generator gives

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.container.close()

    def _check_size(self, width, height):
        if self.max_pixels is not None and (width or 0) * (height or 0) > self.max_pixels:
            raise _too_large(width, height, self.max_pixels)

    def _decoded(self):
        """(index, frame) of each frame from the current position to the end of the stream.

        A packet that does not decode (a corrupt frame) is skipped; a read error ends the stream
        (a file cut short): the frames before it are what there is. A frame the decoder refused
        for its size is the row's error.
        """
        import av

        packets = self.container.demux(self.stream)
        count = None
        while True:
            self.deadline.check()
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.FFmpegError, OSError):
                return
            try:
                frames = packet.decode()
            except av.ArgumentError:
                # FFmpeg's max_pixels refusal is EINVAL (corrupt data is AVERROR_INVALIDDATA)
                refusal = self._refusal(packet) if self.max_pixels is not None else None
                if refusal is not None:
                    raise refusal from None
                continue
            except av.FFmpegError:
                continue
            for frame in frames:
                self._check_size(frame.width, frame.height)
                if frame.pts is not None:
                    count = round((frame.pts - self._origin) * self._time_base * self.fps)
                else:
                    count = 0 if count is None else count + 1
                if frame.key_frame:
                    if self._last_key is not None and count > self._last_key:
                        self._key_gap = max(self._key_gap or 0, count - self._last_key)
                    self._last_key = count
                if self._sought is not None:
                    # A seek that lands before where decoding was (no keyframe in between)
                    # shows the keyframes are further apart than that gap: later ones of its
                    # size are decoded through.
                    before, index = self._sought
                    if count < before:
                        self._key_gap = max(self._key_gap or 0, index - count + 1)
                    self._sought = None
                yield count, frame

    def _refusal(self, packet):
        """The error of a frame the decoder would not allocate (FFmpeg says only "invalid
        argument"), with its size when the packet is an image (PNG, JPEG ... frames) whose
        header gives it; None when that header shows a frame within the bound (a corrupt one)."""
        from ..io import image_size

        try:
            width, height = image_size(bytes(packet))
        except ItemError:
            return ItemError(f"a video frame exceeds max_pixels={self.max_pixels} "
                             "(possible decompression bomb)")
        if width * height <= self.max_pixels:
            return None
        return _too_large(width, height, self.max_pixels)

    def _seek(self, index: int):
        offset = self._origin + int(index / self.fps / self._time_base)
        try:
            self.container.seek(offset, stream=self.stream)
        except Exception:  # noqa: BLE001 - a container that cannot seek is read from where it is
            pass
        before = self._next if self._frames is not None else 0
        self._sought = (before, index) if index > before else None  # a forward one
        self._frames, self._pending, self._next = self._decoded(), None, index
        self._last_key = None  # the next keyframe decoded does not follow the last one

    def _seek_gap(self) -> int:
        """Forward gaps longer than this are sought: the keyframe spacing once seen (a seek
        then lands past where decoding is), at most :data:`_SEEK_GAP`; every gap until then (a
        seek lands no earlier than decoding from where it is would start, and one that lands
        before where decoding was shows the spacing)."""
        return min(self._key_gap, _SEEK_GAP) if self._key_gap else 0

    def read(self, indices, convert=None) -> dict:
        """Frames by index, for the indices that decode: RGB ``uint8`` arrays, or what
        ``convert`` makes of each as soon as it is decoded (a frame shrunk as it is read never
        holds more than one full-size frame in memory).

        Forward gaps shorter than the keyframe spacing are decoded through, longer ones and
        backward steps are sought (FFmpeg lands on the keyframe before the index, and decoding
        runs forward from there to the exact frame). A
        frame that does not decode is left out (a corrupt frame, or a file that ends before its
        header says it does), and reading goes on with the next index.
        """
        frames = {}
        for index in sorted(set(int(i) for i in indices)):
            if self._frames is None:
                if self.seekable and index > 0:
                    self._seek(index)
                else:
                    self._frames = self._decoded()
            elif self.seekable and (index < self._next or index - self._next > self._seek_gap()):
                self._seek(index)
            while True:
                item = self._pending or next(self._frames, None)
                self._pending = None
                if item is None:  # the end of the stream
                    self._next = math.inf
                    break
                at, frame = item
                if at < index:
                    self._next = at + 1
                    continue
                if at > index:  # this index did not decode; the frame may be a later one's
                    self._pending, self._next = item, at
                    break
                rgb = _rgb(frame)
                frames[index] = rgb if convert is None else convert(rgb)
                self._next = at + 1
                break
        return frames


    def read_keyframes(self, indices, convert=None) -> dict:
        """The keyframe at or before each index, decoding keyframes only (an approximation of
        :meth:`read`: a frame up to one keyframe interval earlier than the one asked for).

        Returns ``{keyframe index: frame}``, one entry per distinct keyframe, converted as by
        :meth:`read`. A seekable stream is sought once per index (FFmpeg lands on the keyframe
        before it); one without an index is read forward, its keyframes only.
        """
        self.stream.codec_context.skip_frame = "NONKEY"
        frames = {}
        if not self.seekable:
            last = None
            self._frames = self._decoded()
            for index in sorted(set(int(i) for i in indices)):
                while True:
                    item = self._pending or next(self._frames, None)
                    self._pending = None
                    if item is None or item[0] > index:
                        self._pending = item
                        break
                    last = item
                if last is not None and last[0] not in frames:
                    rgb = _rgb(last[1])
                    frames[last[0]] = rgb if convert is None else convert(rgb)
                if item is None:
                    break
            return frames
        for index in sorted(set(int(i) for i in indices)):
            self._seek(index)
            item = next(self._frames, None)
            if item is not None and item[0] not in frames:
                rgb = _rgb(item[1])
                frames[item[0]] = rgb if convert is None else convert(rgb)
        return frames


def sample_indices(n_frames: int, fps: float, n: int, sampling) -> list[int]:
    """Indices of the frames to use: ``n`` spread evenly (the middle of ``n`` equal segments,
    never the first or last frame, often a fade), or one every ``sampling`` seconds, at most
    ``n``."""
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
    return ItemError(f"no decodable frames (of the {n_frames} its header lists: corrupt, "
                     "or cut short)")


def warn_partial(path: str, got: int, wanted: int, what: str = "frames") -> None:
    if got < wanted:
        warnings.warn(
            f"{path}: {got} of {wanted} {what} decoded (corrupt frames, or the file ends early); "
            "features come from those",
            PartialDecodeWarning,
            stacklevel=2,
        )


def read_sound(path: str, *, sr: int, max_duration=None, timeout=None) -> np.ndarray:
    """The first sound track of a video, mixed to mono float32 at ``sr`` Hz, through PyAV.

    At most ``max_duration`` seconds are decoded. A file without a sound track raises
    ``ItemError("no sound track")``: for this modality it is a missing value.
    """
    import av

    deadline = Deadline(timeout)
    container = open_media(path, deadline=deadline)
    with container:
        deadline.check()
        if not container.streams.audio:
            raise ItemError("no sound track")
        stream = container.streams.audio[0]
        limit = math.inf if max_duration is None else int(math.ceil(max_duration * sr))
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks, total, broken = [], 0, None
        try:
            for frame in container.decode(stream):
                deadline.check()
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if total >= limit:
                    break
            else:
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        except (av.FFmpegError, OSError, ValueError) as exc:
            # corrupt or cut short: keep what decoded
            broken = getattr(exc, "strerror", None) or str(exc)
    wave = (np.concatenate(chunks)[: None if limit == math.inf else limit] if chunks
            else np.zeros(0, np.float32))
    if broken is not None:
        if wave.size == 0:
            raise ItemError(f"sound track does not decode ({broken})")
        warnings.warn(f"{path}: sound track decoded only for its first {wave.size / sr:.2f} s "
                      f"({broken}); features come from that", PartialDecodeWarning, stacklevel=2)
    return np.ascontiguousarray(wave, dtype=np.float32)
