"""warnframe: reproduce 'Learning from Negative Examples' end to end, and the tools it implies."""

__version__ = "0.1.0"
