"""Analysis of placement studies: results tables, RI, layer importance, tables, figures, report.

Reads results (study directories or CSV/JSON tables), never models; pure Python + numpy + matplotlib.
`python -m ffnjax.analysis` is the command line.
"""

from ffnjax.analysis.importance import Importance, ImportanceSummary, importance, importance_by_family, standardize
from ffnjax.analysis.report import Analysis, analyze, write_report
from ffnjax.analysis.results import (
  AnalysisError,
  default_higher_is_better,
  load_results,
  make_results,
  task_entry,
  validate_results,
  write_results,
)
from ffnjax.analysis.results_table import ModelInfo, ResultsTable, Row, load_study, load_table, table_from_records
from ffnjax.analysis.ri import (
  TABLE1_TASKS,
  TABLE2_TASKS,
  TASK_SETS,
  ConfigRI,
  ModelRI,
  compute_ri,
  parse_task_set,
  relative_improvement,
  summarize_seeds,
)

__all__ = [
  "Analysis",
  "AnalysisError",
  "ConfigRI",
  "Importance",
  "ImportanceSummary",
  "ModelInfo",
  "ModelRI",
  "ResultsTable",
  "Row",
  "TABLE1_TASKS",
  "TABLE2_TASKS",
  "TASK_SETS",
  "analyze",
  "compute_ri",
  "default_higher_is_better",
  "importance",
  "importance_by_family",
  "load_results",
  "load_study",
  "load_table",
  "make_results",
  "parse_task_set",
  "relative_improvement",
  "standardize",
  "summarize_seeds",
  "table_from_records",
  "task_entry",
  "validate_results",
  "write_report",
  "write_results",
]
