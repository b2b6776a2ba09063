# The editable target: a point on a landscape with a known optimum.
# evaluate.py (immutable) scores it; lower is better, 0.0 at the optimum.

X = 3.0  # first coordinate (optimum 1.5)
Y = -2.0  # second coordinate (optimum -0.5)
WIDTH = 7  # an integer setting (optimum 12)
