"""Helpers shared by the benchmarks, so that a benchmark is its data, transforms and methods.

Run every benchmark from the repository root as ``.venv/bin/python -m benchmarks.<name>``.

* ``data``: the shared data folder, media files by suffix, ``MANIFEST.csv`` rows and label groups;
* ``split``: seeded splits that keep a group (a work and its near-duplicates, a speaker) on one side;
* ``stats``: threshold at an FPR target, ``Operating`` points, recall, ``pct``, percentiles;
* ``table``: plain-text and Markdown tables;
* ``memory``: peak RSS (whole process, or since a reset) and tracemalloc peaks;
* ``calibrate``: the calibration entry (final / ideation levels) and its write through
  ``scanner.policy.calibration.merge_calibration``;
* ``cli``: the flags benchmarks share (``--data``, ``--seed``, ``--quick``, ``--write-calibration``);
* ``descriptors``, ``redraw``: method and transform helpers of particular benchmarks.

No scanner wiring here beyond the calibration writer.
"""
