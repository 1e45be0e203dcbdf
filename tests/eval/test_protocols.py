"""Every evaluation protocol end to end on tiny synthetic data, through jobs/evaluate.py's library
call on a local Ray: results JSON, paper-layout table, best/worst grids, MLflow run (RANDOMLY
INITIALISED, untrained generator and flat-disc avatars: plumbing and protocol, not quality)."""

import json
from dataclasses import asdict

import pytest
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.shards import write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.eval.protocols import EvalConfig, EvalError, plan
from sa0.eval.run import run_evaluation
from sa0.head import load_head_model
from sa0.model import Generator, ModelConfig
from sa0.train.checkpoint import export_generator
from tests.ray_local import local_ray

pytestmark = [pytest.mark.ray, pytest.mark.slow]
TINY = ModelConfig(image_size=56, unet_channels=(8, 16), dpt_channels=8, out_channels=8, residual_hidden=8)


@pytest.fixture(scope="module")
def ray_session():
    with local_ray(num_cpus=2) as ray:
        yield ray


@pytest.fixture(scope="module")
def world(synthetic_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    flame, layout = FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32)
    head = load_head_model(flame, layout)
    mono = list(synthetic_clips(head, "mono", 2, 1, 8, 1, 64, DOMAINS["lowkey"], seed=8))
    write_shards(mono, root / "mono")
    write_shards(synthetic_clips(head, "multiview", 1, 1, 3, 3, 64, DOMAINS["lowkey"], seed=9), root / "multiview")
    torch.manual_seed(0)
    export_generator(root / "generator", Generator(TINY, head).state_dict(),
                     {"model": asdict(TINY), "layout": asdict(layout), "image_size": 64, "phase": 2, "step": 0})
    from sa0.export.package import save_package
    from sa0.refine.reference import neutral_init
    from sa0.refine.refine import _posed

    for clip in mono:
        (root / "avatars" / clip.meta.subject).mkdir(parents=True)
        local = neutral_init(head, _posed(head, clip)[0], clip, 0)
        save_package(root / "avatars" / clip.meta.subject / "avatar.npz", local, head.layout, clip.flame.shape[0],
                     {"subject": clip.meta.subject})
    return root, flame, layout, mono


def test_plans_follow_the_protocols(world):
    _, _, _, mono = world
    clip = mono[0]
    sources, targets = plan(clip, EvalConfig(protocol="ff_self", num_sources=2))
    assert sources == [(0, 0), (1, 0)] and targets == [(t, 0) for t in range(2, 8)]
    _, same = plan(clip, EvalConfig(protocol="ff_self", num_sources=1, targets_from=4))
    assert same == plan(clip, EvalConfig(protocol="ff_self", num_sources=4, targets_from=4))[1] == [(t, 0) for t in range(4, 8)]
    spread = [plan(clip, EvalConfig(protocol="ff_self", num_sources=k, sources="spread")) for k in (1, 2, 3, 4)]
    assert [s for s, _ in spread] == [[(0, 0)], [(0, 0), (7, 0)], [(0, 0), (4, 0), (7, 0)],
                                      [(0, 0), (2, 0), (5, 0), (7, 0)]]  # 8 timesteps: linspace(0, 7, K)
    assert all(t == [(1, 0), (3, 0), (6, 0)] for _, t in spread)  # what no K takes, the same for every K
    with pytest.raises(ValueError, match="sources must be 'first' or 'spread'"):
        EvalConfig(sources="random")
    sources, targets = plan(clip, EvalConfig(protocol="subject_mono", test_frames=3))
    assert targets == [(5, 0), (6, 0), (7, 0)] and all(t < 5 for t, _ in sources)
    _, targets = plan(clip, EvalConfig(protocol="subject_mono"))  # refine_batch's split: the last 20 %
    assert targets == [(6, 0), (7, 0)]
    with pytest.raises(EvalError, match="one camera"):
        plan(clip, EvalConfig(protocol="multiview_novel"))
    with pytest.raises(EvalError, match="leaves none to train on"):
        plan(clip, EvalConfig(protocol="subject_mono", test_frames=8))


def _check_outputs(out, columns):
    results = json.loads((out / "results.json").read_text())
    table = (out / "results.md").read_text()
    assert all(c in table for c in columns), table
    assert (out / "best.png").is_file() and (out / "worst.png").is_file()
    return results, table


@pytest.mark.parametrize("protocol, data, columns", [
    ("ff_self", "mono", ["PSNR↑", "SSIM↑", "LPIPS↓", "CSIM↑", "AED↓", "APD↓", "AKD↓"]),
    ("ff_cross", "mono", ["CSIM↑", "AED↓", "APD↓"]),
    ("multiview_novel", "multiview", ["PSNR↑", "SSIM↑", "LPIPS↓", "maxAR"]),
])
def test_random_init_generator_protocols_end_to_end(ray_session, world, tmp_path, protocol, data, columns):
    root, flame, layout, _ = world
    from sa0.experiments import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = EvalConfig(protocol=protocol, num_sources=2, lpips=False)
    run_evaluation(cfg, [root / data], tmp_path / "out", flame, layout, checkpoint=str(root / "generator"),
                   tracker=Tracker("ev", uri))
    results, table = _check_outputs(tmp_path / "out", columns)
    assert results["frames"] > 0 and results["background"] == "black" and not results["skipped_clips"]
    if "CSIM↑" in columns:  # no face model given: unavailable with the reason, the other metrics still there
        assert results["overall"]["csim"]["unavailable"].startswith("no ArcFace identity model given")
        assert "csim: unavailable" in table
    if protocol != "ff_cross":
        assert 0 < results["overall"]["psnr"] < 100 and 0 < results["overall"]["ssim"] <= 1
        assert results["overall"]["psnr_masked"] != results["overall"]["psnr"]
    else:
        assert "psnr" not in results["overall"]  # no ground truth in cross-reenactment
    import mlflow

    run = mlflow.MlflowClient(tracking_uri=uri).search_runs([mlflow.MlflowClient(tracking_uri=uri)
                                                             .get_experiment_by_name("ev").experiment_id])[0]
    assert run.data.params["eval.protocol"] == protocol


def test_refined_avatars_subject_mono_end_to_end(ray_session, world, tmp_path):
    root, flame, layout, mono = world
    cfg = EvalConfig(protocol="subject_mono", test_frames=2, lpips=False)
    summary = run_evaluation(cfg, [root / "mono"], tmp_path / "out", flame, layout, avatars=str(root / "avatars"))
    results, _ = _check_outputs(tmp_path / "out", ["MSE↓", "PSNR↑", "SSIM↑", "LPIPS↓", "maxAR", "#Gaussians"])
    assert results["frames"] == 2 * len(mono) and set(results["per_clip"]) == {c.meta.key for c in mono}
    assert results["overall"]["num_gaussians"] == summary["rows"][0]["num_gaussians"]
    assert all(r["timestep"] >= 6 for r in results["rows"])
    missing = run_evaluation(cfg, [root / "mono"], tmp_path / "out2", flame, layout, avatars=str(tmp_path))
    assert missing["frames"] == 0 and all("no refined avatar" in r for r in missing["skipped_clips"].values())


def test_feed_forward_protocols_refuse_avatars(world, tmp_path):
    root, flame, layout, _ = world
    with pytest.raises(ValueError, match="evaluates the feed-forward generator"):
        run_evaluation(EvalConfig(protocol="ff_self"), [root / "mono"], tmp_path, flame, layout, avatars=str(root))
    with pytest.raises(ValueError, match="exactly one of"):
        run_evaluation(EvalConfig(), [root / "mono"], tmp_path, flame, layout)


def test_one_avatar_file_is_scored_as_every_clips_prediction(ray_session, world, tmp_path):
    """A baseline (e.g. bm_generator's mean avatar): one avatar.npz for every clip, ff_self included;
    each clip's figures are those of that one avatar, so the subject's own avatar scores higher on
    its own clip than on the other subject's."""
    root, flame, layout, mono = world
    first = root / "avatars" / mono[0].meta.subject / "avatar.npz"
    cfg = EvalConfig(protocol="ff_self", targets_from=4, lpips=False)
    summary = run_evaluation(cfg, [root / "mono"], tmp_path / "one", flame, layout, avatars=str(first))
    per_clip = summary["per_clip"]
    assert summary["frames"] == 4 * len(mono) and set(per_clip) == {c.meta.key for c in mono}
    assert per_clip[mono[0].meta.key]["psnr"] > per_clip[mono[1].meta.key]["psnr"]
