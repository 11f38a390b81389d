"""Process-wide configuration and secrets shared by every layer."""
