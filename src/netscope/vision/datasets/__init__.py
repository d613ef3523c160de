"""Whole folders of images: the file list and loader, the run over them, its resumable
store of shards, and the gallery page's data."""
