"""Process-wide configuration, secrets, and the assembly of one serving process."""
