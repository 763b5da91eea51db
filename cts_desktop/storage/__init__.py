"""Persistence: SQLAlchemy models, migrations, repositories, the keyring secret store. No Qt."""
