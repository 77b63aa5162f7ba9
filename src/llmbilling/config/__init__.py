"""Configuration: deployment settings, and the registry and policy documents read from YAML."""
