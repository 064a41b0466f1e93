"""bottleneck: what 1x1 reduction convolutions buy in Inception-style networks."""

import warnings

# pandas optionally imports the unrelated PyPI package "Bottleneck" by the same module name.
# It finds this package instead, judges its version too old, warns and falls back to NumPy,
# which is the right outcome; the warning is noise. (Keep __version__ below 1.5 so it stays so.)
warnings.filterwarnings("ignore", message=r"Pandas requires version .* of 'bottleneck'")

__version__ = "0.1.0"
