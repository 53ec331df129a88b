"""Data tools: build BasicSR-format datasets (LMDBs with ``meta_info.txt``, benchmark folders)
and check the datasets an option file points to before a run starts.

Modules: ``images`` (reading, modcrop, MATLAB bicubic), ``lmdb_build`` (atomic LMDB creation
around basicsr's ``make_lmdb_from_imgs``), ``div2k``, ``benchmark``, ``demo_set`` (the three
dataset builders), ``checks`` (option-file dataset checks). All raise :class:`DatasetError`.
"""

from .errors import DatasetError

__all__ = ["DatasetError"]
