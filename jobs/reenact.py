"""Drive a refined avatar with another subject's clip and write a video.

    python jobs/reenact.py --avatar OUT/subj/avatar.npz --driver SUBJECT --shards DIR [DIR ...]
        --out video.mp4 [--flame-dir DIR] [--uv-resolution R] [--camera 0] [--fps 25]

--driver names a subject in the shards; its first clip (train split first) drives the avatar.
The head and the UV resolution are the avatar's own (it records both); --flame-dir is needed only for
an avatar made with FLAME.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from sa0.export.package import load_package, package_head
from sa0.export.reenact import reenact_frames, write_video
from sa0.flame import FlameFileError
from sa0.flame.io import FLAME_DIR_ENV
from sa0.refine.subjects import BadInput, driver_clip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--avatar", required=True, help="avatar.npz written by refine_batch.py")
    parser.add_argument("--driver", required=True, help="driver subject id in the shards")
    parser.add_argument("--shards", nargs="+", required=True)
    parser.add_argument("--out", required=True, help="output .mp4")
    parser.add_argument("--flame-dir", default=None, help=f"head: a FLAME directory, or ict / synthetic (default: the "
                        f"head the avatar was made with, else ${FLAME_DIR_ENV}, else the synthetic head)")
    parser.add_argument("--uv-resolution", type=int, default=None, help="checked against the avatar's (default: the "
                        "avatar's own)")
    parser.add_argument("--camera", type=int, default=0)
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args(argv)
    package = load_package(args.avatar)
    if args.uv_resolution not in (None, package.uv_resolution):
        parser.error(f"--uv-resolution {args.uv_resolution}: a different UV layout from the avatar's ({args.avatar} "
                     f"was made at UV resolution {package.uv_resolution})")
    try:
        clip = driver_clip(args.driver, args.shards)
    except BadInput as exc:
        parser.error(str(exc))
    with contextlib.ExitStack() as stack:
        try:
            head = stack.enter_context(package_head(package, args.flame_dir))
        except FlameFileError as exc:
            parser.error(str(exc))
        try:
            frames = reenact_frames(package, head, clip, camera=args.camera)
        except ValueError as exc:
            parser.error(str(exc))
    write_video(frames, args.out, args.fps)
    print(f"wrote {args.out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
