"""MediaPipe Face Mesh + selfie segmentation, run in sa0's MediaPipe environment (not sa0's own).

Started by sa0.track.mp_detector as `python mediapipe_worker.py --static 0|1`. Protocol on
stdin / stdout, one frame at a time: the client writes a JSON line {"h": H, "w": W} and H*W*3 RGB
bytes; the worker answers a JSON line {"faces": N, "matte": true} followed by N*478*2 float32
pixel positions and H*W uint8 matte bytes (none, and "matte": false, with --matte 0). An empty line ends it. This file imports only numpy
and mediapipe (0.10.21 bundles its models: nothing is downloaded).
"""

import argparse
import json
import os
import sys

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--static", type=int, default=1, help="1: every frame on its own; 0: track across frames")
    parser.add_argument("--max-faces", type=int, default=2)
    parser.add_argument("--matte", type=int, default=1, help="0: no segmentation (live driving needs landmarks only)")
    args = parser.parse_args()
    stdout = os.fdopen(os.dup(1), "wb")  # the protocol's channel; anything a library prints goes to stderr
    os.dup2(2, 1)
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=bool(args.static), max_num_faces=args.max_faces,
                                           refine_landmarks=True, min_detection_confidence=0.5)
    segment = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) if args.matte else None
    stdin = sys.stdin.buffer
    stdout.write((json.dumps({"ready": True, "mediapipe": mp.__version__}) + "\n").encode())
    stdout.flush()
    while True:
        line = stdin.readline()
        if not line.strip():
            break
        header = json.loads(line)
        h, w = int(header["h"]), int(header["w"])
        image = np.frombuffer(stdin.read(h * w * 3), dtype=np.uint8).reshape(h, w, 3)
        found = mesh.process(image).multi_face_landmarks or []
        faces = [np.array([[p.x * w, p.y * h] for p in face.landmark], dtype=np.float32) for face in found]
        stdout.write((json.dumps({"faces": len(faces), "matte": segment is not None}) + "\n").encode())
        for face in faces:
            stdout.write(face.tobytes())
        if segment is not None:
            mask = segment.process(image).segmentation_mask
            stdout.write((np.clip(mask, 0, 1) * 255).round().astype(np.uint8).tobytes())
        stdout.flush()


if __name__ == "__main__":
    main()
