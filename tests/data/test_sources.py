"""Downloads land only when the SHA-256 matches (file:// URLs, no network)."""

import hashlib
import io
import zipfile

import pytest

from netscope.cli import main
from netscope.data import sources
from netscope.data.sources import Remote
from netscope.errors import NetscopeError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    monkeypatch.setitem(sources.FILES, "x/file.bin", Remote(remote.as_uri(),
                                                             sha(b"reference data")))
    messages = []
    path = sources.ensure("x/file.bin", sources.data_dir(), progress=messages.append)
    assert path == cache / "x" / "file.bin" and path.read_bytes() == b"reference data"
    assert messages and "downloading" in messages[0]
    assert sources.ensure("x/file.bin", sources.data_dir()) == path  # cached: no download


def test_member_of_a_verified_zip(fake_remote, tmp_path, monkeypatch):
    _, cache = fake_remote
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("inner/data.mat", b"the survey")
    (tmp_path / "pack.zip").write_bytes(buf.getvalue())
    url = (tmp_path / "pack.zip").as_uri()
    monkeypatch.setitem(sources.FILES, "s/data.mat", Remote(
        url, sha(buf.getvalue()), "inner/data.mat", sha(b"the survey")))
    assert sources.ensure("s/data.mat", sources.data_dir()).read_bytes() == b"the survey"
    monkeypatch.setitem(sources.FILES, "s/other.mat", Remote(
        url, sha(buf.getvalue()), "inner/data.mat", "0" * 64))
    with pytest.raises(NetscopeError, match="inner/data.mat: checksum mismatch"):
        sources.ensure("s/other.mat", sources.data_dir())
    assert not (cache / "s" / "other.mat").exists()


def test_checksum_mismatch_leaves_nothing(fake_remote, monkeypatch):
    remote, cache = fake_remote
    monkeypatch.setitem(sources.FILES, "x/file.bin", Remote(remote.as_uri(), "0" * 64))
    with pytest.raises(NetscopeError, match="checksum mismatch"):
        sources.ensure("x/file.bin", sources.data_dir())
    assert not (cache / "x").exists() or list((cache / "x").iterdir()) == []


def test_unreachable_source_says_what_to_do(fake_remote, monkeypatch):
    remote, _ = fake_remote
    monkeypatch.setitem(sources.FILES, "x/file.bin",
                        Remote((remote.parent / "gone").as_uri(), "0" * 64))
    with pytest.raises(NetscopeError, match="pass --data-dir or set NETSCOPE_DATA"):
        sources.ensure("x/file.bin", sources.data_dir())


def test_named_folder_is_not_written_unasked(tmp_path, fake_remote, monkeypatch):
    remote, _ = fake_remote
    monkeypatch.setitem(sources.FILES, "x/file.bin", Remote(remote.as_uri(),
                                                             sha(b"reference data")))
    mine = tmp_path / "mine"
    mine.mkdir()
    assert not sources.ensure("x/file.bin", mine).exists()
    assert sources.ensure("x/file.bin", mine, download=True).read_bytes() == b"reference data"


def test_known_checksums_match_the_shared_copies(data_root):
    for rel, remote in sources.FILES.items():
        assert sources.sha256(data_root / rel) == (remote.member_sha256 or remote.sha256), rel
    zipped = data_root / "computer_survey" / "conjointAnalysisComputerBuyers.zip"
    assert sources.sha256(zipped) == sources.FILES[
        "computer_survey/conjointAnalysisComputerBuyers.mat"].sha256


def test_data_check_command(data_root, capsys):
    assert main(["data", "check", "--data-dir", str(data_root)]) == 0
    assert capsys.readouterr().out.count("ok ") == len(sources.FILES)


def test_survey_comes_out_of_the_real_zip(data_root, tmp_path, monkeypatch):
    rel = "computer_survey/conjointAnalysisComputerBuyers.mat"
    real = sources.FILES[rel]
    zipped = (data_root / "computer_survey" / "conjointAnalysisComputerBuyers.zip").as_uri()
    monkeypatch.setitem(sources.FILES, rel, Remote(zipped, real.sha256, real.member,
                                                   real.member_sha256))
    monkeypatch.setenv("NETSCOPE_CACHE", str(tmp_path))
    path = sources.ensure(rel, sources.cache_dir())
    assert sources.sha256(path) == real.member_sha256


def test_setup_fills_the_cache_from_a_local_copy(data_root, tmp_path, monkeypatch, capsys):
    """`netscope data fetch --from DIR` copies every reference file into the cache after
    checking its SHA-256 (no network), so later commands find the data with no flag; a
    corrupted copy is refused, naming the file."""
    import shutil

    from netscope.cli import main
    from netscope.data.school import load_school
    from netscope.data.sources import FILES

    cache = tmp_path / "cache"
    monkeypatch.setenv("NETSCOPE_CACHE", str(cache))
    monkeypatch.delenv("NETSCOPE_DATA", raising=False)
    assert main(["data", "fetch", "--from", str(data_root)]) == 0
    assert all((cache / rel).is_file() for rel in FILES)
    assert "copied 12 verified files" in capsys.readouterr().err
    assert load_school().n_tasks == 139  # from the cache, nothing downloaded
    bad = tmp_path / "bad"
    shutil.copytree(data_root, bad)
    (bad / "school" / "school_b.mat").write_bytes(b"not the data")
    assert main(["data", "fetch", "--from", str(bad), "--dir", str(tmp_path / "o")]) == 2
    assert "school_b.mat: checksum mismatch" in capsys.readouterr().err
