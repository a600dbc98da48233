"""Published weights by name: downloaded once into the cache with a progress bar, checked against the
published checksum, moved into place atomically, then used offline. A loopback server on 127.0.0.1
serves a file in the official Keras layout (random weights); no test touches the internet."""

from __future__ import annotations

import logging
import socket

import pytest
import torch

from official_weights import FileServer, pointed_at
from xception import create_model
from xception.models.weights import download
from xception.models.weights.download import ChecksumError, WeightsUnavailableError, fetch_weights
from xception.models.weights.registry import WEIGHTS, XCEPTION_IMAGENET

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # building Keras: ~10 s


@pytest.fixture(scope="module")
def official_file(official_xception):
    return official_xception[0]


@pytest.fixture
def server(official_file):
    served = FileServer({official_file.name: official_file.read_bytes()})
    yield served
    served.close()


@pytest.fixture
def cache(tmp_path, monkeypatch, server):
    """An empty $XCEPTION_HOME and $XCEPTION_WEIGHTS_URL pointing at the loopback server."""
    monkeypatch.setenv("XCEPTION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XCEPTION_WEIGHTS_URL", server.url)
    return tmp_path / "home" / "weights"


def test_fetch_weights_downloads_with_progress_checks_and_then_works_offline(official_file, server, cache, capsys,
                                                                           caplog):
    entry = pointed_at(XCEPTION_IMAGENET, official_file)
    with caplog.at_level(logging.INFO, logger="xception.models.weights.download"):
        path = fetch_weights(entry)
    assert path == cache / official_file.name
    assert path.read_bytes() == official_file.read_bytes()
    # stderr is no terminal here: no bar (tqdm's carriage returns would fill a log), two log lines instead.
    assert "\r" not in capsys.readouterr().err
    size = official_file.stat().st_size / 1e6
    assert f"downloading {official_file.name} ({size:.1f} MB) from {server.url}" in caplog.text
    assert f"downloaded {official_file.name}: {entry.checksum.algorithm} checked, cached as {path}" in caplog.text
    assert sorted(p.name for p in cache.iterdir()) == [official_file.name]  # no temporary file left
    server.close()  # offline from now on
    assert fetch_weights(entry) == path
    assert server.requests == 1


@pytest.mark.parametrize("mode", ["corrupt", "truncated"])
def test_fetch_weights_rejects_a_bad_download_naming_url_and_checksum_and_leaves_nothing(
    mode, official_file, server, cache
):
    entry = pointed_at(XCEPTION_IMAGENET, official_file)
    server.mode = mode
    with pytest.raises(ChecksumError) as error:
        fetch_weights(entry, progress=False)
    message = str(error.value)
    assert f"{server.url}/{official_file.name}" in message
    assert entry.checksum.digest in message
    assert list(cache.iterdir()) == []


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty $XCEPTION_HOME and URLs to a port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("XCEPTION_HOME", str(tmp_path))
    monkeypatch.setenv("XCEPTION_WEIGHTS_URL", f"http://127.0.0.1:{port}")


def test_fetch_weights_without_network_names_the_url_and_the_exact_path(tmp_path, offline):
    with pytest.raises(WeightsUnavailableError) as error:
        fetch_weights(XCEPTION_IMAGENET, progress=False)
    message = str(error.value)
    assert XCEPTION_IMAGENET.urls[0] in message
    assert str(tmp_path / "weights" / XCEPTION_IMAGENET.file_name) in message
    assert list((tmp_path / "weights").iterdir()) == []


def test_entry_urls_default_to_the_publishers_mirrors(monkeypatch):
    monkeypatch.delenv("XCEPTION_WEIGHTS_URL", raising=False)
    assert download.entry_urls(XCEPTION_IMAGENET) == XCEPTION_IMAGENET.urls
    assert len(XCEPTION_IMAGENET.urls) == 2
    monkeypatch.setenv("XCEPTION_WEIGHTS_URL", "http://mirror.example/xception/")
    assert download.entry_urls(XCEPTION_IMAGENET) == (f"http://mirror.example/xception/{XCEPTION_IMAGENET.file_name}",)


def test_weights_home_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("XCEPTION_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.weights_home() == tmp_path / ".cache" / "xception" / "weights"


def test_create_model_with_an_entry_loads_the_downloaded_file(official_file, cache, monkeypatch):
    entry = pointed_at(XCEPTION_IMAGENET, official_file)
    by_entry = create_model("xception", weights=entry).state_dict()
    from_file = create_model("xception", weights=official_file).state_dict()
    assert all(torch.equal(by_entry[key], from_file[key]) for key in from_file)
    monkeypatch.setitem(WEIGHTS, entry.key, entry)  # the registry pointed at the test file
    by_name = create_model("xception", weights="imagenet").state_dict()
    assert all(torch.equal(by_name[key], from_file[key]) for key in from_file)


def test_create_model_rejects_unknown_names_and_other_models_weights():
    with pytest.raises(ValueError, match=r"'imagnet' is neither a weight file nor registered weights of 'xception'.*imagenet_notop"):
        create_model("xception", weights="imagnet")
    with pytest.raises(ValueError, match=r"'inception_v3.imagenet' are for 'inception_v3', not 'xception'"):
        create_model("xception", weights="inception_v3.imagenet")


def test_cli_weights_lists_the_registry_and_fetches_into_the_cache(official_file, cache, monkeypatch, capsys):
    from xception.cli import main

    assert main(["weights", "--format", "markdown"]) == 0
    table = capsys.readouterr().out
    assert "| `xception.imagenet` | 22,855,952 | 1000 | 79.0% | 94.5% |" in table
    assert "| `inception_v3.imagenet` | 23,834,568 | 1000 | 77.294% | 93.45% |" in table
    monkeypatch.setitem(WEIGHTS, XCEPTION_IMAGENET.key, pointed_at(XCEPTION_IMAGENET, official_file))
    assert main(["weights", "--fetch", "xception.imagenet"]) == 0
    assert capsys.readouterr().out.strip() == f"xception.imagenet: {cache / official_file.name}"
    assert main(["weights"]) == 0
    listing = capsys.readouterr().out.splitlines()
    (line,) = [line for line in listing if line.startswith("xception.imagenet ")]
    assert " cached " in line and "not cached" not in line
    assert main(["weights", "--fetch", "xception.imagent"]) == 2
    assert "unknown weights 'xception.imagent'" in capsys.readouterr().err


def test_create_model_with_published_weights_and_other_classes_gets_their_body_and_a_fresh_head(official_file, cache):
    entry = pointed_at(XCEPTION_IMAGENET, official_file)
    torch.manual_seed(0)
    tuned = create_model("xception", num_classes=10, weights=entry).state_dict()
    torch.manual_seed(0)
    fresh = create_model("xception", num_classes=10).state_dict()
    official = create_model("xception", weights=official_file).state_dict()
    assert torch.equal(tuned["classifier.weight"], fresh["classifier.weight"])
    body = [key for key in official if not key.startswith("classifier.")]
    assert all(torch.equal(tuned[key], official[key]) for key in body)
    with pytest.raises(ValueError, match=r"num_classes=1000"):  # a file by path keeps the strict check
        create_model("xception", num_classes=10, weights=official_file)


def test_cli_predict_without_network_says_where_to_put_the_file(tmp_path, offline, capsys):
    from PIL import Image

    from xception.cli import main

    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64)).save(photo)
    assert main(["predict", str(photo), "--weights", "imagenet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("xception predict: error: cannot download the weights 'xception.imagenet'")
    assert len(error.splitlines()) == 1
    assert f"put it at {tmp_path / 'weights' / XCEPTION_IMAGENET.file_name}" in error


def test_fetch_weights_checks_a_file_put_in_the_cache_by_hand(official_file, tmp_path, offline):
    entry = pointed_at(XCEPTION_IMAGENET, official_file)
    by_hand = tmp_path / "weights" / official_file.name
    by_hand.parent.mkdir()
    by_hand.write_bytes(official_file.read_bytes())
    assert fetch_weights(entry) == by_hand  # offline: the right file is used
    by_hand.write_bytes(official_file.read_bytes()[:-10])
    with pytest.raises(ChecksumError, match=rf"the cached {by_hand} has md5 .* not the published {entry.checksum.digest}"):
        fetch_weights(entry)
