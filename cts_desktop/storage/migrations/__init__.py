"""Alembic migrations, configured in code (no alembic.ini) and applied by ``Database.open``.

Migrations are handwritten and frozen: they never import the models, so an old revision keeps
producing the schema it produced when it was released.
"""
