"""Per part: observe -> plan -> apply -> report. I/O only through clients."""
