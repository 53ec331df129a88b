"""One results file per benchmark run: dated names, atomic writes, never an earlier run overwritten.

Shared by ``bench_adder_conv.py``, ``profile_train_step.py`` and ``train_step_cuts.py``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def publish_new(tmp: Path, path: Path) -> bool:
    """Move the finished file ``tmp`` to ``path`` unless ``path`` exists (False then, ``tmp`` kept)."""
    try:
        os.link(tmp, path)  # atomic, and fails if path exists
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links
        if path.exists():
            return False
        tmp.replace(path)
        return True
    tmp.unlink()
    return True


def new_json_path(directory: Path, prefix: str, date: str) -> Path:
    """DIR/<prefix>_<YYYY-MM-DD_HHMM>.json for ``date`` "YYYY-MM-DD HH:MM UTC", with _2, _3, ...
    when that name is taken."""
    stem = f"{prefix}_" + date.replace(" UTC", "").replace(" ", "_").replace(":", "")
    path, i = directory / f"{stem}.json", 2
    while path.exists():
        path, i = directory / f"{stem}_{i}.json", i + 1
    return path


def write_new_json(report: dict, path: Path, program: str) -> int:
    """Write ``report`` to ``path`` whole or not at all; 0, or 2 (with a message) if ``path``
    appeared during the run (the results are then left in ``path.tmp``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    if not publish_new(tmp, path):
        print(f"{program}: error: {path} appeared during the run; results left in {tmp}", file=sys.stderr)
        return 2
    print(f"\nwrote {path}")
    return 0
