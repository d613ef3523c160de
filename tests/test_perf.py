"""Process-level speed settings."""


def test_tune_malloc_is_idempotent():
    import sys

    from netscope.perf import tune_malloc

    first = tune_malloc()
    assert tune_malloc() == first
    if sys.platform.startswith("linux"):
        assert first  # glibc here
