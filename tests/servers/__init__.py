"""Real servers for the test-suite: SeaweedFS (S3) and PostgreSQL, started and stopped by PID.

Imported by ``tests/conftest.py`` as the top-level package ``servers`` (pytest puts ``tests/`` on
``sys.path`` because ``tests/`` has no ``__init__.py``).
"""
