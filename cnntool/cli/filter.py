def filter_command():
    """placeholder"""
