"""Pure domain rules: no Flask, no SQLAlchemy, no I/O. Unit-tested without a database."""
