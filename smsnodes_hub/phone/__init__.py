"""The gateway agent moved to its own package, ``smsnodes_phone`` (the ``smsnodes-phone``
distribution in ``phone/``, also shipped by the hub's). This name is kept only so that
``python -m smsnodes_hub.phone`` keeps working where the hub is installed."""
