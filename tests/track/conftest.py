import numpy as np
import pytest

from sa0.config import FlameConfig, LayoutConfig
from sa0.flame.landmarks import load_mediapipe_embedding, with_irises
from sa0.flame.synthetic import write_synthetic_flame
from sa0.head import load_head_model
from sa0.track.synthetic import synthetic_video


@pytest.fixture(scope="package")
def flame_dir(tmp_path_factory):
    return str(write_synthetic_flame(tmp_path_factory.mktemp("flame")))


@pytest.fixture(scope="package")
def head(flame_dir):
    return load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=64))


@pytest.fixture(scope="package")
def embedding(flame_dir, head):
    return with_irises(load_mediapipe_embedding(flame_dir, len(head.faces)), head.flame)


@pytest.fixture(scope="package")
def video(head, embedding):
    """24 frames at 512^2 of a synthetic subject with known FLAME parameters and cameras."""
    return synthetic_video(head, embedding, frames=24, resolution=512, seed=3)


def write_mp4(path, frames, fps=25):
    import imageio.v2 as imageio

    writer = imageio.get_writer(str(path), fps=fps, codec="libx264", quality=9, macro_block_size=1,
                                ffmpeg_log_level="error")
    for f in frames:
        writer.append_data(np.asarray(f))
    writer.close()
    return path
