"""hipbridge: upload, map, check and share hospital data with the Guangxi provincial health information platform."""

__version__ = "0.1.0"
