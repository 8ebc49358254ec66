"""Helpers shared by farm's integration and end-to-end tests."""
