"""The run directory's contract: what a run leaves on disk, named and checked in one place.

The orchestrator (and the trainables, for the files they leave) write a run directory and the
reports read it, possibly in another process or on another machine, long after; this package
is what they share. It sits in ``reports`` because a report must be made from a run directory
alone, and it imports nothing else of the project (nor Ray, nor torch, nor the statistics):

- ``reports.rundir.names``: file names, trial statuses, the columns of ``results.csv`` and
  ``curves.csv``, the group column of each study kind, ASHA's rungs;
- ``reports.rundir.files``: ``results.csv``, ``configs.json`` and ``run.json`` replaced atomically
  with their digests in ``checksums.sha256``, and read back refused in one line when damaged;
- ``reports.rundir.info``: ``run.json`` as a typed model (``RunInfo``) and its one writer;
- ``reports.rundir.evaluation``: ``evaluation.npz``, what a trial's evaluation computed (pair
  scores, probe ranks, embeddings), kept beside its checkpoint;
- ``reports.rundir.space``: the search-space format of a spec, as run.json carries it.
"""
