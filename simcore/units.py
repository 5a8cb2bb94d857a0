"""Unit conversions used across the simulator (all scalar- and array-safe)."""

from __future__ import annotations

import numpy as np

SPEED_OF_LIGHT_M_S = 299_792_458.0


def dbm_to_w(dbm):
    return 10.0 ** ((np.asarray(dbm, dtype=float) - 30.0) / 10.0)


def w_to_dbm(w):
    return 10.0 * np.log10(np.asarray(w, dtype=float)) + 30.0


def db_to_lin(db):
    return 10.0 ** (np.asarray(db, dtype=float) / 10.0)


def lin_to_db(lin):
    return 10.0 * np.log10(np.asarray(lin, dtype=float))
