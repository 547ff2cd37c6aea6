"""The service layer: loading, locking and writing around the pure domain rules.

Every entry point (panel, JSON API, CLI, Celery task) calls these functions; none of
them commits on its own or re-implements a check.
"""
