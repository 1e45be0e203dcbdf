"""Export an avatar as a web page that plays it (orbit, zoom, play / pause / scrub) in any browser.

    python jobs/export_web.py --avatar OUT/<subject>/avatar.npz [--driver SUBJECT] [--shards DIR ...]
        [--out site/] [--camera 0] [--fps 25] [--serve [--port 8000]]

The motion is the driver's (default: the avatar's own subject), its first clip (train split first,
every frame), seen from that clip's camera `--camera`. --shards defaults to the shards the avatar was
refined from (the package records them), else every shard directory under ./data. The head and UV
resolution are the avatar's own (--flame-dir only for a FLAME avatar). --serve then serves the
folder on 127.0.0.1 (ES modules need a server, not file://).
"""

import sys

from sa0.cli import JobSpec, Use, parse_job
from sa0.export.job import PLAY_FLAGS, run_web_job, web_job

SPEC = JobSpec(
    doc=__doc__,
    recipes={"default": web_job},
    shared={"avatar": "avatar", "shards": "shards", "out": "out", "head": "head", "uv_resolution": "uv_resolution",
            "serve": Use("serve", help="serve the folder after writing it"), "port": Use("port", help="port for --serve")},
    flags=PLAY_FLAGS,
    required=("avatar",),
)


def main(argv=None) -> int:
    return run_web_job(parse_job(SPEC, argv))


if __name__ == "__main__":
    sys.exit(main())
