"""Two datasets reading one LMDB in one process (train and val with ``num_worker_per_gpu: 0``).

py-lmdb refuses to open an environment twice in a process ("already open in this process");
basicsr's ``LmdbBackend`` opens one per dataset. The patched backend shares the environment.
"""

from __future__ import annotations

import importlib
import os

from .preimport import PATCHED

_LMDB_ENVS: dict = {}


def _shared_lmdb_open(path: str, **kwargs):
    """``lmdb.open`` that hands out the environment already open for ``path`` in this process.

    py-lmdb refuses to open one environment twice in a process ("already open in this
    process"), which basicsr does when train and val (or two val sets) read the same LMDB
    with ``num_worker_per_gpu: 0``. Keyed by pid so forked dataloader workers open their own.
    """
    import lmdb

    key = (os.getpid(), os.path.realpath(path), tuple(sorted(kwargs.items())))
    env = _LMDB_ENVS.get(key)
    if env is None:
        env = _LMDB_ENVS[key] = lmdb.open(path, **kwargs)
    return env


def patch_lmdb_backend() -> bool:
    """Let several basicsr ``LmdbBackend`` clients read the same LMDB in one process."""
    file_client = importlib.import_module("basicsr.utils.file_client")
    backend = file_client.LmdbBackend
    if getattr(backend.__init__, PATCHED, False):
        return False

    def __init__(self, db_paths, client_keys="default", readonly=True, lock=False, readahead=False, **kwargs):
        if isinstance(client_keys, str):
            client_keys = [client_keys]
        self.db_paths = [str(v) for v in db_paths] if isinstance(db_paths, list) else [str(db_paths)]
        assert len(client_keys) == len(self.db_paths), (
            "client_keys and db_paths should have the same length, "
            f"but received {len(client_keys)} and {len(self.db_paths)}.")
        self._client = {
            client: _shared_lmdb_open(path, readonly=readonly, lock=lock, readahead=readahead, **kwargs)
            for client, path in zip(client_keys, self.db_paths)
        }

    setattr(__init__, PATCHED, True)
    backend.__init__ = __init__
    return True


__all__ = ["patch_lmdb_backend"]
