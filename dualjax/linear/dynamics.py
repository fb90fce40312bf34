"""Deprecated alias of :mod:`dualjax.linear.simulation` (kept until every importer is renamed)."""

from dualjax.linear.simulation import LinearRun, simulate  # noqa: F401
