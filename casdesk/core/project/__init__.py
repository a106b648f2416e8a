"""The project store: the SQLite catalog, its schema and migrations, the project lock."""
