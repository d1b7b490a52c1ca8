"""Placeholder until the CPU tuning lands: IREE defaults."""

def cpu_attention_attrs(batch, m, k1, k2, n, elem_type):
    return {}

CPU_COMPILE_FLAGS = []
