"""Workflows: workflow files, their templates and steps, the durable engine, approvals, limits, deployments, the worker."""
