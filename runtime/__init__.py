"""edgevae.runtime"""
