"""PHY delegation to ns-3 (the ``ns3`` wheel on PyPI, installed with ``pip install -e .[ns3]``).

- ``ns3_bridge.reference``: ns-3's own propagation models evaluated in-process through cppyy, the
  reference the built-in channel is checked against.

``from ns import ns`` costs ~9-18 s and ~650 MB, so everything here imports it lazily, once.
"""


def ns3_available() -> bool:
    """True if the ns-3 Python bindings can be imported (without importing them)."""
    import importlib.util

    return importlib.util.find_spec("ns") is not None
