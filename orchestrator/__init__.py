"""Orchestrator: study specs in, Ray Tune trials run, ``results.csv`` and a report out."""
