"""Storage: SQLAlchemy Core schema, engines, bulk time-series append and queries."""
