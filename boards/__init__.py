"""Board registry, bitstream build and flashing (SPEC section 7). Not yet built: see the open issues."""
