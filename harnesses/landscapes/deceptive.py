# The editable target of the deceptive trap: 12 bits in 4 blocks of 3.
# evaluate.py (immutable) scores it: a block of 3 ones scores 3, otherwise
# 2 minus its ones, so the greedy path leads to all zeros (8, a trap); the
# global optimum is all ones (12). Each block starts with two ones.

B00 = 1
B01 = 1
B02 = 0

B03 = 0
B04 = 1
B05 = 1

B06 = 1
B07 = 0
B08 = 1

B09 = 1
B10 = 1
B11 = 0
