"""Configuration: service settings (config/*.toml) and detector rules (detectors/*.toml)."""
