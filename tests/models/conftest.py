"""Shared by the AdderSRModel tests."""

import logging

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny nets: OpenMP threads only add barrier spinning, badly so on a loaded 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def warnings_log():
    """The warnings of basicsr's root logger (it does not propagate, so caplog misses them)."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda r: records.append(r.getMessage())
    logger = logging.getLogger("basicsr")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
