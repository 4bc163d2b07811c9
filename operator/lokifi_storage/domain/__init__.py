"""Pure planners: desired spec + observed state + now -> actions. No I/O in this layer."""
