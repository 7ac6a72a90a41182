"""Baseline methods (CAM, PBIP-style clustering prototypes), registered into mmseg registries."""
