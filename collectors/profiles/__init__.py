"""Device profiles: TOML register maps per meter model, loaded and validated."""
