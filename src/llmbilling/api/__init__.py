"""The admin HTTP service: JSON API (``/v1``), health, metrics, and the web console."""
