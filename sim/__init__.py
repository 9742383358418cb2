"""cocotb co-simulation benches and scoreboards (SPEC section 6). Not yet built: see the open issues."""
