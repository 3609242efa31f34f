"""The MakeWarp task: calibrated calexps to per-visit warps on skymap patches.

Modules, from the task outwards:

* :mod:`~warping.task.config` — ``MakeWarpConfig`` (LSST field names) and overrides;
* :mod:`~warping.task.inputs` — ``CcdInput``: one CCD's data ID and lazy handles to its calexp
  and calibration products;
* :mod:`~warping.task.calibrate` — read a CCD's handles and calibrate it to nJy;
* :mod:`~warping.task.make_warp` — ``MakeWarpTask.run(inputs, sky_info, visit)``: calibrate,
  warp, PSF-match (:mod:`~warping.task.psf_match_step`) and assemble
  (:mod:`~warping.task.assemble`) one visit's warps in memory;
* :mod:`~warping.task.work_units` — the values of a run (``WarpUnit``, ``UnitResult``,
  ``WarpPlan``), each carrying its warps' ``DataId``;
* :mod:`~warping.task.planning` — the driver's registry queries: ``--id`` groups to units;
* :mod:`~warping.task.execution` — one unit anywhere, reading and writing through
  :class:`repo_butler.WorkerIO`;
* :mod:`~warping.task.executors` — serial and Dask executors (one ``UnitExecutor`` protocol);
* :mod:`~warping.task.runner` — plan, execute, register (``run_make_warps``) and summaries;
* :mod:`~warping.task.demo` — the ``rb demo`` scenario.
"""
