"""Drive a refined avatar with another subject's clip and write a video.

    python jobs/reenact.py --avatar OUT/subj/avatar.npz --driver SUBJECT [--shards DIR ...]
        --out video.mp4 [--camera 0] [--fps 25]

--driver names a subject in the shards (default: the avatar's own); its first clip (train split
first) drives the avatar. --shards defaults to the shards the avatar was refined from, else every
shard directory under ./data. The head and the UV resolution are the avatar's own (it records both);
--flame-dir is needed only for an avatar made with FLAME.
"""

import sys

from sa0.cli import JobSpec, parse_job
from sa0.export.job import PLAY_FLAGS, reenact_job, run_reenact_job

SPEC = JobSpec(
    doc=__doc__,
    recipes={"default": reenact_job},
    shared={"avatar": "avatar", "shards": "shards", "out": "out", "head": "head", "uv_resolution": "uv_resolution"},
    flags=PLAY_FLAGS,
    required=("avatar",),
)


def main(argv=None) -> int:
    return run_reenact_job(parse_job(SPEC, argv))


if __name__ == "__main__":
    sys.exit(main())
