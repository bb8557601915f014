"""The data layer: the only code that turns user inputs into pixels and pixels into files."""
