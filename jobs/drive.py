"""Drive an avatar live: a webcam or a video in, the avatar moving in the browser as frames arrive;
or expression streams from other tools (ARKit-52 weights, FLAME parameters).

    python jobs/drive.py --avatar OUT/<subject>/avatar.npz (--camera N | --video FILE | --arkit FILE |
        --params FILE) [--serve [--port 8000]] [--record motion.npz] [--fps F]

--camera / --video: per frame, MediaPipe's landmarks -> a fast fit of expression, jaw, head rotation
and eyes (warm-started from the previous frame, a temporal prior, no photometric stage; identity
from the avatar's own track). A video plays at its own frame rate, as a webcam would: a frame whose
time passed while the previous one was worked on is dropped. --arkit: ARKit blendshape weights per
frame (a Live Link Face CSV, or JSON), for an avatar on the ICT-FaceKit head (its expressions are
ARKit's). --params: FLAME parameters (a motion .npz from --record, or a VHAP export folder).
--serve streams each posed frame to sa0's browser viewer over a WebSocket on 127.0.0.1: open
http://127.0.0.1:PORT/?live=1 (it shows latency and frame rate, and reconnects after a drop).
Without --serve frames are processed as fast as they come (e.g. to --record them).
"""

import sys
from dataclasses import replace

from sa0.cli import Flag, JobSpec, Use, parse_job
from sa0.drive.job import DriveJob, one_source, run_drive_job
from sa0.export.job import PLAY_FLAGS

CAMERA, FPS = (next(f for f in PLAY_FLAGS if f.key == key) for key in ("camera", "fps"))

SPEC = JobSpec(
    doc=__doc__,
    recipes={"default": DriveJob},
    shared={"avatar": "avatar", "head": "head", "shards": "shards", "out": Use("out", help="the viewer folder (default: "
                                                                               "a temporary one)"),
            "video": Use("video", help="a video file, played at its frame rate"),
            "serve": Use("serve", help="stream to the browser viewer on 127.0.0.1"),
            "port": Use("port", help="the viewer's port (0: a free one)")},
    flags=(
        replace(CAMERA, help="webcam index (/dev/videoN)"),
        Flag(("--arkit",), "arkit", "ARKit-52 weights per frame: Live Link Face CSV or JSON", path=True),
        Flag(("--params",), "params", "FLAME parameters: a motion .npz (--record) or a VHAP export", path=True),
        Flag(("--record",), "record", "write the posed parameters as a motion .npz", path=True),
        replace(FPS, help="frame rate (default: the source's; ARKit CSV: 60)"),
        Flag(("--linger",), "linger", "seconds to keep serving after the source ends (-1: until Ctrl-C)"),
    ),
    required=("avatar",),
    prepare=one_source,
)


def main(argv=None) -> int:
    return run_drive_job(parse_job(SPEC, argv))


if __name__ == "__main__":
    sys.exit(main())
