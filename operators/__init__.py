"""Operators who sign in: roles, named permissions, passwords, login lockout, sessions (a service on the database)."""
