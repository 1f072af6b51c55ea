"""Vendor adapters: pure parsers and pricers, one module per vendor, behind vendors.base."""
