"""Hostile videos: frames that would decode to gigabytes are refused before they are allocated,
whatever the container's header says, and frames are shrunk as each is read.

Every file is a MOV of PNG-coded frames, muxed packet by packet with PyAV: a 12000x12000 grey
PNG of zeros is 140 KB and decodes to 144 MB (432 MB in RGB), so a file of eight is a bomb of
about 1 MB. Memory is measured in a child process (its peak resident size, ``ru_maxrss``), under
an address-space limit so that a regression fails instead of exhausting the machine.
"""

from __future__ import annotations

import fractions
import json
import os
import resource
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

av = pytest.importorskip("av")

from mmfeat.errors import ExtractionError  # noqa: E402
from mmfeat.image import ColorHistogram  # noqa: E402
from mmfeat.video import MotionStats, VideoAudio, VideoFrames  # noqa: E402

BOMB = 12_000          # 144 M pixels: over the default max_pixels (89.5 M)
LARGE = 4_000          # 16 M pixels (48 MB in RGB): under it, but heavy to keep 16 of
ADDRESS_LIMIT = 3 << 30  # the child's address space: a regression fails, the machine lives


def grey_png(width: int, height: int, level: int = 0) -> bytes:
    """A grey PNG of one level, compressed row by row (never the whole image in memory)."""
    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    packer, row = zlib.compressobj(9), b"\x00" + bytes([level]) * width
    body = b"".join([packer.compress(row * 64) for _ in range(height // 64)]
                    + [packer.compress(row * (height % 64)), packer.flush()])
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))


def png_mov(path, frames, header) -> str:
    """A MOV whose video stream holds ``frames`` (PNG bytes) as they are, its header saying
    ``header`` (width, height) whatever the frames are."""
    with av.open(str(path), "w", format="mov") as container:
        stream = container.add_stream("png", rate=10)
        stream.width, stream.height = header
        stream.pix_fmt = "gray"
        stream.codec_context.open()  # so that the header is written from these fields
        for i, data in enumerate(frames):
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts = stream, i, i
            packet.time_base, packet.is_keyframe = fractions.Fraction(1, 10), True
            container.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile_video")
    bomb, small = grey_png(BOMB, BOMB), grey_png(64, 64, 100)
    large = [grey_png(LARGE, LARGE, 16 * k) for k in range(4)]  # four levels: something moves
    return {
        "honest": png_mov(d / "honest.mov", [bomb] * 8, (BOMB, BOMB)),
        "lying": png_mov(d / "lying.mov", [bomb] * 8, (64, 64)),            # the header lies
        "growing": png_mov(d / "growing.mov", [small] * 4 + [bomb] * 4, (64, 64)),  # size changes
        "large": png_mov(d / "large.mov", large * 8, (LARGE, LARGE)),       # 32 legitimate frames
        "small": png_mov(d / "small.mov", [small] * 4, (64, 64)),
    }


# Peak resident memory in a child under an address-space limit: for each case in turn, what
# the peak (``ru_maxrss``, which never goes down) has grown since the baseline, an upper bound
# of what that case added. One child for many cases: the imports are paid once.
PEAK_SCRIPT = """
import json, resource, sys, warnings
from mmfeat.image import ColorHistogram
from mmfeat.video import MotionStats, VideoFrames

make = {
    "frames": lambda: VideoFrames(ColorHistogram(), cache=False, on_error="nan"),  # n_frames=8
    "frames1": lambda: VideoFrames(ColorHistogram(), n_frames=1, cache=False, on_error="nan"),
    "motion": lambda: MotionStats(n_pairs=8, cache=False, on_error="nan"),
}
small, cases = sys.argv[1], json.loads(sys.argv[2])
warnings.simplefilter("ignore")
for kind in make:
    make[kind]().fit([]).transform([small])  # libraries loaded, first allocations made
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for kind, path in cases:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = make[kind]().fit([]).transform([path])
    failed = [str(w.message) for w in caught if "rows failed" in str(w.message)]
    added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024
    outcome = "nan" if out[0, 0] != out[0, 0] else "ok"
    print(json.dumps([added, outcome, failed[0] if failed else ""]))
"""


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


def peaks(cases, small: str) -> dict:
    """{(kind, path): (MB the peak grew by, "ok" or "nan", the failure's message)}, one child."""
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, small, json.dumps(cases)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": path}, preexec_fn=_limit_address_space)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    return {tuple(case): tuple(json.loads(line)) for case, line in zip(cases, lines)}


BOMBS = ["honest", "lying", "growing"]
KINDS = ["frames", "frames1", "motion"]


@pytest.fixture(scope="module")
def bomb_peaks(hostile):
    return peaks([(kind, hostile[name]) for name in BOMBS for kind in KINDS], hostile["small"])


@pytest.mark.slow
@pytest.mark.parametrize("name", BOMBS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_frame_bomb_is_refused_before_it_is_allocated(hostile, bomb_peaks, name, kind):
    added, outcome, message = bomb_peaks[kind, hostile[name]]
    assert outcome == "nan"
    assert f"video frames of {BOMB}x{BOMB} pixels exceed max_pixels=89478485" in message, message
    # 1,650 MB for one frame before the decoder was bounded
    assert added < 100, f"{kind} on the {name} bomb: the peak grew by {added:.0f} MB"


@pytest.mark.slow
def test_frames_are_shrunk_as_each_is_read(hostile):
    """8 frames, then 8 frame pairs, of 16 M pixels (48 MB each in RGB): at most a frame or two
    at full size at a time, not all of them."""
    cases = [("frames", hostile["large"]), ("motion", hostile["large"])]
    for (kind, _), (added, outcome, message) in zip(cases, peaks(cases, hostile["small"]).values()):
        assert outcome == "ok", message
        assert added < 250, f"{kind} on 4000x4000 frames: the peak grew by {added:.0f} MB"


def test_the_bound_is_the_extractors_parameter(hostile):
    path = hostile["small"]
    with pytest.raises(ExtractionError, match=r"frames of 64x64 pixels exceed max_pixels=1000"):
        VideoFrames(ColorHistogram(), max_pixels=1000, cache=False).fit([]).transform([path])
    with pytest.raises(ExtractionError, match=r"exceed max_pixels=1000"):
        MotionStats(max_pixels=1000, cache=False).fit([]).transform([hostile["small"]])
    unbounded = VideoFrames(ColorHistogram(), n_frames=2, max_pixels=None, cache=False)
    out = unbounded.fit([]).transform([path])
    assert out.shape == (1, 2 * 512)


# ---------------------------------------------------------------------- only local media files


PLAYLISTS = {
    # a live HLS playlist (no end tag): FFmpeg would reload it, waiting for segments forever
    "live.m3u8": "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
                 "#EXTINF:1.0,\nsegment.mov\n",
    "loop.ffconcat": "ffconcat version 1.0\nfile loop.ffconcat\n",  # a concat list of itself
    "stream.mpd": '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>\n',
    "session.sdp": "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
                   "m=video 5004 RTP/AVP 96\n",
}

PLAYLIST_SCRIPT = """
import json, sys, warnings
from mmfeat.image import ColorHistogram
from mmfeat.video import MotionStats, VideoAudio, VideoFrames

warnings.simplefilter("ignore")
out = {}
for path in sys.argv[1:]:
    for make in (lambda: VideoFrames(ColorHistogram()), MotionStats, VideoAudio):
        ext = make().set_params(cache=False)
        try:
            ext.fit([]).transform([path])
            out[f"{path} {type(ext).__name__}"] = "decoded"
        except Exception as exc:
            out[f"{path} {type(ext).__name__}"] = str(exc)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_playlists_and_lists_of_files_are_refused_at_once(tmp_path, hostile):
    """Run in a child with a time limit: a live playlist once cost 125 s a row."""
    (tmp_path / "segment.mov").write_bytes(open(hostile["small"], "rb").read())
    paths = []
    for name, text in PLAYLISTS.items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", PLAYLIST_SCRIPT, *paths], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": path})
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.splitlines()[-1])
    assert len(results) == 3 * len(PLAYLISTS)
    for row, cause in results.items():
        assert "not a media file: a video row is a local video file" in cause, (row, cause)


def test_a_name_is_never_read_as_another_protocol(tmp_path, hostile, monkeypatch):
    """A file named ``concat:other.mov`` is that file, not FFmpeg's concat protocol reading
    ``other.mov`` (which is not the file that was hashed for the cache key)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other.mov").write_bytes(open(hostile["large"], "rb").read())
    (tmp_path / "concat:other.mov").write_bytes(open(hostile["small"], "rb").read())
    frames = VideoFrames(ColorHistogram(), n_frames=2, cache=False).fit([])
    named, small = frames.transform(["concat:other.mov", hostile["small"]])
    np.testing.assert_array_equal(named, small)


def test_a_row_has_a_time_budget(hostile):
    for ext in (VideoFrames(ColorHistogram(), timeout=1e-9), MotionStats(timeout=1e-9),
                VideoAudio(timeout=1e-9)):
        with pytest.raises(ExtractionError, match=r"took more than timeout=1e-09 s to open and"):
            ext.set_params(cache=False).fit([]).transform([hostile["small"]])


def test_a_frame_count_past_the_files_size_is_not_believed(tmp_path):
    """An AVI of 50 frames whose header (and so duration) claims 2^31-1."""
    import cv2

    path = tmp_path / "fifty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for i in range(50):
        writer.write(np.full((64, 64, 3), 5 * i, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    for chunk, at in ((b"avih", 16), (b"strh", 32)):  # dwTotalFrames, dwLength
        struct.pack_into("<I", data, data.find(chunk) + 8 + at, 2**31 - 1)
    (tmp_path / "liar.avi").write_bytes(bytes(data))
    frames = VideoFrames(ColorHistogram(bins=(1, 1, 4)), n_frames=4, cache=False).fit([])
    honest, liar = frames.transform([str(path), str(tmp_path / "liar.avi")])
    np.testing.assert_array_equal(honest, liar)
