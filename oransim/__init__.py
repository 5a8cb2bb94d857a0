"""oransim: O-RAN network-slicing simulator. The command line lives in ``oransim.cli``."""
