"""Amaranth HDL of the on-chip learning core (SPEC section 5). Not yet built: see the open issues."""
