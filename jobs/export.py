"""Export an avatar as standard splat files: one posed frame, or every frame of a motion.

    python jobs/export.py --avatar OUT/<subject>/avatar.npz [--format glb|spz|ply] [--frame K]
        [--driver SUBJECT [--shards DIR ...]] [--sequence [--fps 25]] [--out PATH]

glb: glTF 2.0 with KHR_gaussian_splatting (Babylon.js, PlayCanvas, CesiumJS); spz: Niantic's SPZ,
version 3 (Spark, Babylon.js, Unity splat packages; about 10x smaller than the PLY); ply: the 3DGS
PLY every splat viewer opens. One frame by default: the avatar's reference frame in its own motion
(--frame K for another; frame 0 of a --driver's motion). --sequence writes every frame of the
motion as OUT/frame_%05d.<format> with OUT/sequence.json (fps, each frame's file and time). All in
sa0's world: metres, y up, the face toward +z (glTF's and SPZ's own axes: nothing to convert).
--out defaults to beside the avatar (avatar.<format>, or sequence_<format>/).
"""

import sys

from sa0.cli import Flag, JobSpec, Use, parse_job
from sa0.export.job import PLAY_FLAGS, ExportJob, run_export_job
from sa0.export.splats import FORMATS

SPEC = JobSpec(
    doc=__doc__,
    recipes={"default": ExportJob},
    shared={"avatar": "avatar", "shards": "shards", "out": "out", "head": "head", "uv_resolution": "uv_resolution",
            "format": Use("format", help=f"file format: {', '.join(FORMATS)}")},
    flags=tuple(f for f in PLAY_FLAGS if f.key != "camera") + (
        Flag(("--frame",), "frame", "the motion's frame to pose (default: the avatar's reference frame)"),
        Flag(("--sequence",), "sequence", "every frame of the motion, with sequence.json", switch=True),
    ),
    required=("avatar",),
)


def main(argv=None) -> int:
    return run_export_job(parse_job(SPEC, argv))


if __name__ == "__main__":
    sys.exit(main())
