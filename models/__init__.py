"""plantwatch."""
