"""Readers sa0 did not write open its exports (headless Chromium): the .glb in Babylon.js (npm
@babylonjs/core + loaders, KHR_gaussian_splatting), the .spz in Spark (npm @sparkjsdev/spark), each
seen from the subject's camera, against sa0's own render of that frame: PSNR >= 25 dB. The packages
come from npm into a cache at test time (sa0.export.peers); the test skips, saying why, where
Chromium or npm is missing."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def subject(tmp_path_factory, synthetic_dir):
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.data.shards import write_shards
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.export.package import load_package
    from sa0.head import load_head_model
    from sa0.refine.refine import RefineConfig
    from sa0.refine.subjects import driver_clip, run_subject

    root = tmp_path_factory.mktemp("peers")
    flame, layout = FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=128)
    head = load_head_model(flame, layout)
    write_shards(synthetic_clips(head, "mono", 1, 1, 6, 1, 256, DOMAINS["studio"], seed=5), root / "shards")
    row = run_subject("subj0000", [str(root / "shards")], root / "out", flame, layout,
                      RefineConfig(steps=300, eval_every=0, images=0))
    assert row.status == "done"
    package = load_package(root / "out" / "subj0000" / "avatar.npz")
    return package, head, driver_clip("subj0000", [str(root / "shards")]), root


def test_babylon_and_spark_draw_the_exports_like_sa0(subject, tmp_path):
    from sa0.export.peers import PeersUnavailable, compare_readers, npm_modules
    from tests.browser import chromium

    try:
        npm_modules()
    except PeersUnavailable as exc:
        pytest.skip(str(exc))
    package, head, clip, _ = subject
    frame = package.meta["reference_frame"]
    with chromium() as browser:
        results = compare_readers(package, head, clip, frame, browser, tmp_path)
    for reader in ("babylon", "spark"):
        print(f"{reader} vs sa0 at {clip.image_size[1]}x{clip.image_size[0]}: PSNR {results[reader]['psnr']:.1f} dB")
        image = results[reader]["image"]
        assert (image.min(-1) < 0.9).mean() > 0.1, f"{reader} drew no head"
        assert results[reader]["psnr"] >= 25.0, reader
