"""MediaPipe (0.10.21, in sa0's own environment) on a real photo, and a fit of the synthetic head to it."""

import numpy as np
import pytest

from sa0.flame.landmarks import LandmarkLayer
from sa0.track.fit import FitConfig, fit_landmarks
from sa0.track.mediapipe_env import MediaPipeMissing, env_python

try:
    env_python()
    HAVE = True
except MediaPipeMissing:
    HAVE = False

needs_mediapipe = pytest.mark.skipif(not HAVE, reason="sa0's MediaPipe environment is not installed "
                                                      "(python -m sa0.track.mediapipe_env)")


@needs_mediapipe
def test_mediapipe_finds_478_landmarks_on_the_astronaut_and_the_synthetic_head_fits_them(head, embedding):
    skimage_data = pytest.importorskip("skimage.data")
    from sa0.track.mp_detector import MediaPipeDetector

    image = skimage_data.astronaut()
    with MediaPipeDetector(static=True) as det:
        found = det.detect(image)
        empty = det.detect(np.zeros((120, 160, 3), np.uint8))
    assert len(found.faces) == 1 and found.faces[0].shape == (478, 2) and np.isfinite(found.faces[0]).all()
    assert empty.faces == [] and empty.matte.shape == (120, 160)
    face = found.faces[0]
    assert face[263, 0] > face[362, 0] > face[133, 0] > face[33, 0]  # subject's left eye on the image's right
    assert found.matte.shape == image.shape[:2] and found.matte[int(face[1, 1]), int(face[1, 0])] > 200
    result = fit_landmarks(LandmarkLayer(head.flame, embedding), face[embedding.ids][None], np.array([image.shape[:2]]),
                           FitConfig(video=False))
    # The synthetic head is not a human face: the fit must converge, with a bounded error.
    assert np.isfinite(result.loss)
    assert result.error_px[0] <= 0.06 * result.face_px[0], (result.error_px, result.face_px)
