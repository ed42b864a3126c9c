"""The package version, in a module of its own so that the command line can show it without importing the package
root (which installs the BasicSR hook)."""
__version__ = '0.1.0'
