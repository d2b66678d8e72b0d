"""Meshes, partition rules, placement, the mesh train step and multi-host helpers: generic, knowing no model."""
