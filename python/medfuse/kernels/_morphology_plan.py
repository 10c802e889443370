"""Names shared by medfuse's morphology wrappers and their NumPy twins."""

AXIS_NAMES = {2: ("y", "x"), 3: ("z", "y", "x")}  # regionprops_basic column names per ndim
