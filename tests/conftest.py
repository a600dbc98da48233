"""Suite-wide settings. Under `pytest -n N` (xdist), each worker gets its share of the CPUs as torch
intra-op threads: on the 2-core CI machine two workers x two OpenMP threads keep waiting for
descheduled partner threads, which made one training test 30x slower (120 s vs 4 s)."""

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _threads_per_worker():
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cpus // workers))
    yield


@pytest.fixture(autouse=True, scope="session")
def _xception_home(tmp_path_factory):
    """$XCEPTION_HOME in a folder of the session: the compiled packages and runtime timings that
    `predict` and `eval` cache never land in the user's home, and are shared by the session's tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XCEPTION_HOME", str(tmp_path_factory.mktemp("xception-home")))
        yield


@pytest.fixture
def one_thread():
    """One intra-op thread for tests of many tiny ops: with `pytest -n 2` on 2 cores, two OpenMP
    threads per worker make every small op wait for a descheduled partner thread (5x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fashion_mnist():
    """The directory holding Fashion-MNIST (Debian's package or this library's cache), or a skip that
    says what is missing: `make test` obtains it first (`make data`); a plain pytest run does not."""
    from xception.data.fashion_mnist import ensure_fashion_mnist

    try:
        return ensure_fashion_mnist(None, download=False)
    except FileNotFoundError as error:
        where = str(error).split(". ")[0]  # "Fashion-MNIST was not found in A nor in B"
        pytest.skip(f"{where}; `make data` (or `xception data fetch`) obtains it")


@pytest.fixture(scope="session")
def official_xception(tmp_path_factory):
    """(a file in the official Keras layout, Keras' model holding the same random weights): built once
    per session (about 10 s), shared by the download and the command-line tests of published weights."""
    from official_weights import write_official_xception
    from xception.models.weights.registry import XCEPTION_IMAGENET

    return write_official_xception(tmp_path_factory.mktemp("official") / XCEPTION_IMAGENET.file_name)
