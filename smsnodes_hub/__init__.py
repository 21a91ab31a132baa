"""smsnodes-hub: a self-hosted SMS gateway hub for Android phones."""

__version__ = "0.1.0"
