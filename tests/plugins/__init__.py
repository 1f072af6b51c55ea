"""Vendor adapters that live outside vendors/, as a third party's distribution would ship them."""
