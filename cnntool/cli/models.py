def list_command():
    """placeholder"""
def info_command():
    """placeholder"""
def summary_command():
    """placeholder"""
