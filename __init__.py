"""aidi: accelerate intermittent deep inference on battery-less MSP430FR5994 devices."""

__version__ = "0.1.0"
