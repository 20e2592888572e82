"""Journeys through the real app in headless Chromium (marked `browser`)."""
