"""(not yet written)"""
__all__: list = []
