"""Downloads land in the cache only when the SHA-256 matches (file:// URLs, no network)."""

import hashlib

import pytest

from netscope.data import sources
from netscope.errors import NetscopeError


@pytest.fixture
def fake_remote(tmp_path, monkeypatch):
    remote = tmp_path / "remote.bin"
    remote.write_bytes(b"reference data")
    cache = tmp_path / "cache"
    monkeypatch.setenv("NETSCOPE_CACHE", str(cache))
    monkeypatch.delenv("NETSCOPE_DATA", raising=False)
    return remote, cache


def test_verified_download_into_cache(fake_remote, monkeypatch):
    remote, cache = fake_remote
    digest = hashlib.sha256(b"reference data").hexdigest()
    monkeypatch.setitem(sources.FILES, "x/file.bin", (remote.as_uri(), digest))
    messages = []
    path = sources.ensure("x/file.bin", sources.data_dir(), progress=messages.append)
    assert path == cache / "x" / "file.bin" and path.read_bytes() == b"reference data"
    assert messages and "downloading" in messages[0]
    assert sources.ensure("x/file.bin", sources.data_dir()) == path  # cached: no download


def test_checksum_mismatch_leaves_nothing(fake_remote, monkeypatch):
    remote, cache = fake_remote
    monkeypatch.setitem(sources.FILES, "x/file.bin", (remote.as_uri(), "0" * 64))
    with pytest.raises(NetscopeError, match="checksum mismatch"):
        sources.ensure("x/file.bin", sources.data_dir())
    assert list((cache / "x").iterdir()) == []


def test_unreachable_source_says_what_to_do(fake_remote, monkeypatch):
    remote, _ = fake_remote
    monkeypatch.setitem(sources.FILES, "x/file.bin", ((remote.parent / "gone").as_uri(), "0" * 64))
    with pytest.raises(NetscopeError, match="pass --data-dir or set NETSCOPE_DATA"):
        sources.ensure("x/file.bin", sources.data_dir())


def test_known_checksums_match_the_shared_copies(data_root):
    for rel, (_, expected) in sources.FILES.items():
        assert sources.sha256(data_root / rel) == expected, rel
