"""A field of simulated gateways, buses and meters speaking real Modbus on loopback."""
