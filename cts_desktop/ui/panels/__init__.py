"""Dock contents, one module per panel; each panel only reads models and the event bridge."""
