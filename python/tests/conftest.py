# conftest.py — shared fixtures of the Python conformance suite: a seeded generator per
# test (reproducible failures) and torch pinned to one thread so the suite stays quick.
import zlib

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def rng(request):
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)
