"""The scripts' command line: arguments (light: parsed before torch loads) and the runner (exit codes)."""
