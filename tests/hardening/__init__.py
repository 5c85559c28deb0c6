"""Property-based hardening tests: adversarial actions, random scenarios, config validation and
atomic run files."""
