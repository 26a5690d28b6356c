"""edgevae.export"""
