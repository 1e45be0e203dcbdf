"""The ICT head's MediaPipe embedding (derived from MediaPipe on renders of it) against MediaPipe itself."""

import numpy as np
import pytest

from sa0.flame.landmarks import load_mediapipe_embedding
from sa0.heads.ict import ict_dir
from sa0.track.embedding import ict_textured_head, render_view
from tests.track.test_mediapipe import needs_mediapipe


@pytest.fixture(scope="module")
def textured():
    return ict_textured_head()


def project(head, embedding, view, K):
    points = (embedding.bary[..., None] * head.verts[head.faces[embedding.face_idx]]).sum(1)
    cam = points @ view[:3, :3].T + view[:3, 3]
    return cam[:, :2] / cam[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]


def test_embedding_file_is_valid(textured):
    embedding = load_mediapipe_embedding(ict_dir(), len(textured.faces))
    assert len(embedding) >= 300  # the face oval's silhouette points are left out, the rest kept
    for kept in (33, 133, 362, 61, 291, 4, 17, 468, 473):  # eye corners, mouth corners, nose, chin, irises
        assert kept in embedding.ids
    assert 234 not in embedding.ids and 454 not in embedding.ids  # cheek silhouette: slides as the head turns


@needs_mediapipe
@pytest.mark.parametrize("yaw, pitch", [(5, 3), (-12, -4)])  # views the embedding was not derived from
def test_detected_landmarks_agree_with_the_projected_embedding(textured, yaw, pitch):
    from sa0.track.mp_detector import MediaPipeDetector

    embedding = load_mediapipe_embedding(ict_dir(), len(textured.faces))
    image, _, view, K = render_view(textured, yaw, pitch, 512)
    with MediaPipeDetector(static=True) as detector:
        faces = detector.detect(image).faces
    assert len(faces) == 1
    error = np.linalg.norm(project(textured, embedding, view, K) - faces[0][embedding.ids], axis=1)
    assert np.median(error) <= 2.0, f"median {np.median(error):.2f} px at 512^2"
