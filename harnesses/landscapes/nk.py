# The editable target of the NK landscape (N=14, K=4): one gene per line.
# evaluate.py (immutable) sums each gene's table value, which depends on the
# gene and its 4 right neighbours; many local optima, one global optimum
# (NK_OPTIMUM in evaluate.py). The start is all zeros.

G00 = 0
G01 = 0
G02 = 0
G03 = 0
G04 = 0
G05 = 0
G06 = 0
G07 = 0
G08 = 0
G09 = 0
G10 = 0
G11 = 0
G12 = 0
G13 = 0
