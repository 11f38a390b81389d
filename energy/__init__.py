"""Energy analytics: energy derived from the registers, its rollups, and the analysis queries on them."""
