"""The audit trail beyond its table: the signed hash chain (``chain``), monthly partitions and
their archives (``archives``) and exports (``export``)."""
