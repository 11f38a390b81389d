"""Transformer-area telemetry, power quality, line loss."""
