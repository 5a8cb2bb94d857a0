"""PHY delegation to ns-3 (the ``ns3`` wheel on PyPI, installed with ``pip install -e .[ns3]``).

- ``ns3_bridge.reference``: ns-3's own propagation models and a short LTE downlink evaluated
  in-process through cppyy, the references the built-in channel and PHY are checked against.
- ``ns3_bridge.shm``: the ``ns3-shm`` PHY backend, an ns-3 LTE server process
  (``server/oransim_phy_server.cc``, compiled by ``ns3_bridge.build`` on first use) driven one TTI
  at a time over a shared-memory segment in the ns3-ai message-interface style.

``from ns import ns`` costs ~9-18 s and ~650 MB, so ``reference`` imports it lazily, once; the
``ns3-shm`` backend never imports it (the server is a plain C++ program linked against the wheel).
"""


def ns3_available() -> bool:
    """True if the ns-3 Python bindings can be imported (without importing them)."""
    import importlib.util

    return importlib.util.find_spec("ns") is not None
