"""callbridge: answer phone calls on Azure Communication Services and bridge them to Voice Live."""

__version__ = "0.1.0"
