"""Shared set-up of the test suite."""
import baselines  # noqa: F401  (registers the baselines' components, e.g. CAM's StageClassVectors)
