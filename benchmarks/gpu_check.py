"""The prepared GPU check: sa0's CUDA paths run once on one GPU, their figures beside the paper's.

    python benchmarks/gpu_check.py [--out DIR] [--budget-s 450] [--dry-run] [--json]
    on the device machine:  bash benchmarks/gpu_check.sh   (installs the carried wheels, then this)

Sections, in this order, each timed; one that fails records its error and the rest go on; one that
would start with less than its minimum left of the budget is skipped, saying so:

  gsplat_build    gsplat compiles its CUDA code on first use (minutes): a subprocess starts that at
                  once; the sections before pytest_gpu need no gsplat and run meanwhile
  tiled_render    sa0's torch tiled backend on CUDA: the synthetic head at UV 256 (54,420
                  Gaussians), 512^2: forward ms, forward + backward ms
  feed_forward    the paper-shape generator (ViT-B/16 DINOv3 at 512, RANDOM weights: a trained one
                  costs the same): one portrait -> local Gaussians of one frame, fp32 and bf16, ms
  pytest_gpu      pytest -m gpu over the test files that hold gpu tests
  gsplat_render   the same scene through gsplat: forward FPS, forward + backward ms
  refine          one subject at 512^2, RefineConfig's 10,000 steps; if the budget stops it first,
                  the steps done, steps/s and the projected 10K time, said so
  refine_batch    8 subjects in one batched loop on the one GPU: steps/s per subject, subjects/hour
  generator_step  DeepSpeed ZeRO-2 at world size 1 (no Ray), bf16 autocast, the demo recipe at the
                  paper's model shape (ViT-B/16 at 512, UV 256, RANDOM weights), batch 8: samples/s,
                  peak GPU memory

Writes gpu_check.json and gpu_check.md (printed too) under --out (default $OUT, else
out/gpu_check), beside gsplat_build.log and pytest_gpu.log. --dry-run runs the same code on the CPU
at tiny sizes (UV 32, 64^2, a few steps; gsplat is imported, not built; pytest -m gpu then skips
every test): tests/test_gpu_check.py runs it, so the script cannot rot between GPU sessions.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PAPER = {"gsplat_render": "265.6 FPS at 512^2 with 58,173 Gaussians (RTX 3090)",
         "refine": "~2 min per subject, 10K steps at 512^2 (RTX 3090)",
         "feed_forward": "~50 ms"}
BUILD = ("import time; t = time.perf_counter(); from gsplat.cuda._backend import _C; "
         "assert _C is not None, 'gsplat found no CUDA toolkit (nvcc)'; "
         "print(f'gsplat CUDA extension ready in {time.perf_counter() - t:.1f} s')")
IMPORT_ONLY = "import gsplat; print('gsplat', gsplat.__version__, 'imported (dry run: its CUDA code is not built)')"


@dataclass(frozen=True)
class Sizes:
    uv: int
    image: int
    subjects: int
    timesteps: int
    refine_steps: int
    generator_batch: int
    generator_steps: int
    rounds: int
    paper_model: bool


FULL = Sizes(uv=256, image=512, subjects=8, timesteps=8, refine_steps=10_000, generator_batch=8, generator_steps=12,
             rounds=30, paper_model=True)
DRY = Sizes(uv=32, image=64, subjects=2, timesteps=4, refine_steps=12, generator_batch=2, generator_steps=3, rounds=3,
            paper_model=False)


class OutOfTime(Exception):
    """A time-boxed section reached its share of the budget."""


class Check:
    """The budget, the shared scene and every section's result."""

    def __init__(self, out: Path, budget_s: float, dry: bool):
        from sa0.config import FlameConfig, LayoutConfig
        from sa0.flame.synthetic import write_synthetic_flame
        from sa0.head import load_head_model

        self.out, self.budget_s, self.dry = out, budget_s, dry
        self.t0 = time.monotonic()
        self.sizes = DRY if dry else FULL
        self.device = torch.device("cpu" if dry else "cuda")
        self.tmp = Path(tempfile.mkdtemp(prefix="sa0_gpu_check_"))
        self.results: dict[str, dict] = {}
        self.build = _start_build(out / "gsplat_build.log", dry)
        self.flame_dir = str(write_synthetic_flame(self.tmp / "flame", seed=0))
        self.layout, self.flame = LayoutConfig(uv_resolution=self.sizes.uv), FlameConfig(model_dir=self.flame_dir)
        self.head_cpu = load_head_model(self.flame, self.layout)
        self.head = self.head_cpu.to(self.device)
        self.gsplat_ready = False
        self._clips = None

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    @property
    def clips(self):
        """Synthetic mono subjects at sizes.image (rendered on the CPU: no gsplat needed yet)."""
        if self._clips is None:
            from sa0.data.synthetic import DOMAINS, synthetic_clips

            s = self.sizes
            self._clips = list(synthetic_clips(self.head_cpu, "mono", s.subjects, 1, s.timesteps, 1, s.image,
                                               DOMAINS["studio"], seed=0))
        return self._clips

    @property
    def fast_backend(self) -> str:
        """What `auto` means for this check's tensors: gsplat on CUDA once built, native on the CPU."""
        return "native" if self.dry else "gsplat"

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def section(self, name: str, fn, min_s: float) -> None:
        if self.left() < min_s:
            self.results[name] = {"status": "skipped",
                                  "reason": f"{self.left():.0f} s of the budget left, the section needs {min_s:.0f} s"}
        else:
            t0 = time.monotonic()
            try:
                self.results[name] = {"status": "ok", **fn(self)}
            except Exception as exc:  # record it, go on with the next section
                self.results[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                      "traceback": traceback.format_exc(limit=6)}
            self.results[name]["seconds"] = round(time.monotonic() - t0, 2)
        row = self.results[name]
        detail = row.get("error") or row.get("reason") or ", ".join(f"{k} {v}" for k, v in row.items()
                                                                      if k not in ("status", "seconds", "traceback"))
        print(f"[gpu_check] {name}: {row['status']} ({row.get('seconds', 0):.1f} s) {detail[:300]}", flush=True)


def _start_build(log_path: Path, dry: bool) -> dict:
    env = {**os.environ, "MAX_JOBS": os.environ.get("MAX_JOBS", str(max(1, (os.cpu_count() or 2) - 2)))}
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-c", IMPORT_ONLY if dry else BUILD], stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return {"proc": proc, "log": log, "path": log_path, "t0": time.monotonic()}


def _timed(check: Check, fn, rounds: int) -> float:
    """Median seconds of fn() over `rounds` after one warm-up, synchronised on CUDA."""
    fn()
    check.sync()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        check.sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _render_case(check: Check, backend: str) -> dict:
    """The first subject's reference frame: its neutral-init Gaussians bound and rendered at 512^2."""
    from sa0.config import RenderConfig
    from sa0.gaussians import bind
    from sa0.refine.reference import neutral_init
    from sa0.refine.refine import camera_of
    from sa0.render import render
    from sa0.types import Gaussians

    clip, head = check.clips[0], check.head
    verts = head.pose_track(clip.flame.as_dict())
    with torch.no_grad():
        bound = bind(neutral_init(head, verts[0], clip, 0), verts[0], head.faces, head.layout)
    cams, bg, cfg = camera_of(clip, 0, 0).to(check.device), torch.zeros(3, device=check.device), RenderConfig(backend=backend)
    leaves = [t.detach().clone().requires_grad_() for t in (bound.means, bound.quats, bound.scales, bound.opacities,
                                                            bound.colors)]

    def forward():
        with torch.no_grad():
            render(Gaussians(*leaves), cams, bg, cfg)

    def forward_backward():
        for leaf in leaves:
            leaf.grad = None
        out = render(Gaussians(*leaves), cams, bg, cfg)
        (out.image.sum() + out.alpha.sum()).backward()

    fwd = _timed(check, forward, check.sizes.rounds)
    both = _timed(check, forward_backward, check.sizes.rounds)
    return {"backend": backend, "gaussians": check.head.num_gaussians, "size": clip.image_size[0],
            "forward_ms": round(1000 * fwd, 3), "fps": round(1 / fwd, 1), "forward_backward_ms": round(1000 * both, 3)}


def environment(check: Check) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def ver(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    out = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
           "cpus": os.cpu_count(), "dry_run": check.dry,
           **{name: ver(name) for name in ("gsplat", "deepspeed", "timm", "numpy", "smplx", "webdataset")}}
    if check.device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        out.update(device=props.name, capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                   multiprocessors=props.multi_processor_count)
    else:
        out["device"] = "cpu"
    return out


def tiled_render(check: Check) -> dict:
    return _render_case(check, "tiled")


def feed_forward(check: Check) -> dict:
    from sa0.model import Generator, ModelConfig
    from sa0.model.inference import TrainedGenerator, predict_local

    cfg = ModelConfig.paper() if check.sizes.paper_model else ModelConfig(image_size=56, unet_channels=(16, 24))
    torch.manual_seed(0)
    generator = TrainedGenerator(Generator(cfg, check.head).to(check.device).eval(), cfg.image_size, {})
    clip = check.clips[0]
    out = {"encoder": cfg.encoder, "image_size": cfg.image_size, "weights": "random"}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        def once():
            with torch.autocast(check.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                predict_local(generator, clip, [(0, 0)], (1, 0))
        out[f"{name}_ms"] = round(1000 * _timed(check, once, max(3, check.sizes.rounds // 3)), 2)
    return out


def wait_build(check: Check) -> dict:
    build = check.build
    try:
        code = build["proc"].wait(timeout=max(1.0, check.left() - 150))
    except subprocess.TimeoutExpired:
        build["proc"].kill()
        code = "killed: it would leave too little of the budget"
    build["log"].close()
    text = build["path"].read_text(errors="replace")
    ready = re.search(r"ready in ([\d.]+) s", text)
    check.gsplat_ready = code == 0
    if code != 0:
        raise RuntimeError(f"gsplat build {code}; its log ends: {text[-600:]}")
    return {"wall_s": round(time.monotonic() - build["t0"], 1),
            "build_s": float(ready.group(1)) if ready else None, "log_tail": text.strip().splitlines()[-1:]}


def pytest_gpu(check: Check) -> dict:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if "pytest.mark.gpu" in p.read_text())
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *files]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(30.0, min(240.0, check.left() - 120)))
    (check.out / "pytest_gpu.log").write_text(done.stdout + done.stderr)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", summary)}
    if done.returncode != 0:
        raise RuntimeError(f"pytest -m gpu exited {done.returncode}: {summary}")
    return {"files": files, "summary": summary, **counts}


def gsplat_render(check: Check) -> dict:
    if not check.dry and not check.gsplat_ready:
        raise RuntimeError("gsplat is not built (see gsplat_build)")
    return _render_case(check, check.fast_backend)


def _refine(check: Check, count: int, share: float) -> dict:
    """Refine `count` subjects for RefineConfig's steps in one loop, stopped once `share` of the
    budget left (keeping 100 s for what follows) is spent; -> loop steps/s per subject, wall."""
    from sa0.config import RenderConfig
    from sa0.refine import RefineConfig
    from sa0.refine.batched import Observer, Subject, refine_subjects

    backend = check.fast_backend if (check.dry or check.gsplat_ready) else "tiled"
    cfg = RefineConfig(steps=check.sizes.refine_steps, log_every=500, eval_every=0, images=0,
                       render=RenderConfig(backend=backend))
    cap = max(10.0, share * (check.left() - 100))
    stamps: list[float] = []

    class Clock(Observer):
        def progress(self, name, step):
            if name == "s0":
                stamps.append(time.perf_counter())
                if stamps[-1] - t0 > cap and step < cfg.steps:
                    raise OutOfTime

    subjects = [Subject(f"s{i}", clip) for i, clip in enumerate(check.clips[:count])]
    t0 = time.perf_counter()
    try:
        refine_subjects(check.head, subjects, cfg, observer=Clock())
        finished = True
    except OutOfTime:
        finished = False
    check.sync()
    wall = time.perf_counter() - t0
    steps = len(stamps)
    loop_s = stamps[-1] - stamps[min(10, steps - 1)]  # after 10 warm-up steps
    rate = (steps - 1 - min(10, steps - 1)) / loop_s if loop_s > 0 else float("nan")
    out = {"backend": backend, "subjects": count, "gaussians": check.head.num_gaussians,
           "size": check.sizes.image, "steps_done": steps, "finished": finished, "wall_s": round(wall, 1),
           "steps_per_s_per_subject": round(rate, 2)}
    if finished:
        out["wall_10k_note"] = f"{cfg.steps} steps run in full"
    else:
        out["projected_wall_s"] = round(cfg.steps / rate, 1)
        out["wall_10k_note"] = f"stopped by the budget at step {steps}; {cfg.steps} steps projected from steps/s"
    out["subjects_per_hour_loop"] = round(3600 * count * rate / cfg.steps, 1)  # the loop alone: no load or outputs
    return out


def refine(check: Check) -> dict:
    return _refine(check, 1, 0.45)


def refine_batch(check: Check) -> dict:
    out = _refine(check, check.sizes.subjects, 0.6)
    single = check.results.get("refine", {}).get("subjects_per_hour_loop")
    if single:
        out["batch_gain_over_one_subject"] = round(out["subjects_per_hour_loop"] / single, 2)
    return out


def generator_step(check: Check) -> dict:
    from sa0.config import apply_overrides
    from sa0.data.pipeline import ExampleStream
    from sa0.data.shards import write_shards
    from sa0.model import ModelConfig
    from sa0.model.batch import prepare_batch
    from sa0.train.loop import PhaseRun, build_engine
    from sa0.train.recipes import recipe
    from sa0.train.step import compute_losses

    if not check.dry and not check.gsplat_ready:
        raise RuntimeError("gsplat is not built (see gsplat_build); the generator renders through it on CUDA")
    s, shards = check.sizes, check.tmp / "shards"
    if not shards.exists():
        write_shards(check.clips, shards)
    job = apply_overrides(recipe("demo"), [
        "phase2=none", "train.zero_stage=2", f"flame.model_dir={check.flame_dir}", f"layout.uv_resolution={s.uv}",
        f"phase1.batch_size={s.generator_batch}", "phase1.bf16=true", f"phase1.data.shard_dirs={shards}",
        f"phase1.data.example.image_size={s.image}", f"phase1.steps={s.generator_steps}"])
    if s.paper_model:
        job = replace(job, model=ModelConfig.paper())
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port.getsockname()[1]))
    port.close()
    if check.device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    run = PhaseRun(job, 1)
    engine, head, _ = build_engine(run, check.device)
    stream = iter(ExampleStream(run.cfg.data, run.cfg.batch_size, runner="local"))
    batches = [prepare_batch(next(stream), head, check.device) for _ in range(2)]  # built ahead, as Ray Data does
    if check.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(s.generator_steps):
        t0 = time.perf_counter()
        total, terms, _ = compute_losses(engine.module, batches[i % 2], run.cfg.loss, bf16=True)
        engine.backward(total)
        engine.step()
        check.sync()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times[2:] or times)
    out = {"encoder": job.model.encoder, "image_size": job.model.image_size, "uv": s.uv, "batch": s.generator_batch,
           "zero_stage": 2, "bf16": True, "weights": "random", "step_ms": round(1000 * step_s, 1),
           "samples_per_s": round(s.generator_batch / step_s, 2), "loss": round(float(total.detach()), 4)}
    if check.device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


SECTIONS = [("environment", environment, 0), ("tiled_render", tiled_render, 30), ("feed_forward", feed_forward, 30),
            ("gsplat_build", wait_build, 0), ("pytest_gpu", pytest_gpu, 60), ("gsplat_render", gsplat_render, 20),
            ("refine", refine, 40), ("refine_batch", refine_batch, 40), ("generator_step", generator_step, 40)]


def markdown(results: dict) -> str:
    env = results.get("environment", {})
    lines = [f"# sa0 GPU check: {env.get('device', '?')} ({'dry run' if env.get('dry_run') else 'full'})", "",
             f"torch {env.get('torch')}, CUDA {env.get('cuda')}, gsplat {env.get('gsplat')}, "
             f"deepspeed {env.get('deepspeed')}, {env.get('cpus')} CPUs", "",
             "| section | status | s | figures | paper |", "|---|---|---|---|---|"]
    for name, row in results.items():
        if name == "environment":
            continue
        figures = row.get("error") or row.get("reason") or "; ".join(
            f"{k} {v}" for k, v in row.items() if k not in ("status", "seconds", "traceback", "files", "log_tail"))
        lines.append(f"| {name} | {row['status']} | {row.get('seconds', '')} | {figures.replace('|', '/')} "
                     f"| {PAPER.get(name, '')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "out" / "gpu_check"))
    parser.add_argument("--budget-s", type=float, default=450.0, help="wall-clock budget of the whole check")
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU at tiny sizes")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the markdown")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device here; run with --dry-run to exercise the check on the CPU")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check = Check(out, args.budget_s, args.dry_run)
    try:
        for name, fn, min_s in SECTIONS:
            check.section(name, fn, min_s)
    finally:
        if check.build["proc"].poll() is None:
            check.build["proc"].kill()
    report = {**check.results, "budget_s": args.budget_s, "total_s": round(time.monotonic() - check.t0, 1)}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    text = markdown(check.results) + f"\nTotal {report['total_s']} s of a {args.budget_s:.0f} s budget.\n"
    (out / "gpu_check.md").write_text(text)
    print(json.dumps(report, indent=1, default=str) if args.json else text)


if __name__ == "__main__":
    main()
