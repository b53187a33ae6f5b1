"""The stages of a run on model actors: plans, units, the scheduler, progress.

- ``execute`` (was ``stages.py``)
- ``scheduler`` (was ``scheduler.py``)
- ``actors`` (was ``actors.py``)
- ``placement`` (was ``placement.py``)
- ``model_pool`` (was ``model_pool.py``)
- ``worker`` (was ``worker.py``)
- ``oom`` (was ``oom.py``)
- ``attack_unit`` (was ``attack_unit.py``)
- ``plan_attacks`` (was ``plan_attacks.py``)
- ``running_stats`` (was ``running_stats.py``)
- ``progress`` (was ``progress.py``)
- ``eval_unit`` (was ``eval_unit.py``)
- ``plan_evals`` (was ``plan_evals.py``)
- ``eval_worker`` (was ``eval_worker.py``)
- ``eval_adaptive`` (was ``eval_adaptive.py``)
- ``eval_black_box`` (was ``eval_black_box.py``)
- ``eval_inputs`` (was ``eval_inputs.py``)
- ``eval_rows`` (was ``eval_rows.py``)
- ``eval_progress`` (was ``eval_progress.py``)

Nothing is imported here: import the module you need.
"""
