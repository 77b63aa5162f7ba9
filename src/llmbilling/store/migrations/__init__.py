"""Alembic migrations, shipped with the package and run through :mod:`llmbilling.store.migrate`."""
