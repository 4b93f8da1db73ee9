"""Scheduled job definitions: one module per job, each calling into `aggregator`."""
