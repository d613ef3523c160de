"""Several targets on the same rows: each target a task (``data/targets_table.py``), the
families compared on the same row splits (``compare.py``), one split's work in
``fit_split.py``, the MMoE paper's synthetic data in ``synthetic.py``."""
