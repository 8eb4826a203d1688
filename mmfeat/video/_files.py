"""What a video row may be: a local media file, checked before anything decodes it, and
opened by PyAV so that FFmpeg reads that one file and nothing else (no other protocol, no
playlist, no network).

Every function raises :class:`~mmfeat.errors.ItemError` with a short cause for a file that
cannot be used.
"""

from __future__ import annotations

import os
import struct
import time

import numpy as np

from ..errors import ItemError
from ..io import DEFAULT_MAX_PIXELS, _open_regular, file_error
from ..optional import import_optional

#: Signatures of still-image files, which FFmpeg would otherwise open as a one-frame "video".
_STILL_IMAGES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


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
        raise ItemError(f"an array of shape {item.shape} is not a video: pass the path of a "
                        "video file")
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
    for signature, kind in _PLAYLISTS.items():
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(signature):
            raise ItemError(f"{kind}, not a media file: a video row is a local video file, "
                            "never a list of other files or URLs")
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
                return (f"truncated MP4/MOV file (its '{kind.decode('latin-1')}' box runs past "
                        "the end of the file)")
            found.add(kind)
            at += length
    if b"ftyp" in found and b"moov" not in found:
        return "incomplete MP4/MOV file (no 'moov' index: cut short, or still being written)"
    return None


#: The containers a video row may be in: media formats FFmpeg reads from the one local file it
#: is given. Playlists (HLS, DASH), concat lists, image sequences, SDP/RTSP sessions and devices
#: are not on it: opening those opens other files or URLs, or waits on a network.
_FORMATS = ",".join([
    "mov", "matroska", "avi", "flv", "mpegts", "mpeg", "mpegvideo", "asf", "ogg", "ivf", "nut",
    "h264", "hevc", "m4v", "mjpeg", "gif", "yuv4mpegpipe", "dv", "obu", "mxf",
    "wav", "w64", "aiff", "caf", "mp3", "flac", "aac",  # sound-only files: VideoAudio reads them
])

#: Signatures of files that name other media rather than hold it.
_PLAYLISTS = {
    b"#EXTM3U": "an HLS playlist (.m3u8)",
    b"ffconcat": "an FFmpeg concat list",
    b"<?xml": "an XML file (a DASH manifest?)",
    b"<MPD": "a DASH manifest",
    b"v=0": "an SDP session description",
}


def _options(max_pixels) -> dict:
    """What every open passes to FFmpeg: the local-file protocol and the formats above only,
    and, for the frames ``avformat_find_stream_info`` decodes to probe a stream, the pixel bound."""
    options = {"protocol_whitelist": "file", "format_whitelist": _FORMATS}
    if max_pixels is not None:
        options["max_pixels"] = str(int(max_pixels))
    return options


def _ffmpeg_cause(exc) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def too_slow(timeout) -> ItemError:
    return ItemError(f"took more than timeout={timeout} s to open and decode (a stream that does "
                     "not end, or far too slow to decode)")


def open_media(path: str, *, max_pixels=DEFAULT_MAX_PIXELS, deadline=None):
    """Open a local media file with PyAV under :func:`_options`; the row's error if it cannot be."""
    av = import_optional("av", who="reading videos", extra="video")
    left = None
    if deadline is not None and deadline.timeout is not None:
        left = max(0.001, deadline.at - time.monotonic())
    try:
        # "file:" so that FFmpeg never reads a name as another protocol ("concat:a|b", "pipe:0")
        return av.open("file:" + os.path.abspath(path), options=_options(max_pixels), timeout=left)
    except av.ExitError:  # the interrupt callback: the open ran past the deadline
        raise too_slow(deadline.timeout) from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        with open(path, "rb") as f:
            head = f.read(12)
        problem = _mp4_problem(path) if head[4:8] == b"ftyp" else None
        raise ItemError(problem or f"not a readable video ({_ffmpeg_cause(exc)})") from None
