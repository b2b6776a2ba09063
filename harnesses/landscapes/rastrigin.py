# The editable target of the Rastrigin landscape: a point on a grid of 0.25.
# evaluate.py (immutable) scores it: a local minimum near every integer
# point; the global minimum 0.0 is at the origin. The start is a local minimum.

X0 = 3.0
X1 = -4.0
X2 = 2.0
