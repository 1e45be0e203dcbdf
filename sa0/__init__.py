"""sa0: FLAME-bound 4D Gaussian head avatars (SpatialAvatar-0).

Stages (one module each): flame -> gaussians (layout, frames, bind) -> render.
See README.md and ARCHITECTURE.md for the data flow.
"""

__version__ = "0.1.0"
