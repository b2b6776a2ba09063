"""What a harness's environment holds: an allow-list, not the driver's environment less a deny-list.

A harness gets PATH, HOME (a throwaway one in the sandbox), USER, LANG, LANGUAGE, LC_*, TZ, TERM,
PYTHON*, CUDA*, NVIDIA*, the thread counts of
OMP/MKL/OPENBLAS/NUMEXPR, LD_LIBRARY_PATH (CUDA's libraries), the METAEXP_* variables metaexp sets,
`harness.env`, and `harness.pass_env` by name; nothing else (no *_KEY, *_TOKEN, DATABASE_URL,
GOOGLE_APPLICATION_CREDENTIALS, ...). A value that holds a credential (a URL with a password) is
dropped even when its name is allowed, unless `harness.pass_env` names it. `harness.strip_env`
removes names the allow-list would pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from metaexp.spec import Spec

ALLOWED = ("PATH", "HOME", "USER", "LANG", "LANGUAGE", "TZ", "TERM", "LD_LIBRARY_PATH")
ALLOWED_PREFIXES = ("LC_", "PYTHON", "CUDA", "NVIDIA", "OMP_", "MKL_", "OPENBLAS_", "NUMEXPR_", "METAEXP_")
CREDENTIAL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")  # scheme://user:password@host


def allowed(name: str) -> bool:
    return name in ALLOWED or name.startswith(ALLOWED_PREFIXES)


def harness_env(
    spec: Spec,
    n: int,
    base: Mapping[str, str] | None = None,
    seed: int | None = None,
    home: str | None = None,
) -> dict[str, str]:
    """The harness's environment for experiment n; `base`: the driver's (default os.environ);
    `home`: the sandbox's throwaway $HOME."""
    base = os.environ if base is None else base
    passed = set(spec.harness.pass_env)
    strip = {*spec.harness.strip_env, spec.operator.api_key_env}  # the operator's key, whatever its name
    env = {
        k: v
        for k, v in base.items()
        if k in passed or (allowed(k) and k not in strip and not CREDENTIAL.search(v))
    }
    env.update(spec.harness.env)
    if home is not None:
        env["HOME"] = home
    env["METAEXP_TIME_BUDGET"] = f"{spec.harness.time_budget_s:g}"
    env["METAEXP_SEED"] = str(spec.seed if seed is None else seed)
    env["METAEXP_EXPERIMENT"] = str(n)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep the sandbox (and any shared file) clean
    return env
