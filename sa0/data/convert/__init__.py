"""Converters from public tracker outputs to sa0 clips (METHOD §5). Each yields clips in key order.

gagavatar: GAGAvatar_track (VFHQ, HDTF, CelebV-HQ); vhap: VHAP / GaussianAvatars exports
(NeRSemble); imavatar: IMavatar / INSTA (the SplattingAvatar benchmark).
"""

from sa0.data.convert import gagavatar, imavatar, vhap
from sa0.data.convert.gagavatar import convert_gagavatar
from sa0.data.convert.imavatar import convert_imavatar
from sa0.data.convert.vhap import convert_vhap

FORMATS = {"gagavatar": convert_gagavatar, "vhap": convert_vhap, "imavatar": convert_imavatar}
# Streaming form, for the conversion job: module.units(src) -> unit names; module.sources(src, units, ...)
# -> ClipSources in key order.
STREAMING = {"gagavatar": gagavatar, "vhap": vhap, "imavatar": imavatar}

__all__ = ["FORMATS", "STREAMING", "convert_gagavatar", "convert_imavatar", "convert_vhap"]
