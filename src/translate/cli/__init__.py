"""The command-line faces: translate-train, translate-test, translate-data, translate-export."""
