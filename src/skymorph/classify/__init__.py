"""Classifying grid simulations from images: a CNN over map-store tiles (train, evaluate)."""
