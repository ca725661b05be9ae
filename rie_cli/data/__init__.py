"""Data: preparing HDF5 files from .npz/CDF inputs, reading them, and sampling windows."""
