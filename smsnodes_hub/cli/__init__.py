"""The `smsnodes-hub` command line."""
