"""Sagas: workflows of commands across apps, compensated newest first."""
