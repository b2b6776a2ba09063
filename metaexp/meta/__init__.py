"""Meta studies: an outer Optuna study over strategies, each trial a full inner run.

spec.py      the spec's `meta:` block (outer objectives, pruner, repeats, parallel)
space.py     the strategy space: Optuna distributions over dotted keys of the spec
plan.py      the meta block with the command line's overrides, checked (MetaPlan, meta_tag)
trial.py     one outer trial: the sampled inner spec(s), run with a pruning hook
outer.py     the outer study: ask, run (inline or as Ray tasks), tell, resume
report.py    `metaexp report` for a meta study

Kept free of imports so that spec.py can import the `meta:` block cheaply (metaexp.api is light).
"""

from __future__ import annotations

from metaexp.api import callable_package

callable_package(__name__)  # metaexp.meta(...) calls metaexp.api.meta (see metaexp/api.py)
