"""The results catalogue: what a run directory holds and how it is written.

- ``catalogue``: every result table and run file, named once;
- ``tables``: the tables' schemas and the contract layout of their partitions;
- ``storage``: a local folder or an object-store prefix behind one API (the only file I/O);
- ``partitions``: shard pieces while a stage runs, commit records, one file after it;
- ``write``: a unit's pieces written from the actor that computed them;
- ``write_error``: a result that could not be written, as one line;
- ``compaction``: a stage's pieces folded into one file per partition, on the cluster;
- ``codec``: the perturbation codec (attack directions stored compactly);
- ``rundir``: the run directory ``<output_dir>/<name>``, checked first, deleted only if ours;
- ``provenance``: what every run and result file is stamped with (git sha, versions, data).

Nothing is imported here: ``catalogue`` stays light for the CLI.
"""
