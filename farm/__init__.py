"""farm: a distributed test farm for Python test suites, built on Celery."""

__version__ = "0.1.0"
