"""Datasets: manifests (JSONL/CSV), built-in dataset builders and, later, the feature cache."""
