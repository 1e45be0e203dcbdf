"""The preview command renders a posed synthetic head a person can look at."""

import imageio.v3 as iio
import numpy as np

from sa0.render.preview import main


def test_preview_writes_a_posed_head(tmp_path, synthetic_dir, monkeypatch):
    monkeypatch.delenv("SA0_FLAME_DIR", raising=False)
    out = tmp_path / "head.png"
    main(["--out", str(out), "--flame-dir", str(synthetic_dir), "--size", "96", "--uv-resolution", "48"])
    image = iio.imread(out)
    assert image.shape == (96, 192, 3)
    foreground = (image < 250).any(-1)  # white background
    assert 0.1 < foreground.mean() < 0.9
    closed = tmp_path / "closed.png"
    main(["--out", str(closed), "--flame-dir", str(synthetic_dir), "--size", "96", "--uv-resolution", "48", "--jaw", "0"])
    assert np.abs(iio.imread(closed).astype(int) - image.astype(int)).max() > 50  # the jaw visibly moved
