"""Batched refinement: RowAdam against torch.optim.Adam, a batch of subjects against each alone,
a divergent subject leaving the batch alone, and checkpoint resume ending where a clean run ends."""

import dataclasses

import numpy as np
import pytest
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.head import load_head_model
from sa0.refine import RefineConfig, refine_subject
from sa0.refine.adam import RowAdam
from sa0.refine.batched import ATTRIBUTES, Observer, Subject, refine_subjects
from sa0.refine.subjects import slice_timesteps


def test_row_adam_matches_torch_adam_row_by_row_with_own_lrs_and_skipped_rows():
    """Three rows, each with its own learning-rate sequence; row 1's update is skipped for the
    first 4 steps (torch: grad None), so its step count and bias correction start later."""
    torch.manual_seed(0)
    start = torch.randn(3, 5, 2)
    batched = start.clone().requires_grad_(True)
    adam = RowAdam({"x": batched})
    rows = [start[i].clone().requires_grad_(True) for i in range(3)]
    singles = [torch.optim.Adam([r], lr=1.0, foreach=True) for r in rows]
    targets = torch.randn(12, 3, 5, 2)
    for step in range(12):
        lrs = torch.tensor([0.1 / (1 + step), 0.05, 0.02 * (step % 3 + 1)], dtype=torch.float64)
        update = torch.tensor([True, step >= 4, True])
        batched.grad = 2 * (batched.detach() - targets[step])
        adam.step({"x": lrs}, {"x": update})
        for i, (row, opt) in enumerate(zip(rows, singles)):
            row.grad = 2 * (row.detach() - targets[step, i]) if bool(update[i]) else None
            opt.param_groups[0]["lr"] = float(lrs[i])
            opt.step()
    for i in range(3):
        torch.testing.assert_close(batched.detach()[i], rows[i].detach(), rtol=1e-6, atol=1e-6)
    assert adam.count["x"].tolist() == [12, 8, 12]


@pytest.fixture(scope="module")
def three(synthetic_dir):
    """Three subjects, two at 32^2 and one at 40^2 (two render groups in the batch)."""
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=16))
    clips = list(synthetic_clips(head, "mono", 2, 1, 6, 1, 32, DOMAINS["studio"], seed=4))
    clips += list(synthetic_clips(head, "mono", 1, 1, 6, 1, 40, DOMAINS["studio"], seed=5))
    subjects = [Subject(f"s{i}", slice_timesteps(c, slice(0, 5)), slice_timesteps(c, slice(5, 6)))
                for i, c in enumerate(clips)]
    return head, subjects


CFG = RefineConfig(steps=24, scale_freeze_steps=8, log_every=4, eval_every=8, images=2)


@pytest.mark.slow
def test_a_batch_of_three_gives_each_subject_its_single_run_result(three):
    head, subjects = three
    batched = refine_subjects(head, subjects, CFG)
    for subject, got in zip(subjects, batched):
        alone = refine_subject(head, subject.train, CFG, test=subject.test)
        assert got.reference_frame == alone.reference_frame
        for name in ATTRIBUTES:
            torch.testing.assert_close(getattr(got.local, name), getattr(alone.local, name), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose([h["loss"] for h in got.history], [h["loss"] for h in alone.history], rtol=1e-4)
        assert [h["step"] for h in got.history] == [0, 4, 8, 12, 16, 20, 23]
        np.testing.assert_allclose(got.metrics["final"]["psnr"], alone.metrics["final"]["psnr"], rtol=1e-4)
        assert got.metrics["final"]["psnr"] > got.metrics["initial"]["psnr"]


@pytest.mark.slow
def test_a_divergent_subject_leaves_the_batch_and_the_others_are_unaffected(three):
    head, subjects = three
    init = _neutral(head, subjects[1])
    broken = dataclasses.replace(subjects[1], init=dataclasses.replace(init, colors=init.colors * float("nan")))
    results = refine_subjects(head, [subjects[0], broken, subjects[2]], CFG)
    assert isinstance(results[1], str) and "loss became nan by step 0" in results[1]
    clean = refine_subjects(head, [subjects[0], subjects[2]], CFG)
    for got, want in zip((results[0], results[2]), clean):
        torch.testing.assert_close(got.local.colors, want.local.colors, rtol=1e-4, atol=1e-5)


def _neutral(head, subject):
    from sa0.refine.reference import choose_reference_frame, neutral_init

    ref = choose_reference_frame(subject.train.flame.jaw, np.random.default_rng(CFG.seed))
    verts = head.pose_track(subject.train.flame.as_dict())
    return neutral_init(head, verts[ref], subject.train, ref)


class _Crash(Observer):
    """Raises once subject s1 has done `at` steps (a task killed mid-run); records what it saw."""

    def __init__(self, at=None):
        self.at, self.logged, self.heldout_steps, self.images = at, [], [], []

    def progress(self, name, step):
        if name == "s1" and step == self.at:
            raise KeyboardInterrupt("killed")

    def log(self, name, record):
        self.logged.append((name, record["step"]))

    def heldout(self, name, step, metrics):
        assert metrics["psnr"] > 0
        self.heldout_steps.append((name, step))

    def image(self, name, step, image):
        assert image.dtype == np.uint8 and image.shape[1] == 2 * image.shape[0]
        self.images.append((name, step))


@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_from_checkpoints_and_ends_bitwise_where_a_clean_run_ends(three, tmp_path):
    head, subjects = three
    watch = _Crash()
    clean = refine_subjects(head, subjects, CFG, observer=watch)
    assert ("s0", 12) in watch.logged and ("s2", 16) in watch.heldout_steps and ("s0", 24) in watch.images
    with pytest.raises(KeyboardInterrupt):
        refine_subjects(head, subjects, CFG, observer=_Crash(at=14), checkpoint_dir=tmp_path, checkpoint_every=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.pt", "s1.pt", "s2.pt"]  # step 10 of each
    after = _Crash()
    resumed = refine_subjects(head, subjects, CFG, observer=after, checkpoint_dir=tmp_path, checkpoint_every=5)
    assert min(step for _, step in after.logged) == 12  # resumed at 10: the first logged step after it
    for got, want in zip(resumed, clean):
        for name in ATTRIBUTES:
            assert torch.equal(getattr(got.local, name), getattr(want.local, name)), name
        untimed = lambda history: [{k: v for k, v in h.items() if k != "steps_per_s"} for h in history]  # noqa: E731
        assert untimed(got.history) == untimed(want.history) and got.metrics["final"] == want.metrics["final"]
        assert got.metrics["initial"] == want.metrics["initial"]


@pytest.mark.gpu
def test_on_cuda_a_batch_of_three_matches_single_runs_and_follows_the_cpu_run(three):
    """The batched loop on CUDA (gsplat): each subject as if alone there too, and its loss curve and
    final PSNR close to the CPU run's (native kernel; the backends differ only in the alpha clamp
    and float order, so curves agree closely, not bitwise). Outputs come back on the CPU."""
    head, subjects = three
    on_gpu = head.to("cuda")  # a copy: the fixture's head stays on the CPU
    gpu = refine_subjects(on_gpu, subjects, CFG)
    cpu = refine_subjects(head, subjects, CFG)
    for subject, got, ref in zip(subjects, gpu, cpu):
        assert got.local.positions.device.type == "cpu"
        alone = refine_subject(on_gpu, subject.train, CFG, test=subject.test)
        for name in ATTRIBUTES:
            torch.testing.assert_close(getattr(got.local, name), getattr(alone.local, name), rtol=1e-3, atol=1e-4)
        losses, ref_losses = [h["loss"] for h in got.history], [h["loss"] for h in ref.history]
        np.testing.assert_allclose(losses[0], ref_losses[0], rtol=2e-3)
        np.testing.assert_allclose(losses, ref_losses, rtol=5e-2)
        assert abs(got.metrics["final"]["psnr"] - ref.metrics["final"]["psnr"]) < 0.5
