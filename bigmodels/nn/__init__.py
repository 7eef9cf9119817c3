"""Reusable Linen building blocks. Every parameter carries logical axis names."""
