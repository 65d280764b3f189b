"""Training loops: plain functions with headed phases."""
