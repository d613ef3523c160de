"""Loading only: the school and survey reference data, and a user's own CSV/Parquet."""

from netscope.data.school import load_school, load_school_split
from netscope.data.sources import data_dir
from netscope.data.survey import load_survey
from netscope.data.tabular import load_table
from netscope.data.targets_table import TargetsData, load_targets_table

__all__ = ["TargetsData", "data_dir", "load_school", "load_school_split", "load_survey",
           "load_table", "load_targets_table"]
