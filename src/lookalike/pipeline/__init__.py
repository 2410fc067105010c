"""Indexing in stages, as clip-retrieval cuts it: plan -> embed -> commit, driven by a runner.

* :mod:`~lookalike.pipeline.plan` walks the folders and diffs them against the store: what to
  embed (new or changed files), what to remove, what is unchanged.
* :mod:`~lookalike.pipeline.mapper` turns file entries into vectors and metadata. It is built
  from a picklable :class:`~lookalike.pipeline.mapper.EmbedderSpec`, so it can run in another
  process or on another machine; no decoded image travels back to the writer.
* :mod:`~lookalike.pipeline.runner` decides where mapping runs: :class:`LocalRunner` (threads in
  this process) is the default; :class:`~lookalike.pipeline.ray_runner.RayRunner` (imported
  only when asked for, by :func:`open_runner`) runs the same mapper in Ray actors.
* :mod:`~lookalike.pipeline.commit` writes the mapped batches to the store, one transaction each.
"""

from lookalike.pipeline.commit import AddReport, Progress, commit, commit_classes
from lookalike.pipeline.mapper import EmbeddedFile, EmbedderSpec, Mapper
from lookalike.pipeline.plan import Plan, plan_add
from lookalike.pipeline.runner import LocalRunner, Runner, open_runner

__all__ = [
    "AddReport",
    "EmbeddedFile",
    "EmbedderSpec",
    "LocalRunner",
    "Mapper",
    "Plan",
    "Progress",
    "Runner",
    "commit",
    "commit_classes",
    "open_runner",
    "plan_add",
]
