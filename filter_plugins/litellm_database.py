"""Facts about LiteLLM's database URL that the controller renders for the hosts' tools.

``litellm_prisma_url_parameters``: the ``DATABASE_URL`` query parameters only Prisma understands
(DB-07), read from the modules' own list (``PRISMA_URL_PARAMS`` in ``module_utils/litellm_postgres.py``)
so that the host audit and the modules agree on one list.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

_POSTGRES = Path(__file__).resolve().parent.parent / "module_utils" / "litellm_postgres.py"


def litellm_prisma_url_parameters(_: object = None) -> list[str]:
    """The sorted names of the URL parameters that libpq rejects and Prisma reads (DB-07)."""
    tree = ast.parse(_POSTGRES.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PRISMA_URL_PARAMS" for t in node.targets):
            return sorted(ast.literal_eval(node.value))
    raise ValueError(f"PRISMA_URL_PARAMS is not defined in {_POSTGRES}")  # pragma: no cover


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"litellm_prisma_url_parameters": litellm_prisma_url_parameters}
