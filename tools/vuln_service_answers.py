"""Exit 0 when OSV's vulnerability service answers a query within a few seconds, else 1.

``make audit`` runs pip-audit (``-s osv``) only then: where no service can be reached (this
workplace), the offline check against the dated snapshot (``tools/audit_offline.py``) is the
whole audit.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

QUERY_URL = "https://api.osv.dev/v1/query"
TIMEOUT_SECONDS = 5.0
# A query with a known answer (a pin this checker's tests call affected: PyYAML 5.3).
PROBE = {"package": {"name": "pyyaml", "ecosystem": "PyPI"}, "version": "5.3"}


def answers(url: str = QUERY_URL, timeout: float = TIMEOUT_SECONDS) -> bool:
    """True when the service returns a JSON object listing vulnerabilities for the probe."""
    request = urllib.request.Request(
        url,
        data=json.dumps(PROBE).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):  # URLError, timeouts and refused connections are OSErrors
        return False
    return isinstance(body, dict) and bool(body.get("vulns"))


if __name__ == "__main__":
    sys.exit(0 if answers() else 1)
