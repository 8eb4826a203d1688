"""int8 against float32 CNN features on real images: the check behind CNNEmbedder's precision.

int8 would be the default only if every task stayed within 0.5 points of float32 and the
ImageNet top-1 class of real photos agreed. The images are real and built offline:

- scikit-learn's 1,797 handwritten digits (8x8, upscaled to 64x64, dark on light) -> digit
  (stratified 5-fold, seed 0);
- 600 Noto colour emoji glyphs (one per base emoji, drawn with seed 0 by ``real_data.py``) ->
  Unicode emoji group (9 classes; GroupKFold by base emoji);

each by StandardScaler + LogisticRegression(C=0.1) on the 1280 pooled features; then the
top-1 ImageNet class (the model's own classifier on the pooled features) of 200 random crops
of scikit-learn's two sample photos (seed 1; the graph was calibrated on other crops, seed 0),
and the speed of both against the raw torch loop of bench_image.py, side by side in one run.

    .venv/bin/python benchmarks/bench_image_int8.py
"""

from __future__ import annotations

import time

import numpy as np
from _quality import print_quality_table

TOLERANCE = 0.5  # points


def accuracy(X, y, groups=None) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    cv = GroupKFold(5) if groups is not None else StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(model, X, y, cv=cv, groups=groups).mean())


def photo_crops(n: int, seed: int) -> list:
    from sklearn.datasets import load_sample_images

    photos, rng, out = load_sample_images().images, np.random.default_rng(seed), []
    for i in range(n):
        photo = photos[i % 2]
        h, w = photo.shape[:2]
        side = int(rng.uniform(0.3, 1.0) * min(h, w))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = photo[top:top + side, left:left + side]
        out.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    return out


def digit_images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [np.repeat(255 - np.kron(im, np.ones((8, 8)))[..., None] * (255 / 16), 3, axis=2)
              for im in digits.images]
    return [np.clip(im, 0, 255).astype(np.uint8) for im in images], digits.target


def emoji_images():
    from PIL import Image, ImageDraw, ImageFont
    from real_data import EMOJI_FONT, _emoji_sample

    sample = _emoji_sample(max_per_base=1, n_bases=600)
    font = ImageFont.truetype(str(EMOJI_FONT), 109)  # the font's one bitmap size
    images = []
    for char in sample["char"]:
        glyph = Image.new("RGBA", (136, 128), (255, 255, 255, 0))
        ImageDraw.Draw(glyph).text((0, 0), char, font=font, embedded_color=True)
        canvas = Image.new("RGB", glyph.size, (255, 255, 255))
        canvas.paste(glyph, mask=glyph.getchannel("A"))
        images.append(np.asarray(canvas))
    return images, sample["label"].to_numpy(), sample["group"].to_numpy()


def main():
    from bench_image import raw_cnn_model

    from mmfeat.image import CNNEmbedder

    digits, digit_labels = digit_images()
    emoji, emoji_labels, emoji_groups = emoji_images()
    photos = photo_crops(200, seed=1)
    embedders = {p: CNNEmbedder(precision=p, backend="onnx", device="cpu", cache=False).fit([])
                 for p in ("float32", "int8")}
    net = raw_cnn_model()
    weight, bias = net._fc.weight.detach().numpy(), net._fc.bias.detach().numpy()
    results, features = {}, {}
    for precision, embedder in embedders.items():
        d, e, p = (embedder.transform(images) for images in (digits, emoji, photos))
        features[precision] = (d, e, p)
        results[precision] = {
            "digits -> digit, accuracy": accuracy(d, digit_labels),
            "emoji glyph -> group, accuracy": accuracy(e, emoji_labels, emoji_groups),
        }
    top1 = {p: (features[p][2] @ weight.T + bias).argmax(1) for p in features}
    agreement = float((top1["int8"] == top1["float32"]).mean())
    cosines = np.concatenate([(a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
                              for a, b in zip(features["float32"], features["int8"])])

    import torch

    from mmfeat.image.cnn import center_crop_resize

    batch = photos[:64]

    def raw():
        with torch.inference_mode():
            for start in range(0, len(batch), 32):
                x = np.stack([center_crop_resize(im, 224) for im in batch[start:start + 32]])
                x = torch.from_numpy(x).permute(0, 3, 1, 2)
                net.extract_features(x.contiguous(memory_format=torch.channels_last)).mean((2, 3))

    runs = {"raw torch loop": raw,
            **{p: (lambda e=e: e.transform(batch)) for p, e in embedders.items()}}
    speed = {}
    for _ in range(2):  # alternated, best of two
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            speed[name] = max(speed.get(name, 0), len(batch) / (time.perf_counter() - start))

    print(f"\nEfficientNet-Lite0, float32 vs int8 (ONNX Runtime, CPU, static QDQ); digits: "
          f"{len(digits)}, emoji: {len(emoji)}, photo crops: {len(photos)}\n")
    worst = print_quality_table(results)
    print(f"| ImageNet top-1 agreement on {len(photos)} photo crops | 1 | {agreement:.4f} | |")
    print(f"\nimages/s on 64 photo crops: raw torch loop {speed['raw torch loop']:.1f}, float32 "
          f"{speed['float32']:.1f} ({speed['float32'] / speed['raw torch loop']:.2f}x raw), int8 "
          f"{speed['int8']:.1f} ({speed['int8'] / speed['raw torch loop']:.2f}x raw, "
          f"{speed['int8'] / speed['float32']:.2f}x float32)")
    print(f"cosine of int8 to float32 features over {cosines.size} images: median "
          f"{np.median(cosines):.4f}, minimum {cosines.min():.4f}")
    within = worst >= -TOLERANCE and agreement == 1.0
    print(f"largest loss {-worst:.2f} points, top-1 agreement {agreement:.3f}: "
          f"{'meets' if within else 'does NOT meet'} the rule for a default")


if __name__ == "__main__":
    main()
