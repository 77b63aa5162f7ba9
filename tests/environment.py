"""The environment handed to the processes the tests and benches start: this process's own,
without any setting a deployment of llmbilling reads.

Every ``LLMBILLING_*`` and ``MOLECULE_*`` name goes, and so do the proxy fallbacks
(``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``ANTHROPIC_BASE_URL``: ``PROXY_ENV_FIELDS``), so a
developer's or CI's own settings never leak into a store, a key ring or a proxy under test. The
caller then adds exactly the deployment it means.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from llmbilling.config.settings import PROXY_ENV_FIELDS

DEPLOYMENT_PREFIXES = ("LLMBILLING_", "MOLECULE_")


def clean_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default ``os.environ``) without any deployment setting."""
    source = os.environ if environ is None else environ
    return {
        name: value
        for name, value in source.items()
        if not name.startswith(DEPLOYMENT_PREFIXES) and name not in PROXY_ENV_FIELDS
    }
