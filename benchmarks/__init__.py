"""edgevae.benchmarks"""
