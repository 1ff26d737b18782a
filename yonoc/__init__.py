"""yonoc: many int8 TFLite models -> one product-quantised flash image (YONO, IPSN 2022)."""

__version__ = "0.1.0"
