"""Every example in the README runs, with the output it shows."""

import doctest

from tests.conftest import REPO


def test_readme_examples(data_root, monkeypatch):
    monkeypatch.setenv("NETSCOPE_DATA", str(data_root))
    result = doctest.testfile(str(REPO / "README.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10
    assert result.failed == 0
