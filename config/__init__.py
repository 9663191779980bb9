"""Configs: the schema composed from each domain's section, YAML loading with ``base:`` and overrides, the CLI."""
