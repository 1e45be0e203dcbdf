"""Export an avatar as a web page that plays it (orbit, zoom, play / pause / scrub) in any browser.

    python jobs/export_web.py --avatar OUT/<subject>/avatar.npz [--driver SUBJECT] [--shards DIR ...]
        [--out site/] [--flame-dir DIR] [--camera 0] [--fps 25] [--serve [--port 8000]]

The motion is the driver's (default: the avatar's own subject), its first clip (train split first),
seen from that clip's camera `--camera`. --shards defaults to every shard directory under ./data.
The FLAME files must be the ones the avatar was built with (the UV resolution is read from the
package). --serve then serves the folder on 127.0.0.1 (ES modules need a server, not file://).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

from sa0.export.package import load_package, package_head
from sa0.export.serve import served
from sa0.export.web import export_site
from sa0.flame import FlameFileError
from sa0.flame.io import FLAME_DIR_ENV
from sa0.refine.subjects import BadInput, driver_clip, resolve_shard_dirs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--avatar", required=True, help="avatar.npz written by refine_batch.py")
    parser.add_argument("--driver", default=None, help="subject whose motion plays (default: the avatar's own)")
    parser.add_argument("--shards", nargs="+", default=None, help="shard directories (default: every one under ./data)")
    parser.add_argument("--out", default="site", help="output folder (replaced)")
    parser.add_argument("--flame-dir", default=None, help=f"head: a FLAME directory, or ict / synthetic (default: the "
                        f"head the avatar was made with, else ${FLAME_DIR_ENV}, else the synthetic head)")
    parser.add_argument("--camera", type=int, default=0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--serve", action="store_true", help="serve the folder after writing it")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if not Path(args.avatar).is_file():
        parser.error(f"--avatar {args.avatar}: no such file (refine_batch.py writes OUT/<subject>/avatar.npz)")
    try:
        package = load_package(args.avatar)
    except (ValueError, KeyError, OSError) as exc:
        parser.error(f"--avatar {args.avatar}: {exc}")
    driver = args.driver or package.meta.get("subject")
    if not driver:
        parser.error(f"--avatar {args.avatar} names no subject; pass --driver SUBJECT")
    try:
        clip = driver_clip(driver, resolve_shard_dirs(args.shards))
    except BadInput as exc:
        parser.error(str(exc))
    with contextlib.ExitStack() as stack:
        try:
            head = stack.enter_context(package_head(package, args.flame_dir))
        except FlameFileError as exc:
            parser.error(str(exc))
        try:
            site = export_site(package, head, clip, args.out, camera=args.camera, fps=args.fps)
        except ValueError as exc:
            parser.error(str(exc))
    size = sum(p.stat().st_size for p in site.iterdir()) / 2**20
    print(f"wrote {site}/: {package.local.positions.shape[0]} Gaussians, {clip.num_timesteps} frames of "
          f"{driver}, {size:.1f} MiB; open it with: python -m http.server --bind 127.0.0.1 -d {site}")
    if args.serve:
        with served(site, args.port, quiet=False) as url:
            print(f"serving {site} at {url}/  (Ctrl-C stops)", flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
